"""The guided-labeling queue: the next superpixels to show, across a project's slides.

Before any model: a fixed pseudo-random spread per project and slide, so every annotator walks
the tissue in the same well-mixed order. With predictions: the learning engineer's order
(BatchBALD batches together, then least certain first). Labeled superpixels, and those predicted
as an excluded category, never come back.

What is handed out is leased (histolabel/leases.py): two annotators asking at once get different
superpixels, except the share the project wants labeled twice (settings.label_overlap), which
go to two people each.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from histolabel.api.tables import Predictions
from histolabel.learning.queue import SlideScores, guided_order
from histolabel.leases import Lease


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


def _overlap_seed(project_id: str, slide_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"overlap/{project_id}/{slide_id}".encode()).digest()[:8], "little")


def doubled(project_id: str, slide_id: str, count: int, overlap: float) -> np.ndarray:
    """Per superpixel (index id - 1): whether the project wants two people to label it. A fixed
    draw per slide, so every API instance and every request agrees."""
    if overlap <= 0:
        return np.zeros(count, bool)
    return np.random.default_rng(_overlap_seed(project_id, slide_id)).random(count) < overlap


def slots_of(double: np.ndarray, superpixel_id: int) -> int:
    return 2 if 0 < superpixel_id <= len(double) and double[superpixel_id - 1] else 1


def done_for(entries: Mapping[int, Mapping[str, object]], double: np.ndarray, user: str) -> set[int]:
    """Superpixels the queue no longer offers `user`: labeled by them, labeled by as many people
    as the project wants, or settled by a review alone."""
    out = set()
    for sp, entry in entries.items():
        users = entry.get("l") or {}
        assert isinstance(users, Mapping)
        if user in users or not users or len(users) >= slots_of(double, sp):
            out.add(sp)
    return out


Take = Callable[[Lease, str | None], bool]


def lease_items(
    candidates: Iterable[QueueItem],
    labelers: Callable[[str, int], set[str]],
    slots: Callable[[str, int], int],
    user: str,
    take: Take,
    until: float,
    n: int,
    held: Iterable[Lease] = (),
) -> list[QueueItem]:
    """The first `n` candidates whose lease `user` gets. A superpixel wanted k more times is
    skipped once k slots are found held by others (`held`: leases read beforehand, so most
    of those cost no write); the slot tried first depends on the user, so renewing a lease
    finds the user's own slot first."""
    out: list[QueueItem] = []
    start = int.from_bytes(hashlib.sha256(user.encode()).digest()[:2], "little")
    holders: dict[tuple[str, int], set[str]] = {}
    for lease in held:
        holders.setdefault((lease.slide_id, lease.id), set()).add(lease.holder)
    for item in candidates:
        if len(out) >= n:
            break
        others = labelers(item.slide_id, item.id) - {user}
        total = slots(item.slide_id, item.id)
        wanted = total - len(others)
        if len(holders.get((item.slide_id, item.id), set()) - others - {user}) >= wanted:
            continue
        spent = next(iter(others)) if others else None
        # Each refused slot is held by someone else; once `wanted` are, nothing is left.
        for refused, k in enumerate(range(total)):
            if refused >= wanted:
                break
            if take(Lease(item.slide_id, item.id, (start + k) % total, user, until), spent):
                out.append(item)
                break
    return out
