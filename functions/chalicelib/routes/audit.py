"""Routes: audit."""

from __future__ import annotations

from typing import Any

from chalicelib import views
from chalicelib.context import Call, Handler
from chalicelib.responses import json_or_copy
from histolabel.api.views import project_out
from histolabel.audit.as_of import as_of_instant
from histolabel.audit.history import slide_history, stream_history
from histolabel.audit.replay import replay_project, replay_slide
from histolabel.commands import (
    CommandRejected,
)
from histolabel.events.envelope import label_stream, project_stream, verify_chain
from histolabel.events.streams import stream_events


def _history(c: Call) -> Any:
    q, pid = c.query, c.project.project_id
    if q.slide is not None:
        views.require_slide(c.project, q.slide)
    if q.slide is None:
        stream = project_stream(pid)
        events = list(c.svc.events.read(stream))
        return stream_history(stream, events, q.after_seq, q.limit, q.superpixel, q.user, q.type)
    streams = stream_events(c.svc.events, pid, q.slide)
    return slide_history(label_stream(pid, q.slide), streams, q.after_seq, q.limit, q.superpixel,
                         q.user, q.type)  # fmt: skip


def _replay(c: Call) -> Any:
    pid = c.project.project_id
    as_of = as_of_instant(c.query.as_of)
    p_events = list(c.svc.events.read(project_stream(pid)))
    chains = {project_stream(pid): verify_chain(p_events) is None}
    then = replay_project(p_events, as_of)
    slides = {}
    for sid in [c.query.slide] if c.query.slide else sorted(then.slides):
        if sid not in then.slides:
            raise CommandRejected("not_found", f"slide {sid!r} did not exist at {as_of}", "slide", 404)
        streams = stream_events(c.svc.events, pid, sid)
        chains.update({stream: verify_chain(ev) is None for stream, ev in streams.items()})
        events = [e for ev in streams.values() for e in ev]
        slides[sid] = replay_slide(pid, sid, events, as_of, with_labels=c.query.slide is not None)
    out = {"as_of": as_of, "project": project_out(then) if then.exists else None, "slides": slides,
           "chains": chains}  # fmt: skip
    # One slide's labels can outgrow a Lambda response: then the answer is a copy in the bucket.
    return json_or_copy(out, f"projects/{pid}/exports/replays/{c.query.slide}") if c.query.slide else out


HANDLERS: dict[str, Handler] = {
    "audit_history": _history,
    "audit_replay": _replay,
}
