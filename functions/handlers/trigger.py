"""The trigger function: DynamoDB stream records of job-starting events -> Batch jobs."""

from histolabel.runtime.trigger_lambda import handler

__all__ = ["handler"]
