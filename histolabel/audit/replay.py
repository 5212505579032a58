"""Replay: the project and label state as of a moment, folded from the events by the
projections' own folds (no second fold anywhere: the web app paints what this returns)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from histolabel.audit.as_of import counts, upto
from histolabel.audit.streams import load_history
from histolabel.events.envelope import StoredEvent
from histolabel.projections.labels import SlideLabels, fold_labels
from histolabel.projections.project import ProjectState, fold_project

if TYPE_CHECKING:
    from histolabel.service import HistoLabel


@dataclass(frozen=True)
class Cutoff:
    as_of: str | None = None  # an as_of_instant; events at or before it count
    slide: str | None = None
    # with slide: that slide's first `seq` label events in fold order (with one label stream,
    # its events up to this seq)
    seq: int | None = None

    def keeps(self, event: StoredEvent) -> bool:
        return counts(event, self.as_of)


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
            project = fold_project(upto(project_events, kept[-1].at))
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


def replay(svc: HistoLabel, project_id: str, cutoff: Cutoff) -> list[dict[str, Any]]:
    """Every labeled superpixel of the project as of the cutoff (`histolabel audit replay`)."""
    h = load_history(svc, project_id)
    project, slides = replay_state(h.project, h.labels, cutoff)
    return label_rows(project, slides)


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
