"""The anchoring function: every minute (an EventBridge schedule) and on each export (invoked by
the API), sign the heads of the event streams and write them to the Object Lock bucket."""

from histolabel.runtime.anchorer_lambda import handler

__all__ = ["handler"]
