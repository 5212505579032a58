"""Rebuild: the projections folded from zero, compared with the live ones and, when asked,
put in their place (`histolabel projections rebuild`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from histolabel.audit.streams import fresh_fold, load_history
from histolabel.audit.verify import first_at, project_problem, slide_problem
from histolabel.projections.store import first_difference, rewrite

if TYPE_CHECKING:
    from histolabel.service import HistoLabel


def rebuild(svc: HistoLabel, project_id: str, write: bool) -> tuple[int, list[str]]:
    """Fold the projections from zero; returns (events folded, differences from the live ones).
    With write, the fresh fold is put in place of the live projections, writing only what
    differs (the live one is never dropped first). The report words a difference as `audit
    verify` does."""
    h = load_history(svc, project_id)
    fresh_project, fresh_slides = fresh_fold(project_id, h)
    stored_project = svc.projections.load_project(project_id)
    problem = project_problem(fresh_project, stored_project)
    differences = [problem] if problem else []
    rewrites = []
    for slide, fresh in fresh_slides.items():
        # Stored bodies against the fresh encoding: a sound slide's 10^6 entries are never decoded.
        summary, bodies = svc.projections.load_bodies(project_id, slide)
        change = rewrite(fresh, bodies)
        if change.buckets or summary.summary() != fresh.summary():
            differences.append(slide_problem(slide, first_at(first_difference(bodies, change.buckets))))
        rewrites.append(change)
    if write:
        total = sum(s.label_actions for s in fresh_slides.values())
        svc.projections.put_rebuilt(fresh_project, rewrites, total)
    return len(h.all_events()), differences
