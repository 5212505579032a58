"""The order a model's predictions give the guided queue: the learning queue's order
(BatchBALD batches together, then least certain first) across slides, and the merged project
ranking the predict job publishes so that a queue request reads one small table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from histolabel.api.tables import Predictions
from histolabel.learning.queue import SlideScores, guided_order

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class QueueItem:
    slide_id: str
    id: int
    prediction: str | None = None
    certainty: float | None = None


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


# ---- the merged project ranking ---------------------------------------------------------------
# Published by the predict job beside its per-slide tables: the first RANKING_SIZE superpixels of
# the guided order across every slide, so the queue reads one small table, not every slide's.

RANKING_FILE = "_ranking.parquet"  # slide ids start with a letter or digit: never a slide's name
RANKING_SIZE = 10_000


def ranking_table(predictions: Mapping[str, Predictions], labeled: Mapping[str, set[int]],
                  size: int = RANKING_SIZE) -> pa.Table:  # fmt: skip
    """The guided order's first `size` items (uncertainty_queue, nothing excluded): slide_id, id,
    prediction (top category), certainty."""
    import pyarrow as pa

    items = uncertainty_queue(predictions, labeled, set(), size)
    return pa.table(
        {
            "slide_id": pa.array([i.slide_id for i in items], pa.string()),
            "id": pa.array([i.id for i in items], pa.int64()),
            "prediction": pa.array([i.prediction for i in items], pa.string()),
            "certainty": pa.array([i.certainty for i in items], pa.float32()),
        }
    )


def ranking_items(table: pa.Table) -> list[QueueItem]:
    missing = {"slide_id", "id", "prediction", "certainty"} - set(table.column_names)
    if missing:
        raise ValueError(f"ranking table lacks columns {sorted(missing)}")
    cols = [table.column(c).to_pylist() for c in ("slide_id", "id", "prediction", "certainty")]
    return [
        QueueItem(s, int(i), p, None if c is None else float(c)) for s, i, p, c in zip(*cols, strict=True)
    ]
