"""The auditor's view: a stream's events with its hash chain checked, and the project and label
state replayed from the events as of any moment."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from histolabel.events.envelope import StoredEvent, verify_chain
from histolabel.projections.labels import fold_labels, in_fold_order
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


def slide_history(
    stream: str,
    streams: dict[str, list[StoredEvent]],
    after: int,
    limit: int,
    superpixel: int | None = None,
    user: str | None = None,
    event_type: str | None = None,
) -> dict[str, Any]:
    """A slide's label history: the events of all its label streams (each checked from its
    start) in fold order. `after` and `next_after_seq` count positions in that order, which
    for a slide with one label stream are its seqs."""
    bad = [b for b in (verify_chain(ev) for _s, ev in sorted(streams.items())) if b is not None]
    ordered = [e for _key, e in in_fold_order({}, (e for ev in streams.values() for e in ev))]
    picked: list[dict[str, Any]] = []
    last = after
    next_after = None
    for position, e in enumerate(ordered, start=1):
        if position <= after:
            continue
        if len(picked) >= limit:
            next_after = last
            break
        if (
            (user is None or e.actor_user == user)
            and (event_type is None or e.type == event_type)
            and (superpixel is None or superpixel in e.payload.get("ids", []))
        ):
            picked.append(event_dict(e))
            last = position
    return {
        "stream": stream,
        "events": picked,
        "chain_ok": not bad,
        "first_bad_seq": bad[0].seq if bad else None,
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
