"""The projector function: DynamoDB stream records of the events table -> projections."""

from histolabel.runtime.projector_lambda import handler

__all__ = ["handler"]
