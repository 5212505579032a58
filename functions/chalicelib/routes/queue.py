"""Routes: guided queue, review list, agreement."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from chalicelib import views
from chalicelib.context import Call, Handler
from histolabel.api import agreement, queue, review
from histolabel.commands import (
    CommandRejected,
)
from histolabel.leases import LEASE_S


def _queue(c: Call) -> Any:
    state, n = c.project, c.query.n
    seg = views.segmented_slides(state)
    entries = {sid: views.current_labels(c.svc, state.project_id, sid).entries for sid in seg}
    overlap = state.settings.label_overlap
    double = {sid: queue.doubled(state.project_id, sid, int(v["count"]), overlap) for sid, v in seg.items()}
    labeled = {sid: queue.done_for(entries[sid], double[sid], c.user) for sid in seg}
    preds = views.model_predictions(state, sorted(seg))
    # A prediction in a category merged into an excluded one counts as excluded too.
    excluded = {
        cid for cid in state.categories
        if (r := state.resolve(cid)) is None or state.categories[r].excluded
    }  # fmt: skip
    # Room for what colleagues hold right now; each handed-out superpixel is leased.
    room = min(5000, 4 * n + 100)
    if preds:
        candidates = queue.uncertainty_queue(preds, labeled, excluded, room)
    else:
        counts = {s: int(v["count"]) for s, v in seg.items()}
        candidates = queue.spread_queue(state.project_id, counts, labeled, room)
    now = time.time()
    leases = c.svc.leases
    items = queue.lease_items(
        candidates,
        labelers=lambda sid, sp: set((entries[sid].get(sp) or {}).get("l") or {}),
        slots=lambda sid, sp: queue.slots_of(double[sid], sp),
        user=c.user,
        take=lambda lease, spent: leases.take(state.project_id, lease, now, spent),
        until=now + LEASE_S,
        n=n,
        held=leases.held(state.project_id, now),
    )
    out = []
    for item in items:
        prediction = state.resolve(item.prediction) if item.prediction else None
        row: dict[str, Any] = {"slide_id": item.slide_id, "id": item.id, "prediction": prediction,
                               "certainty": item.certainty, "bbox": None, "centroid": None}  # fmt: skip
        try:
            table = views.table_for(state, item.slide_id)
            at = int(table.rows(np.array([item.id]))[0])
            if at >= 0:
                row["bbox"] = [int(v) for v in table.bbox[at]]
                row["centroid"] = [float(v) for v in table.centroid[at]]
        except (CommandRejected, OSError, ValueError):
            pass  # geometry is a convenience; the queue still names the superpixel
        out.append(row)
    model = state.current_model
    return {"items": out, "model_version": model["model_version"] if model and preds else None}


def _boxes(c: Call, slide_id: str, ids: list[int]) -> dict[int, list[int]]:
    try:
        table = views.table_for(c.project, slide_id)
        rows = table.rows(np.array(ids, np.int64))
    except (CommandRejected, OSError, ValueError):
        return {}  # thumbnails are a convenience; the rows stand without them
    return {sp: [int(v) for v in table.bbox[r]] for sp, r in zip(ids, rows.tolist(), strict=True) if r >= 0}


def _review_list(c: Call) -> Any:
    page = review.review_page(views.query_rows(c), c.query)
    page["items"] = review.with_boxes(page["items"], lambda sid, ids: _boxes(c, sid, ids))
    return page


def _review_ids(c: Call) -> Any:
    return review.review_ids(views.query_rows(c), c.query)


def _agreement(c: Call) -> Any:
    state = c.project
    rows = views.query_rows(c)
    cats = [cat.id for cat in state.live_categories()]
    by_user: dict[str, dict[tuple[str, int], str]] = {}
    for r in rows:
        for user, cat in r["labels"].items():
            by_user.setdefault(user, {})[(r["slide_id"], r["id"])] = cat
    labels = {(r["slide_id"], r["id"]): r["label"] for r in rows if r["label"] and r["prediction"]}
    preds = {(r["slide_id"], r["id"]): r["prediction"] for r in rows if r["label"] and r["prediction"]}
    return {
        "users": agreement.user_agreement(by_user, cats),
        "predictions": agreement.pair_agreement(labels, preds, cats) if labels else None,
    }


HANDLERS: dict[str, Handler] = {
    "queue": _queue,
    "review_list": _review_list,
    "review_ids": _review_ids,
    "agreement": _agreement,
}
