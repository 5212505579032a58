"""Review mode: every labeled superpixel as a row, filtered, sorted, grouped and paginated.

Category ids in rows are resolved through the project's merges, so a label in a merged category
shows (and filters) as the surviving one.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from histolabel.api.schemas import ReviewQuery
from histolabel.projections.labels import SlideLabels, resolved

Row = dict[str, Any]
Resolve = Callable[[str | None], str | None]
PredictionLookup = Mapping[int, tuple[str, float, float]]
COLUMN = {"slide": "slide_id"}  # query names that differ from row keys


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


def operand(row: Row, name: str) -> str | None:
    if name == "label":
        return row["label"]
    if name == "prediction":
        return row["prediction"]
    if name == "review":
        review = row["review"]
        return None if review is None else review.get("c")
    if name.startswith("user:"):
        return row["labels"].get(name[5:])
    raise ValueError(f"unknown operand {name!r}")


def _review_action(row: Row) -> str:
    return row["review"]["a"] if row["review"] else "none"


def matches(row: Row, q: ReviewQuery) -> bool:
    if q.slide is not None and row["slide_id"] != q.slide:
        return False
    if q.label is not None and row["label"] != q.label:
        return False
    if q.prediction is not None and row["prediction"] != q.prediction:
        return False
    if q.review is not None and _review_action(row) != q.review:
        return False
    if q.labeled_by is not None and q.labeled_by not in row["labels"]:
        return False
    if q.reviewed_by is not None and (row["review"] is None or row["review"]["by"] != q.reviewed_by):
        return False
    if q.compare_a is not None and q.compare_b is not None:
        a, b = operand(row, q.compare_a), operand(row, q.compare_b)
        # A comparison only speaks about superpixels where both sides have a value.
        if a is None or b is None:
            return False
        if (a == b) != (q.compare == "matches"):
            return False
    return True


def _sort_key(field: str) -> Callable[[Row], tuple[Any, ...]]:
    def key(row: Row) -> tuple[Any, ...]:
        if field == "review":
            value: Any = _review_action(row)
        else:
            value = row[COLUMN.get(field, field)]
        # None sorts last whatever the order; ties break on (slide, id) for stable pages.
        return (value is None, value if value is not None else 0, row["slide_id"], row["id"])

    return key


def group_key(row: Row, field: str) -> str:
    if field == "review":
        return _review_action(row)
    value = row[COLUMN.get(field, field)]
    return "none" if value is None else str(value)


def review_page(rows: Iterable[Row], q: ReviewQuery) -> dict[str, Any]:
    selected = [r for r in rows if matches(r, q)]
    if q.sort == "slide":
        selected.sort(key=lambda r: (r["slide_id"], r["id"]), reverse=q.order == "desc")
    else:
        key = _sort_key(q.sort)
        present = [r for r in selected if key(r)[0] is False]
        absent = [r for r in selected if key(r)[0] is True]
        present.sort(key=key, reverse=q.order == "desc")
        absent.sort(key=lambda r: (r["slide_id"], r["id"]))
        selected = present + absent
    groups = dict(sorted(Counter(group_key(r, q.group_by) for r in selected).items())) if q.group_by else None
    if q.group_by:
        # Grouping keeps each group's rows together, in the requested order within the group.
        order = {g: i for i, g in enumerate(groups or {})}
        selected.sort(key=lambda r: order[group_key(r, q.group_by)])  # type: ignore[arg-type]
    start = int(q.cursor or 0)
    page = selected[start : start + q.limit]
    end = start + len(page)
    return {
        "items": page,
        "groups": groups,
        "total": len(selected),
        "next_cursor": str(end) if end < len(selected) else None,
    }


def review_ids(rows: Iterable[Row], q: ReviewQuery) -> dict[str, Any]:
    """Ids of every row the filters match, by slide, a page of `q.limit` at a time (in slide,
    id order, so pages do not depend on the sort of the list)."""
    selected = sorted((r["slide_id"], r["id"]) for r in rows if matches(r, q))
    start = int(q.cursor or 0)
    page = selected[start : start + q.limit]
    slides: dict[str, list[int]] = {}
    for slide_id, sp in page:
        slides.setdefault(slide_id, []).append(sp)
    end = start + len(page)
    return {
        "slides": slides,
        "total": len(selected),
        "next_cursor": str(end) if end < len(selected) else None,
    }


def with_boxes(items: list[Row], boxes: Callable[[str, list[int]], Mapping[int, list[int]]]) -> list[Row]:
    """The page's rows with each superpixel's level-0 box (y0, x0, y1, x1), for the gallery's
    thumbnails; `boxes(slide, ids)` reads them from the slide's superpixel table."""
    by_slide: dict[str, list[int]] = {}
    for row in items:
        by_slide.setdefault(row["slide_id"], []).append(row["id"])
    found = {sid: boxes(sid, ids) for sid, ids in by_slide.items()}
    return [{**row, "bbox": found[row["slide_id"]].get(row["id"])} for row in items]
