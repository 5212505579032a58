"""The guided-labeling queue: the next superpixels to show, across a project's slides.

Before any model: a fixed pseudo-random spread per project and slide, so every annotator walks
the tissue in the same well-mixed order. With predictions: the learning engineer's order
(BatchBALD batches together, then least certain first). Labeled superpixels, and those predicted
as an excluded category, never come back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from histolabel.api.tables import Predictions
from histolabel.learning.queue import SlideScores, guided_order


@dataclass(frozen=True)
class QueueItem:
    slide_id: str
    id: int
    prediction: str | None = None
    certainty: float | None = None


def _seed(project_id: str, slide_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{project_id}/{slide_id}".encode()).digest()[:8], "little")


def spread_order(project_id: str, slide_id: str, count: int) -> np.ndarray:
    """Ids 1..count in the project's fixed spread order."""
    return np.random.default_rng(_seed(project_id, slide_id)).permutation(count).astype(np.int64) + 1


def spread_queue(
    project_id: str,
    slides: Mapping[str, int],
    labeled: Mapping[str, set[int]],
    n: int,
) -> list[QueueItem]:
    """Round-robin over slides (sorted), each in its spread order, skipping labeled ids."""
    iters = {}
    for slide_id in sorted(slides):
        order = spread_order(project_id, slide_id, slides[slide_id])
        done = labeled.get(slide_id, set())
        if done:
            order = order[~np.isin(order, np.fromiter(done, np.int64, len(done)))]
        iters[slide_id] = order
    out: list[QueueItem] = []
    depth = 0
    while len(out) < n and any(depth < len(o) for o in iters.values()):
        for slide_id, order in iters.items():
            if depth < len(order) and len(out) < n:
                out.append(QueueItem(slide_id, int(order[depth])))
        depth += 1
    return out


def slide_scores(slide_id: str, pred: Predictions) -> SlideScores:
    """A prediction table as the learning queue's per-slide scores (row i = id i+1; ids the table
    lacks get an infinite certainty, which the queue leaves out)."""
    n = int(pred.ids.max()) if len(pred.ids) else 0
    rows = pred.ids - 1
    cert = np.full(n, np.inf, np.float32)
    cert[rows] = pred.certainty
    batch = rank = None
    if pred.batch is not None and pred.batch_rank is not None:
        batch, rank = np.full(n, -1, np.int32), np.zeros(n, np.int32)
        batch[rows], rank[rows] = pred.batch, pred.batch_rank
    return SlideScores(slide_id, cert, batch, rank)


def uncertainty_queue(
    predictions: Mapping[str, Predictions],
    labeled: Mapping[str, set[int]],
    excluded: set[str],
    n: int,
) -> list[QueueItem]:
    """The learning queue's order (histolabel.learning.queue.guided_order): BatchBALD batches
    first, each kept together, then least certain first; ties by slide, then id. Superpixels
    predicted as an `excluded` category are skipped, like labeled ones."""
    scores, skip, top = [], {}, {}
    for slide_id, pred in predictions.items():
        if len(pred.ids) == 0:
            continue
        scores.append(slide_scores(slide_id, pred))
        top[slide_id] = pred.probs.argmax(axis=1)
        bad = [i for i, c in enumerate(pred.categories) if c in excluded]
        if bad:
            skip[slide_id] = pred.ids[np.isin(top[slide_id], bad)].tolist()
    out = []
    for item in guided_order(scores, labeled, skip=skip, limit=n):
        pred = predictions[item.slide_id]
        row = int(np.searchsorted(pred.ids, item.superpixel_id))
        category = pred.categories[int(top[item.slide_id][row])]
        out.append(QueueItem(item.slide_id, item.superpixel_id, category, item.certainty))
    return out
