"""The projector Lambda: DynamoDB stream records of the events table -> projections.

Powertools' BatchProcessor reports partial batch failures, so Lambda retries from the first
failed record; the projector's checkpoints make every retried or duplicated record harmless.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from histolabel.adapters.dynamo_events import from_item
from histolabel.events.envelope import stream_kind
from histolabel.projections.projector import Projector
from histolabel.service import HistoLabel

logger = Logger(service="projector")
metrics = Metrics(namespace="HistoLabel", service="projector")


class ProjectorRuntime:
    def __init__(self, svc: HistoLabel) -> None:
        self.svc = svc
        self.projector = Projector(svc.projections, svc.events, on_labels=self._labels_changed)
        self.processor = BatchProcessor(event_type=EventType.DynamoDBStreams)

    def _labels_changed(self, project_id: str) -> None:
        requested = self.svc.maybe_request_training(project_id)
        if requested is not None:
            logger.info("training requested", extra={"project": project_id, "events": requested.events})

    def record(self, record: DynamoDBRecord) -> None:
        if record.raw_event.get("eventName") != "INSERT":
            return  # events are never updated in place; a MODIFY is tampering, left to audit
        image = record.raw_event["dynamodb"]["NewImage"]
        if stream_kind(image["stream"]["S"]) not in ("project", "labels"):
            return
        event = from_item(image)
        outcome = self.projector.handle(event)
        metrics.add_metric(name="EventsProjected", unit=MetricUnit.Count, value=outcome.applied)

    def handle(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        response = process_partial_response(
            event=event, record_handler=self.record, processor=self.processor, context=context
        )
        return dict(response)


_runtime: ProjectorRuntime | None = None


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point; one runtime (and its clients) per container."""
    global _runtime
    if _runtime is None:
        _runtime = ProjectorRuntime(HistoLabel.from_env())
    return _runtime.handle(event, context)
