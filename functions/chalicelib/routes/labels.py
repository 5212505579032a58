"""Routes: labels."""

from __future__ import annotations

import re
from typing import Any

from chalicelib import views
from chalicelib.context import Call, Handler
from chalicelib.responses import json_or_copy
from histolabel.api import changes
from histolabel.api.views import resolved_entries
from histolabel.commands import (
    IDEMPOTENCY_KEY_PATTERN,
    CommandRejected,
    LabelSuperpixels,
    ReviewLabels,
    UnlabelSuperpixels,
)
from histolabel.events.catalogue import LabelSource


def _slide_labels(c: Call) -> Any:
    sid = c.params["slide_id"]
    views.require_slide(c.project, sid)
    labels = views.current_labels(c.svc, c.project.project_id, sid)
    entries, counts = resolved_entries(labels.entries, c.project.resolve)
    out = {"slide_id": sid, "seq": labels.seq, "cursor": changes.encode_cursor(labels.cursor()),
           "counts": counts, "entries": entries}  # fmt: skip
    return json_or_copy(out, f"projects/{c.project.project_id}/exports/labels/{sid}/seq{labels.seq}")


def _idempotency_key(c: Call) -> tuple[str | None, str]:
    """The request's idempotency key (the header, else the body's field; the body's pattern was
    checked by its schema) and the name of where it came from."""
    header, body = c.headers.get("idempotency-key"), c.body.idempotency_key
    if header is None:
        return body, "idempotency_key"
    field = "Idempotency-Key"
    if not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, header):
        raise CommandRejected("invalid", "idempotency key: 1-128 of letters, digits, '-', '_'", field)
    if body is not None and body != header:
        raise CommandRejected("invalid", "the Idempotency-Key header and idempotency_key differ", field)
    return header, field


def _write(kind: str) -> Any:
    def handler(c: Call) -> Any:
        b, pid, sid = c.body, c.project.project_id, c.params["slide_id"]
        views.require_slide(c.project, sid, segmented=True)
        ids = b.ids if b.ids is not None else views.ids_in_polygon(c.project, sid, b.polygon)
        cmd: Any
        source: LabelSource = "click"
        if kind != "review":  # a brushed selection is recorded as a brush stroke
            source = "brush" if b.polygon is not None and b.source == "click" else b.source
        if kind == "label":
            cmd = LabelSuperpixels(
                project_id=pid, slide_id=sid, ids=ids, category_id=b.category_id, source=source
            )
        elif kind == "unlabel":
            cmd = UnlabelSuperpixels(project_id=pid, slide_id=sid, ids=ids, source=source)
        else:
            cmd = ReviewLabels(
                project_id=pid, slide_id=sid, ids=ids, action=b.action, category_id=b.category_id
            )
        key, field = _idempotency_key(c)
        try:
            result = c.svc.execute(cmd, c.actor, f"{c.user}:{key}" if key else None)
        except CommandRejected as exc:
            if exc.code == "idempotency_key_reused":
                exc.field = field
            raise
        return {"command_id": result.command_id, "appended": result.appended, "duplicate": result.duplicate,
                "ids": len(ids)}  # fmt: skip

    return handler


def _changes(c: Call) -> Any:
    state, q = c.project, c.query
    out: dict[str, Any] = {"project_seq": state.seq}
    if q.slide is not None:
        views.require_slide(state, q.slide)
        pid = state.project_id

        def load(buckets: set[int]) -> Any:
            return c.svc.projections.load_slide(pid, q.slide, buckets=buckets)

        out["slide_id"] = q.slide
        out.update(
            changes.label_changes(
                c.svc.events, load, pid, q.slide, q.labels_seq, state.resolve, q.labels_cursor
            )
        )
    return out


HANDLERS: dict[str, Handler] = {
    "slide_labels": _slide_labels,
    "label": _write("label"),
    "unlabel": _write("unlabel"),
    "review": _write("review"),
    "changes": _changes,
}
