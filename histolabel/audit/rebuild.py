"""Rebuild: the projections folded from zero, compared with the live ones and, when asked,
put in their place (`histolabel projections rebuild`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from histolabel.audit.streams import fresh_fold, load_history
from histolabel.projections.store import first_difference, rewrite

if TYPE_CHECKING:
    from histolabel.service import HistoLabel


def rebuild(svc: HistoLabel, project_id: str, write: bool) -> tuple[int, list[str]]:
    """Fold the projections from zero; returns (events folded, differences from the live ones).
    With write, the fresh fold is put in place of the live projections, writing only what
    differs (the live one is never dropped first). The report words a difference as `audit
    verify` does (histolabel.audit.verify.compare_projections)."""
    h = load_history(svc, project_id)
    fresh_project, fresh_slides = fresh_fold(project_id, h)
    stored_project = svc.projections.load_project(project_id)
    differences = []
    if stored_project is None or stored_project.model_dump() != fresh_project.model_dump():
        differences.append(f"project projection of {project_id} differs from a fresh fold")
    rewrites = []
    for slide, fresh in fresh_slides.items():
        # Stored bodies against the fresh encoding: a sound slide's 10^6 entries are never decoded.
        summary, bodies = svc.projections.load_bodies(project_id, slide)
        change = rewrite(fresh, bodies)
        if change.buckets or summary.summary() != fresh.summary():
            sp = first_difference(fresh, bodies, change.buckets)
            where = f" (first at superpixel {sp})" if sp is not None else " (summary counts)"
            differences.append(f"label projection of slide {slide} differs from a fresh fold{where}")
        rewrites.append(change)
    if write:
        total = sum(s.label_actions for s in fresh_slides.values())
        svc.projections.put_rebuilt(fresh_project, rewrites, total)
    return len(h.all_events()), differences
