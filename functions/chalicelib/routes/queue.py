"""Routes: guided queue, review list, agreement."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chalicelib import views
from chalicelib.context import Call, Handler
from histolabel.api import queue, review, review_table
from histolabel.leases import LEASE_S
from histolabel.memo import Lru


def _queue(c: Call) -> Any:
    state, n = c.project, c.query.n
    # Room for what colleagues hold right now; each handed-out superpixel is leased.
    room = min(5000, 4 * n + 100)
    candidates, entries, from_model = views.queue_candidates(c.svc, state, c.user, room)
    overlap = state.settings.label_overlap
    now = time.time()
    leases, pid = c.svc.leases, state.project_id

    def slots(sid: str, sp: int) -> int:
        return queue.slots_for(pid, sid, sp, overlap)

    items = queue.lease_items(
        candidates,
        labelers=lambda sid, sp: set((entries[sid].get(sp) or {}).get("l") or {}),
        slots=slots,
        user=c.user,
        take_all=lambda attempts: leases.take_all(pid, attempts, now),
        until=now + LEASE_S,
        n=n,
        held=lambda some: leases.held(pid, now, {(i.slide_id, i.id): slots(i.slide_id, i.id) for i in some}),
    )
    # The published ranking carries its items' geometry; the other orders' items (and a ranking
    # published before it did) read their slides' row groups, a page's slides at once.
    by_slide: dict[str, list[int]] = {}
    for item in items:
        if item.bbox is None:
            by_slide.setdefault(item.slide_id, []).append(item.id)
    read = GEOMETRY_READERS.map(lambda kv: views.geometry(state, *kv), by_slide.items())
    shapes = dict(zip(by_slide, read, strict=True))
    out = []
    for item in items:
        prediction = state.resolve(item.prediction) if item.prediction else None
        bbox: list[int] | None
        centroid: list[float] | None
        if item.bbox is not None:
            bbox, centroid = list(item.bbox), list(item.centroid or ())
        else:
            bbox, centroid = shapes[item.slide_id].get(item.id, (None, None))
        out.append({"slide_id": item.slide_id, "id": item.id, "prediction": prediction,
                    "certainty": item.certainty, "bbox": bbox, "centroid": centroid})  # fmt: skip
    model = state.current_model
    return {"items": out, "model_version": model["model_version"] if model and from_model else None}


def _boxes(c: Call, slide_id: str, ids: list[int]) -> dict[int, list[int]]:
    # Thumbnails are a convenience: {} where the table cannot be read; only the page's row groups.
    return {sp: box for sp, (box, _centroid) in views.geometry(c.project, slide_id, ids).items()}


def _review_list(c: Call) -> Any:
    page = review_table.page(views.query_table(c), c.query)
    page["items"] = review.with_boxes(page["items"], lambda sid, ids: _boxes(c, sid, ids))
    return page


def _review_ids(c: Call) -> Any:
    return review_table.ids(views.query_table(c), c.query)


def _agreement(c: Call) -> Any:
    rows = views.query_table(c)
    cats = [cat.id for cat in c.project.live_categories()]
    if rows.version is None:
        return review_table.agreement_over(rows, cats)
    return _AGREEMENTS.get_or_build(
        (rows.version, tuple(cats)), lambda: review_table.agreement_over(rows, cats)
    )


_AGREEMENTS: Lru[Any] = Lru(8)  # per version of the rows: the same answer while nobody labels


GEOMETRY_READERS = ThreadPoolExecutor(8, thread_name_prefix="geometry")


HANDLERS: dict[str, Handler] = {
    "queue": _queue,
    "review_list": _review_list,
    "review_ids": _review_ids,
    "agreement": _agreement,
}
