"""The trigger Lambda: DynamoDB stream records -> Batch jobs.

Its own event source mapping on the events table (filtered to the event types it acts on), so
that a slow job submission never holds up the projections. A TrainingRequested record becomes
exactly one train job (histolabel.training_requests claims the request before submitting).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from histolabel.adapters.dynamo_events import from_item
from histolabel.composition import service_from_env, submitter_from_env
from histolabel.events.envelope import stream_kind
from histolabel.jobs import JobSubmitter
from histolabel.service import HistoLabel
from histolabel.training_requests import handle_training_requested

logger = Logger(service="trigger")


class TriggerRuntime:
    def __init__(self, svc: HistoLabel, submitter: JobSubmitter) -> None:
        self.svc = svc
        self.submitter = submitter
        self.processor = BatchProcessor(event_type=EventType.DynamoDBStreams)

    def record(self, record: DynamoDBRecord) -> None:
        if record.raw_event.get("eventName") != "INSERT":
            return
        image = record.raw_event["dynamodb"]["NewImage"]
        if (
            stream_kind(image["stream"]["S"]) != "project"
            or image.get("type", {}).get("S") != "TrainingRequested"
        ):
            return
        outcome = handle_training_requested(self.svc, self.submitter, from_item(image))
        logger.info("training trigger", extra={"outcome": outcome.__dict__})

    def handle(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        response = process_partial_response(
            event=event, record_handler=self.record, processor=self.processor, context=context
        )
        return dict(response)


_runtime: TriggerRuntime | None = None


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    global _runtime
    if _runtime is None:
        _runtime = TriggerRuntime(service_from_env(), submitter_from_env())
    return _runtime.handle(event, context)
