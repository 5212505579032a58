"""The trigger function: DynamoDB stream records of job-starting events -> Batch jobs."""

from histolabel.runtime.trigger import handler

__all__ = ["handler"]
