"""A project's stored events, gathered for the audit: its project stream and every label stream
of every slide, with the label events in fold order."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from histolabel.events.envelope import StoredEvent, project_stream, slide_of
from histolabel.events.streams import slide_streams
from histolabel.projections.labels import SlideLabels, fold_labels, in_fold_order
from histolabel.projections.project import ProjectState, fold_project

if TYPE_CHECKING:
    from histolabel.service import HistoLabel


@dataclass
class ProjectHistory:
    project: list[StoredEvent]
    label_streams: dict[str, dict[str, list[StoredEvent]]]  # slide -> stream -> events by seq

    @property
    def labels(self) -> dict[str, list[StoredEvent]]:
        """slide -> its label events (every stream) in fold order."""
        return {
            slide: [e for _key, e in in_fold_order({}, (e for ev in streams.values() for e in ev))]
            for slide, streams in self.label_streams.items()
        }

    def streams(self) -> dict[str, list[StoredEvent]]:
        """Every stream of the project (project, label) -> its events in seq order."""
        out = {project_stream(self.project[0].project): self.project} if self.project else {}
        for streams in self.label_streams.values():
            out.update(streams)
        return out

    def all_events(self) -> list[StoredEvent]:
        return self.project + [e for s in self.label_streams.values() for ev in s.values() for e in ev]


READERS = 8  # streams read at once


def load_history(svc: HistoLabel, project_id: str, more: Iterable[str] = ()) -> ProjectHistory:
    """Every event of the project: its slides' label streams as their directories list them,
    and `more` label streams found otherwise (verify scans the table, so a stream whose
    SlideRegistered or directory entry was tampered with is still checked; the scan is not
    here, so the API, which reads histories, is not granted a table scan)."""
    project = list(svc.events.read(project_stream(project_id)))
    slides = set(fold_project(project).slides) if project else set()
    streams = {s: set(slide_streams(svc.events, project_id, s)) for s in slides}
    for stream in more:
        streams.setdefault(slide_of(stream), set()).add(stream)
    # Every stream read at once: a slide's streams are one per member, each its own partition.
    names = [(slide, s) for slide in sorted(streams) for s in sorted(streams[slide])]
    with ThreadPoolExecutor(max_workers=READERS) as pool:
        read = pool.map(lambda name: list(svc.events.read(name[1])), names)
        labels: dict[str, dict[str, list[StoredEvent]]] = {slide: {} for slide in sorted(streams)}
        for (slide, s), ev in zip(names, read, strict=True):
            if ev:
                labels[slide][s] = ev
    return ProjectHistory(project, labels)


def fresh_fold(project_id: str, h: ProjectHistory) -> tuple[ProjectState, dict[str, SlideLabels]]:
    return fold_project(h.project), {s: fold_labels(project_id, s, ev) for s, ev in h.labels.items()}
