"""The projector Lambda: DynamoDB stream records of the events table -> projections.

A batch is grouped by stream (a slide's label streams as one group) and each group's events
applied together (one projection write per run, not per event). A group that fails reports all
its records of the batch as failures (ReportBatchItemFailures), so Lambda retries from the first
of them; the projector's checkpoints make every retried or duplicated record harmless, and the
other groups' work stands.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from histolabel.adapters.dynamo_events import from_item
from histolabel.composition import service_from_env
from histolabel.events.envelope import StoredEvent, label_stream, slide_of, stream_kind
from histolabel.projections.projector import Outcome, Projector
from histolabel.service import HistoLabel

PARALLEL_GROUPS = 8
logger = Logger(service="projector")
metrics = Metrics(namespace="HistoLabel", service="projector")


class ProjectorRuntime:
    def __init__(self, svc: HistoLabel) -> None:
        self.svc = svc
        self.projector = Projector(svc.projections, svc.events)

    def _labels_changed(self, project_id: str) -> None:
        requested = self.svc.maybe_request_training(project_id)
        if requested is not None:
            logger.info("training requested", extra={"project": project_id, "events": requested.events})

    def handle(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        by_stream: dict[str, list[tuple[str, StoredEvent]]] = {}
        for record in event.get("Records", []):
            if record.get("eventName") != "INSERT":
                continue  # events are never updated in place; a MODIFY is tampering, left to audit
            image = record["dynamodb"]["NewImage"]
            stream = image["stream"]["S"]
            kind = stream_kind(stream)
            if kind not in ("project", "labels"):
                continue
            # A slide's label streams are folded together (one projection, in fold order).
            group = label_stream(image["project"]["S"], slide_of(stream)) if kind == "labels" else stream
            by_stream.setdefault(group, []).append((record["dynamodb"]["SequenceNumber"], from_item(image)))
        failures: list[dict[str, str]] = []
        labelled: set[str] = set()
        applied = 0

        def project(records: list[tuple[str, StoredEvent]]) -> Outcome | None:
            try:
                return self.projector.handle_stream([e for _seq, e in records])
            except Exception:
                stream = records[0][1].stream
                logger.exception("projecting failed; its records are retried", extra={"stream": stream})
                return None

        # Groups share nothing but the label total (an atomic ADD), so they go in parallel: the
        # projector waits on the store, not on its CPU (bench/event_store.py).
        groups = list(by_stream.values())
        with ThreadPoolExecutor(max_workers=max(1, min(PARALLEL_GROUPS, len(groups)))) as pool:
            outcomes = list(pool.map(project, groups))
        for records, outcome in zip(groups, outcomes, strict=True):
            if outcome is None:
                failures.extend({"itemIdentifier": seq} for seq, _e in records)
                continue
            applied += outcome.applied
            if outcome.labels_added:
                labelled.add(records[0][1].project)
        for project_id in sorted(labelled):
            self._labels_changed(project_id)
        metrics.add_metric(name="EventsProjected", unit=MetricUnit.Count, value=applied)
        return {"batchItemFailures": failures}


_runtime: ProjectorRuntime | None = None


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point; one runtime (and its clients) per container."""
    global _runtime
    if _runtime is None:
        _runtime = ProjectorRuntime(service_from_env())
    return _runtime.handle(event, context)
