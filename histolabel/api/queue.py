"""The guided-labeling queue: the next superpixels to show, across a project's slides.

Before any model: a fixed pseudo-random spread per project and slide, so every annotator walks
the tissue in the same well-mixed order. With predictions: least certain first. Labeled
superpixels, and those predicted as an excluded category, never come back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from histolabel.api.tables import Predictions


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


def uncertainty_queue(
    predictions: Mapping[str, Predictions],
    labeled: Mapping[str, set[int]],
    excluded: set[str],
    n: int,
) -> list[QueueItem]:
    """The n least-certain unlabeled superpixels across slides (ties: slide, id)."""
    candidates: list[tuple[float, str, int, str]] = []
    for slide_id in sorted(predictions):
        pred = predictions[slide_id]
        keep = np.ones(len(pred.ids), dtype=bool)
        done = labeled.get(slide_id, set())
        if done:
            keep &= ~np.isin(pred.ids, np.fromiter(done, np.int64, len(done)))
        top = pred.probs.argmax(axis=1) if len(pred.ids) else np.zeros(0, np.int64)
        if excluded:
            bad = [i for i, c in enumerate(pred.categories) if c in excluded]
            keep &= ~np.isin(top, bad)
        idx = np.flatnonzero(keep)
        if len(idx) > n:
            idx = idx[np.argsort(pred.certainty[idx], kind="stable")[:n]]
        for i in idx:
            candidates.append((float(pred.certainty[i]), slide_id, int(pred.ids[i]), pred.categories[top[i]]))
    candidates.sort(key=lambda c: (c[0], c[1], c[2]))
    return [QueueItem(s, i, p, c) for c, s, i, p in candidates[:n]]
