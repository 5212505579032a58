"""Audit operations over a live store: gather a project's streams and run the pure audit."""

from __future__ import annotations

from dataclasses import dataclass, field

from histolabel.adapters.anchor_store import S3AnchorStore
from histolabel.adapters.dynamo_events import DynamoEventStore
from histolabel.anchors import check_anchors
from histolabel.audit import (
    Cutoff,
    Finding,
    compare_projections,
    history,
    label_rows,
    replay_state,
    verify_streams,
)
from histolabel.events.envelope import StoredEvent, project_stream, slide_of
from histolabel.events.streams import slide_streams
from histolabel.projections.labels import SlideLabels, fold_labels, in_fold_order
from histolabel.projections.project import ProjectState, fold_project
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


def load_history(svc: HistoLabel, project_id: str, scan: bool = False) -> ProjectHistory:
    """Every event of the project. With scan, label streams are also found by scanning the
    table, so a stream whose SlideRegistered or directory entry was tampered with is still
    checked."""
    project = list(svc.events.read(project_stream(project_id)))
    slides = set(fold_project(project).slides) if project else set()
    streams = {s: set(slide_streams(svc.events, project_id, s)) for s in slides}
    if scan and hasattr(svc.events, "scan_streams"):
        for stream in svc.events.scan_streams(f"L#{project_id}#"):
            streams.setdefault(slide_of(stream), set()).add(stream)
    labels = {}
    for slide in sorted(streams):
        found = {s: list(svc.events.read(s)) for s in sorted(streams[slide])}
        labels[slide] = {s: ev for s, ev in found.items() if ev}
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
    anchor_findings: list[Finding] = field(default_factory=list)
    anchors_read: int = 0
    last_good_anchor: str | None = None
    unanchored: list[Finding] = field(default_factory=list)  # per stream: the first event after it

    @property
    def ok(self) -> bool:
        return not self.chain_findings and not self.projection_findings and not self.anchor_findings


def fresh_fold(project_id: str, h: ProjectHistory) -> tuple[ProjectState, dict[str, SlideLabels]]:
    return fold_project(h.project), {s: fold_labels(project_id, s, ev) for s, ev in h.labels.items()}


def verify(svc: HistoLabel, project_id: str, anchors: S3AnchorStore | None = None) -> Verification:
    h = load_history(svc, project_id, scan=True)
    streams = {project_stream(project_id): h.project} | h.streams()
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
    result = Verification(len(h.all_events()), chain, problems)
    if isinstance(svc.events, DynamoEventStore):
        _check_seals(svc.events, anchors or S3AnchorStore(svc.settings), project_id, streams, result)
    return result


def _check_seals(
    events: DynamoEventStore,
    anchors: S3AnchorStore,
    project_id: str,
    streams: dict[str, list[StoredEvent]],
    result: Verification,
) -> None:
    """The history against its anchors, and the events after the last good anchor against the
    append path's MAC (nothing else vouches for them)."""
    from concurrent.futures import ThreadPoolExecutor

    report = check_anchors(anchors.newest_first(project_id), streams)
    result.anchors_read = report.anchors_read
    result.last_good_anchor = report.last_good.name if report.last_good else None
    result.anchor_findings.extend(Finding(s, seq, problem) for s, seq, problem in report.findings)
    where = f"after the last good anchor {result.last_good_anchor}" if report.last_good else "(no anchor yet)"
    with ThreadPoolExecutor(max_workers=8) as pool:
        for stream, stream_events in sorted(streams.items()):
            covered = report.covered(stream)
            tail = [e for e in stream_events if e.seq > covered]
            if not tail:
                continue
            result.unanchored.append(Finding(stream, tail[0].seq, f"{len(tail)} event(s) {where}"))
            for event, ok in zip(tail, pool.map(events.mac_valid, tail), strict=True):
                if not ok:
                    result.anchor_findings.append(
                        Finding(
                            stream,
                            event.seq,
                            f"no valid append-path MAC: written around the append path "
                            f"(by {event.actor_user!r} at {event.at}); first event {where}: "
                            f"seq {tail[0].seq}",
                        )
                    )
                    break


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
