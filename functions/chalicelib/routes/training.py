"""Routes: training."""

from __future__ import annotations

from typing import Any

from chalicelib.context import Call, Handler, fresh
from histolabel.events.envelope import project_stream


def _request_training(c: Call) -> Any:
    result = c.svc.request_training(c.project.project_id, c.actor)
    state = fresh(c)
    stream = project_stream(state.project_id)
    seq = next(e["seq"] for e in result.events if e["stream"] == stream)
    event = next(iter(c.svc.events.read(stream, after=seq - 1, upto=seq)))
    return {"request_id": event.payload["request_id"]}


def _training(c: Call) -> Any:
    state = c.project
    total = c.svc.labels_total(state.project_id)
    # Superpixels with a label now, from each slide's projection summary (no buckets read):
    # `labels_total` counts label edits (relabels and every member's), which drives retraining.
    labeled = sum(
        sum(c.svc.projections.load_slide(state.project_id, sid, buckets=set()).counts.values())
        for sid in state.slides
    )
    return {
        "runs": [r.model_dump() for r in state.training.values()],
        "models": state.models,
        "current_model": state.current_model,
        "labels_total": total,
        "labeled_superpixels": labeled,
        "labels_since_request": max(0, total - state.last_request_labels_total),
        "threshold": state.settings.retrain_threshold,
    }


HANDLERS: dict[str, Handler] = {
    "request_training": _request_training,
    "training": _training,
}
