"""Rebuild: the projections folded from zero, compared with the live ones and, when asked,
put in their place (`histolabel projections rebuild`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from histolabel.audit.streams import fresh_fold, load_history
from histolabel.audit.verify import compare_projections
from histolabel.projections.store import rewrite

if TYPE_CHECKING:
    from histolabel.service import HistoLabel


def rebuild(svc: HistoLabel, project_id: str, write: bool) -> tuple[int, list[str]]:
    """Fold the projections from zero; returns (events folded, differences from the live ones).
    With write, the fresh fold is put in place of the live projections, writing only what
    differs (the live one is never dropped first)."""
    h = load_history(svc, project_id)
    fresh_project, fresh_slides = fresh_fold(project_id, h)
    stored_project = svc.projections.load_project(project_id)
    stored_slides = {s: svc.projections.load_slide(project_id, s) for s in fresh_slides}
    differences = compare_projections(fresh_project, stored_project, fresh_slides, stored_slides)
    if write:
        total = sum(s.label_actions for s in fresh_slides.values())
        rewrites = [rewrite(fresh, stored_slides.get(s)) for s, fresh in fresh_slides.items()]
        svc.projections.put_rebuilt(fresh_project, rewrites, total)
    return len(h.all_events()), differences
