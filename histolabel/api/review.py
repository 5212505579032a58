"""Review mode: every labeled superpixel as a row (filtered, sorted, grouped and paginated as a
table: `review_table`).

Category ids in rows are resolved through the project's merges, so a label in a merged category
shows (and filters) as the surviving one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from histolabel.projections.labels import SlideLabels, resolved

Row = dict[str, Any]
Resolve = Callable[[str | None], str | None]
PredictionLookup = Mapping[int, tuple[str, float, float]]


def rows_for_slide(
    labels: SlideLabels,
    resolve: Resolve,
    predictions: PredictionLookup | None = None,
) -> list[Row]:
    now = functools.cache(resolve)
    rows = []
    for sp in sorted(labels.entries):
        e = resolved(labels.entries[sp], now)
        pred = predictions.get(sp) if predictions else None
        rows.append(
            {
                "slide_id": labels.slide_id,
                "id": sp,
                "label": e["c"],
                "labeled_by": e["cb"],
                "labeled_at": e["ca"],
                "labels": {u: c for u, (c, _at) in e["l"].items()},
                "review": e["r"],
                "prediction": now(pred[0]) if pred else None,
                "confidence": pred[1] if pred else None,
                "certainty": pred[2] if pred else None,
            }
        )
    return rows


def with_boxes(items: list[Row], boxes: Callable[[str, list[int]], Mapping[int, list[int]]]) -> list[Row]:
    """The page's rows with each superpixel's level-0 box (y0, x0, y1, x1), for the gallery's
    thumbnails; `boxes(slide, ids)` reads them from the slide's superpixel table."""
    by_slide: dict[str, list[int]] = {}
    for row in items:
        by_slide.setdefault(row["slide_id"], []).append(row["id"])
    found = {sid: boxes(sid, ids) for sid, ids in by_slide.items()}
    return [{**row, "bbox": found[row["slide_id"]].get(row["id"])} for row in items]
