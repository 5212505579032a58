"""Project state to response bodies."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from histolabel.projections.labels import resolved
from histolabel.projections.project import Category, ProjectState, SlideInfo


def slide_status(slide: SlideInfo) -> str:
    done = {"ingest": slide.ingest, "segment": slide.segmentation, "embed": slide.features or None}
    last_ok = max((f.get("at", "") for f in (slide.ingest, slide.segmentation) if f), default="")
    for feats in slide.features.values():
        last_ok = max(last_ok, feats.get("at", ""))
    # A failure counts until a later step of the pipeline succeeds.
    if slide.failures and slide.failures[-1].get("at", "") > last_ok:
        return "failed"
    if done["embed"]:
        return "embedded"
    if done["segment"]:
        return "segmented"
    if done["ingest"]:
        return "ingested"
    return "registered"


def slide_out(slide: SlideInfo) -> dict[str, Any]:
    return {**slide.model_dump(), "status": slide_status(slide)}


def category_out(cat: Category) -> dict[str, Any]:
    return {
        "id": cat.id,
        "name": cat.name,
        "color": cat.color,
        "hotkey": cat.hotkey,
        "excluded": cat.excluded,
    }


def project_out(state: ProjectState, user: str | None = None) -> dict[str, Any]:
    return {
        "project_id": state.project_id,
        "seq": state.seq,
        "name": state.name,
        "created_at": state.created_at,
        "settings": state.settings.model_dump(),
        "members": {u: {"user": u, **m.model_dump()} for u, m in state.members.items()},
        "categories": [category_out(c) for c in state.live_categories()],
        "slides": [slide_out(s) for s in state.slides.values()],
        "model": state.current_model,
        "predictions": state.predictions,
        "your_role": state.role_of(user) if user else None,
    }


def resolved_entries(
    entries: dict[int, dict[str, Any]], resolve: Callable[[str | None], str | None]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """A slide's label entries (sorted by id) and counts per category as the project knows its
    categories now (see `resolved`); an entry left with nothing is left out."""
    now = functools.cache(resolve)
    out: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for sp in sorted(entries):
        e = resolved(entries[sp], now)
        if e["c"] is None and not e["l"] and e["r"] is None:
            continue
        if e["c"] is not None:
            counts[e["c"]] = counts.get(e["c"], 0) + 1
        out.append({"id": sp, **e})
    return out, counts
