"""Audit: replay the label state as of a moment, verify hash chains and projections, and list
who did what. Pure functions over stored events; the CLI and the API feed them."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from histolabel.events.envelope import StoredEvent, slide_of, verify_chain
from histolabel.projections.labels import SlideLabels, fold_labels
from histolabel.projections.project import ProjectState, fold_project


@dataclass(frozen=True)
class Cutoff:
    as_of: str | None = None  # ISO-8601 UTC; events at or before it count
    slide: str | None = None
    # with slide: that slide's first `seq` label events in fold order (with one label stream,
    # its events up to this seq)
    seq: int | None = None

    def keeps(self, event: StoredEvent) -> bool:
        return self.as_of is None or event.at <= self.as_of


def as_of_instant(value: str) -> str:
    """The last instant an "as of" names, in the store's form (UTC, microseconds, Z) for string
    comparison with event times. The moment named is included whole, at every door (CLI, API, web):
    a date means the end of that day, a minute its last microsecond, a second likewise; a time
    without an offset is UTC, one with an offset is converted. ValueError for no ISO-8601 time."""
    import re
    from datetime import UTC, datetime, timedelta

    text = value.strip().replace("z", "Z")
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    _, sep, time = re.split(r"([T ])", text, maxsplit=1) if re.search(r"[T ]", text) else (text, "", "")
    clock = re.split(r"[Z+-]", time, maxsplit=1)[0]
    if not sep:
        whole = timedelta(days=1)
    elif "." in clock:
        whole = timedelta(microseconds=1)
    else:
        whole = {0: timedelta(hours=1), 1: timedelta(minutes=1)}.get(clock.count(":"), timedelta(seconds=1))
    end = parsed + whole - timedelta(microseconds=1)
    return end.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def replay_state(
    project_events: list[StoredEvent], label_events: dict[str, list[StoredEvent]], cutoff: Cutoff
) -> tuple[ProjectState, dict[str, SlideLabels]]:
    """`label_events`: slide -> its label events in fold order."""
    project = fold_project([e for e in project_events if cutoff.keeps(e)])
    label_events = dict(label_events)
    if cutoff.seq is not None and cutoff.slide in label_events:
        # The project as it stood when that label event was written.
        kept = label_events[cutoff.slide][: cutoff.seq]
        label_events[cutoff.slide] = kept
        if kept:
            project = fold_project([e for e in project_events if e.at <= kept[-1].at])
    slides = {
        slide: fold_labels(project.project_id, slide, [e for e in events if cutoff.keeps(e)])
        for slide, events in label_events.items()
    }
    return project, slides


def label_rows(project: ProjectState, slides: dict[str, SlideLabels]) -> list[dict[str, Any]]:
    rows = []
    for slide_id in sorted(slides):
        for sp, entry in sorted(slides[slide_id].entries.items()):
            category = project.resolve(entry["c"])
            review = entry["r"] or {}
            rows.append(
                {
                    "slide": slide_id,
                    "superpixel": sp,
                    "category": category,
                    "category_name": project.categories[category].name if category else None,
                    "labeled_by": entry["cb"],
                    "labeled_at": entry["ca"],
                    "review": review.get("a"),
                    "reviewed_by": review.get("by"),
                    "reviewed_at": review.get("at"),
                    "user_labels": {u: project.resolve(c) for u, (c, _at) in entry["l"].items()},
                }
            )
    return rows


def render(rows: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=1)
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "user_labels": json.dumps(row["user_labels"], sort_keys=True)})
    return out.getvalue()


@dataclass(frozen=True)
class Finding:
    stream: str
    seq: int
    problem: str

    def __str__(self) -> str:
        return f"{self.stream} seq {self.seq}: {self.problem}"


def verify_streams(streams: dict[str, list[StoredEvent]]) -> list[Finding]:
    findings = []
    for stream, events in sorted(streams.items()):
        bad = verify_chain(events)
        if bad is not None:
            if bad.compute_hash() != bad.hash:
                problem = "content does not match its hash (altered)"
            elif bad.seq != events.index(bad) + 1:
                problem = "sequence gap (an event is missing)"
            else:
                problem = "prev_hash does not link to the event before it"
            findings.append(Finding(stream, bad.seq, problem))
    return findings


def compare_projections(
    fresh_project: ProjectState,
    stored_project: ProjectState | None,
    fresh_slides: dict[str, SlideLabels],
    stored_slides: dict[str, SlideLabels],
) -> list[str]:
    problems = []
    if stored_project is None or stored_project.model_dump() != fresh_project.model_dump():
        problems.append(f"project projection of {fresh_project.project_id} differs from a fresh fold")
    for slide, fresh in fresh_slides.items():
        stored = stored_slides.get(slide)
        if stored is None or stored.entries != fresh.entries or stored.summary() != fresh.summary():
            first = _first_difference(fresh, stored)
            problems.append(f"label projection of slide {slide} differs from a fresh fold{first}")
    return problems


def _first_difference(fresh: SlideLabels, stored: SlideLabels | None) -> str:
    if stored is None:
        return " (missing)"
    for sp in sorted(set(fresh.entries) | set(stored.entries)):
        if fresh.entries.get(sp) != stored.entries.get(sp):
            return f" (first at superpixel {sp})"
    return " (summary counts)"


def history(
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
