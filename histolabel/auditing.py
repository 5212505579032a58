"""Audit operations over a live store: gather a project's streams and run the pure audit."""

from __future__ import annotations

from dataclasses import dataclass

from histolabel.audit import (
    Cutoff,
    Finding,
    compare_projections,
    history,
    label_rows,
    replay_state,
    verify_streams,
)
from histolabel.events.envelope import StoredEvent, label_stream, project_stream, slide_of
from histolabel.projections.labels import SlideLabels, fold_labels
from histolabel.projections.project import ProjectState, fold_project
from histolabel.service import HistoLabel


@dataclass
class ProjectHistory:
    project: list[StoredEvent]
    labels: dict[str, list[StoredEvent]]

    def all_events(self) -> list[StoredEvent]:
        return self.project + [e for events in self.labels.values() for e in events]


def load_history(svc: HistoLabel, project_id: str, scan: bool = False) -> ProjectHistory:
    """Every event of the project. With scan, label streams are also found by scanning the
    table, so a stream whose SlideRegistered was tampered with is still checked."""
    project = list(svc.events.read(project_stream(project_id)))
    slides = set(fold_project(project).slides) if project else set()
    if scan and hasattr(svc.events, "scan_streams"):
        slides |= {slide_of(s) for s in svc.events.scan_streams(f"L#{project_id}#")}
    labels = {s: list(svc.events.read(label_stream(project_id, s))) for s in sorted(slides)}
    return ProjectHistory(project, labels)


def replay(svc: HistoLabel, project_id: str, cutoff: Cutoff) -> list[dict]:
    h = load_history(svc, project_id)
    project, slides = replay_state(h.project, h.labels, cutoff)
    return label_rows(project, slides)


@dataclass
class Verification:
    events_checked: int
    chain_findings: list[Finding]
    projection_findings: list[str]

    @property
    def ok(self) -> bool:
        return not self.chain_findings and not self.projection_findings


def fresh_fold(project_id: str, h: ProjectHistory) -> tuple[ProjectState, dict[str, SlideLabels]]:
    return fold_project(h.project), {s: fold_labels(project_id, s, ev) for s, ev in h.labels.items()}


def verify(svc: HistoLabel, project_id: str) -> Verification:
    h = load_history(svc, project_id, scan=True)
    streams = {project_stream(project_id): h.project} | {
        label_stream(project_id, s): ev for s, ev in h.labels.items()
    }
    chain = verify_streams(streams)
    fresh_project, fresh_slides = fresh_fold(project_id, h)
    stored_project = svc.projections.load_project(project_id)
    stored_slides = {s: svc.projections.load_slide(project_id, s) for s in fresh_slides}
    problems = compare_projections(fresh_project, stored_project, fresh_slides, stored_slides)
    total = sum(s.label_actions for s in fresh_slides.values())
    if svc.projections.labels_total(project_id) != total:
        problems.append(
            f"project label total {svc.projections.labels_total(project_id)} != fresh fold's {total}"
        )
    return Verification(len(h.all_events()), chain, problems)


def project_history(
    svc: HistoLabel, project_id: str, user: str | None = None, superpixel: tuple[str, int] | None = None
) -> list[dict]:
    return history(load_history(svc, project_id).all_events(), user, superpixel)


def rebuild(svc: HistoLabel, project_id: str, write: bool) -> tuple[int, list[str]]:
    """Fold the projections from zero; returns (events folded, differences from the live ones).
    With write, the live projections are replaced by the fresh fold."""
    h = load_history(svc, project_id)
    fresh_project, fresh_slides = fresh_fold(project_id, h)
    stored_project = svc.projections.load_project(project_id)
    stored_slides = {s: svc.projections.load_slide(project_id, s) for s in fresh_slides}
    differences = compare_projections(fresh_project, stored_project, fresh_slides, stored_slides)
    if write:
        total = sum(s.label_actions for s in fresh_slides.values())
        svc.projections.drop_project(project_id, list(fresh_slides))
        svc.projections.put_rebuilt(fresh_project, list(fresh_slides.values()), total)
    return len(h.all_events()), differences
