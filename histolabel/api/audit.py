"""The auditor's view: a stream's events with its hash chain checked, and the project and label
state replayed from the events as of any moment."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from histolabel.events.envelope import StoredEvent, verify_chain
from histolabel.projections.labels import fold_labels
from histolabel.projections.project import ProjectState, fold_project


def event_dict(e: StoredEvent) -> dict[str, Any]:
    return {**e.as_dict(), "data": e.payload}


def history(
    stream: str,
    events: list[StoredEvent],
    after_seq: int,
    limit: int,
    superpixel: int | None = None,
    user: str | None = None,
    event_type: str | None = None,
) -> dict[str, Any]:
    """`events` is the whole stream (the chain is checked from its start); the page is the events
    after `after_seq` that pass the filters."""
    bad = verify_chain(events)
    picked: list[dict[str, Any]] = []
    next_after = None
    for e in events:
        if e.seq <= after_seq:
            continue
        if len(picked) >= limit:
            next_after = picked[-1]["seq"]
            break
        if user is not None and e.actor_user != user:
            continue
        if event_type is not None and e.type != event_type:
            continue
        if superpixel is not None and superpixel not in e.payload.get("ids", []):
            continue
        picked.append(event_dict(e))
    return {
        "stream": stream,
        "events": picked,
        "chain_ok": bad is None,
        "first_bad_seq": None if bad is None else bad.seq,
        "next_after_seq": next_after,
    }


def upto(events: Iterable[StoredEvent], as_of: str) -> list[StoredEvent]:
    return [e for e in events if e.at <= as_of]


def replay_project(events: list[StoredEvent], as_of: str) -> ProjectState:
    return fold_project(upto(events, as_of))


def replay_slide(
    project_id: str, slide_id: str, events: list[StoredEvent], as_of: str, with_labels: bool = False
) -> dict[str, Any]:
    """A slide's label state as of `as_of`, folded by the projection's own fold; `with_labels`
    adds each labeled superpixel's shown category (the web app paints it: no second fold in JS)."""
    labels = fold_labels(project_id, slide_id, upto(events, as_of))
    current = labels.current()
    out = {**labels.summary(), "labeled": len(current)}
    if with_labels:
        out["labels"] = {str(i): c for i, c in sorted(current.items())}
    return out
