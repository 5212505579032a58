"""Verify: every hash chain intact, the history through its signed anchors, the events after the
last good anchor carrying the append path's MAC, and the projections equal to a fresh fold."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from histolabel.adapters.anchor_store import S3AnchorStore
from histolabel.adapters.dynamo_events import DynamoEventStore
from histolabel.audit.anchors import check_anchors
from histolabel.audit.streams import fresh_fold, load_history
from histolabel.events.envelope import StoredEvent, project_stream, verify_chain
from histolabel.projections.labels import SlideLabels
from histolabel.projections.project import ProjectState

if TYPE_CHECKING:
    from histolabel.service import HistoLabel


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
    problem = project_problem(fresh_project, stored_project)
    problems = [problem] if problem else []
    for slide, fresh in fresh_slides.items():
        stored = stored_slides.get(slide)
        if stored is None or stored.entries != fresh.entries or stored.summary() != fresh.summary():
            problems.append(slide_problem(slide, _first_difference(fresh, stored)))
    return problems


def project_problem(fresh: ProjectState, stored: ProjectState | None) -> str | None:
    """The report's line for a project projection that differs from a fresh fold (verify's and
    rebuild's), None where it does not."""
    if stored is not None and stored.model_dump() == fresh.model_dump():
        return None
    return f"project projection of {fresh.project_id} differs from a fresh fold"


def slide_problem(slide: str, where: str) -> str:
    """The report's line for a slide's label projection that differs (verify's and rebuild's)."""
    return f"label projection of slide {slide} differs from a fresh fold ({where})"


def first_at(sp: int | None) -> str:
    """slide_problem's `where` for the lowest superpixel that differs (None: only the counts)."""
    return "summary counts" if sp is None else f"first at superpixel {sp}"


def _first_difference(fresh: SlideLabels, stored: SlideLabels | None) -> str:
    if stored is None:
        return "missing"
    differ = (sp for sp in sorted(set(fresh.entries) | set(stored.entries))
              if fresh.entries.get(sp) != stored.entries.get(sp))  # fmt: skip
    return first_at(next(differ, None))


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


def verify(svc: HistoLabel, project_id: str, anchors: S3AnchorStore | None = None) -> Verification:
    scanned = svc.events.scan_streams(f"L#{project_id}#") if hasattr(svc.events, "scan_streams") else ()
    h = load_history(svc, project_id, scanned)
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
