"""History: who did what, when. The CLI's project-wide rows, and the API's pages of one stream
(or of a slide's label streams in fold order) with each chain checked from its start."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from histolabel.audit.streams import load_history
from histolabel.events.envelope import StoredEvent, slide_of, verify_chain
from histolabel.projections.labels import in_fold_order

if TYPE_CHECKING:
    from histolabel.service import HistoLabel


def history_rows(
    events: Iterable[StoredEvent], user: str | None = None, superpixel: tuple[str, int] | None = None
) -> list[dict[str, Any]]:
    rows = []
    for e in sorted(events, key=lambda e: (e.at, e.stream, e.seq)):
        if user is not None and e.actor_user != user:
            continue
        payload = e.payload
        if superpixel is not None:
            slide, sp = superpixel
            if (
                not e.stream.startswith("L#")
                or slide_of(e.stream) != slide
                or sp not in payload.get("ids", [])
            ):
                continue
        rows.append(
            {
                "at": e.at,
                "user": e.actor_user,
                "site": e.actor_site,
                "type": e.type,
                "stream": e.stream,
                "seq": e.seq,
                "summary": summarize(e.type, payload),
            }
        )
    return rows


def summarize(event_type: str, d: dict[str, Any]) -> str:
    ids = d.get("ids")
    if ids is not None:
        n = len(ids)
        shown = ",".join(map(str, ids[:5])) + ("..." if n > 5 else "")
        what = d.get("category_id") or d.get("action") or ""
        return f"{n} superpixel(s) [{shown}] on {d['slide_id']} {what}".strip()
    keys = [
        k
        for k in ("name", "category_id", "user", "role", "slide_id", "request_id", "model_version")
        if k in d
    ]
    return ", ".join(f"{k}={d[k]}" for k in keys)


def project_history(
    svc: HistoLabel, project_id: str, user: str | None = None, superpixel: tuple[str, int] | None = None
) -> list[dict[str, Any]]:
    """Every event of the project in time order (`histolabel audit history`)."""
    return history_rows(load_history(svc, project_id).all_events(), user, superpixel)


def event_dict(e: StoredEvent) -> dict[str, Any]:
    return {**e.as_dict(), "data": e.payload}


def stream_history(
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
