"""The order a model's predictions give the guided queue: the learning queue's order
(BatchBALD batches together, then least certain first) across slides, and the merged project
ranking the predict job publishes so that a queue request reads one small table."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from histolabel.api.tables import GEOMETRY, Predictions, SuperpixelTable
from histolabel.learning.certainty import least_certain
from histolabel.learning.queue import SlideScores, guided_order

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class QueueItem:
    slide_id: str
    id: int
    prediction: str | None = None
    certainty: float | None = None
    # Level-0 box (y0, x0, y1, x1) and centroid (cy, cx) where the ranking carries them: a
    # page of such items reads no superpixel table.
    bbox: tuple[int, int, int, int] | None = None
    centroid: tuple[float, float] | None = None


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


GEOMETRY_COLUMNS = GEOMETRY[1:]


def with_geometry(table: pa.Table, geometry: Callable[[str, list[int]], SuperpixelTable]) -> pa.Table:
    """A ranking table with each item's level-0 box and centroid (GEOMETRY_COLUMNS, null where
    `geometry` (slide, ids) -> rows found does not hold the id), read once by the job that
    publishes it instead of by every queue request."""
    import pyarrow as pa

    slides = np.asarray(table.column("slide_id").to_pylist(), object)
    ids = np.asarray(table.column("id").to_pylist(), np.int64)
    values = np.zeros((len(ids), 6), np.float64)
    found = np.zeros(len(ids), bool)
    for slide_id in sorted(set(slides.tolist())):
        rows = np.flatnonzero(slides == slide_id)
        sp = geometry(slide_id, ids[rows].tolist())
        at = sp.rows(ids[rows])
        hit = at >= 0
        values[rows[hit], :4] = sp.bbox[at[hit]]
        values[rows[hit], 4:] = sp.centroid[at[hit]]
        found[rows[hit]] = True
    for k, name in enumerate(GEOMETRY_COLUMNS):
        kind = pa.int64() if k < 4 else pa.float64()
        col = values[:, k].astype(np.int64) if k < 4 else values[:, k]
        table = table.append_column(name, pa.array(col, kind, mask=~found))
    return table


def ranking_items(table: pa.Table) -> list[QueueItem]:
    missing = {"slide_id", "id", "prediction", "certainty"} - set(table.column_names)
    if missing:
        raise ValueError(f"ranking table lacks columns {sorted(missing)}")
    cols = [table.column(c).to_pylist() for c in ("slide_id", "id", "prediction", "certainty")]
    # Rankings published before they carried geometry: their items have none (the queue reads it).
    shapes = (
        zip(*(table.column(c).to_pylist() for c in GEOMETRY_COLUMNS), strict=True)
        if set(GEOMETRY_COLUMNS) <= set(table.column_names)
        else ((None,) * 6 for _ in range(table.num_rows))
    )
    out = []
    for (s, i, p, c), g in zip(zip(*cols, strict=True), shapes, strict=True):
        box = None if g[0] is None else (int(g[0]), int(g[1]), int(g[2]), int(g[3]))
        centroid = None if g[4] is None else (float(g[4]), float(g[5]))
        out.append(QueueItem(s, int(i), p, None if c is None else float(c), box, centroid))
    return out


class RankingBuilder:
    """`ranking_table` of every slide's predictions, fed a slide at a time and holding only the
    rows that can reach the ranking: the `size + reserve` least certain unlabeled superpixels
    across the slides so far (ties by slide, then id, as the guided order breaks them), and the
    BatchBALD picks. `reserve` is the most picks the round can make: picks go first and are
    taken out of the rest, so the rest needs that many spare rows. Slides come in sorted order."""

    def __init__(self, size: int | None = None, reserve: int = 0) -> None:
        self.size = RANKING_SIZE if size is None else size
        self.keep = self.size + max(reserve, 0)
        self.slides: list[str] = []
        self.categories: list[str] | None = None
        self._slide = np.empty(0, np.int64)
        self._id = np.empty(0, np.int64)
        self._cert = np.empty(0, np.float32)
        self._probs: np.ndarray | None = None
        self._picked: dict[str, Predictions] = {}

    def add(self, slide_id: str, pred: Predictions, labeled: Collection[int] = ()) -> None:
        """A slide's predictions with no batches yet; `labeled`: its ids the ranking leaves out."""
        if self.slides and slide_id <= self.slides[-1]:
            raise ValueError(f"slides must come in sorted order: {slide_id!r} after {self.slides[-1]!r}")
        self.slides.append(slide_id)
        self.categories = list(pred.categories)
        cert = np.asarray(pred.certainty, np.float32)
        out = ~np.isfinite(cert) | np.isin(pred.ids, np.fromiter(labeled, np.int64))
        mine = np.flatnonzero(~out)
        mine = mine[least_certain(cert[mine], self.keep)]
        cert_all = np.concatenate([self._cert, cert[mine]])
        slide_all = np.concatenate([self._slide, np.full(mine.size, len(self.slides) - 1)])
        id_all = np.concatenate([self._id, pred.ids[mine]])
        order = np.lexsort((id_all, slide_all, cert_all))[: self.keep]
        probs = pred.probs[mine] if self._probs is None else np.concatenate([self._probs, pred.probs[mine]])
        self._cert, self._slide, self._id, self._probs = (
            cert_all[order],
            slide_all[order],
            id_all[order],
            probs[order],
        )

    def add_picks(self, slide_id: str, pred: Predictions) -> None:
        """A slide's predictions again once the joint acquisition gave it batches: its picks."""
        if pred.batch is None or pred.batch_rank is None:
            return
        rows = np.flatnonzero(pred.batch >= 0)
        if rows.size:
            self._picked[slide_id] = Predictions(
                pred.ids[rows], list(pred.categories), pred.probs[rows], pred.certainty[rows],
                pred.batch[rows], pred.batch_rank[rows],
            )  # fmt: skip

    def table(self) -> pa.Table:
        """`ranking_table` of the rows kept (the same table as of every slide's whole predictions)."""
        preds: dict[str, Predictions] = {}
        cats = list(self.categories or [])
        for si, slide_id in enumerate(self.slides):
            rows = np.flatnonzero(self._slide == si)
            picked = self._picked.get(slide_id)
            ids, certs = self._id[rows], self._cert[rows]
            probs = self._probs[rows] if self._probs is not None else np.zeros((0, len(cats)), np.float32)
            batch, rank = np.full(rows.size, -1, np.int32), np.zeros(rows.size, np.int32)
            if picked is not None and picked.batch is not None and picked.batch_rank is not None:
                rest = ~np.isin(ids, picked.ids)  # a kept row that is also a pick is kept as the pick
                ids = np.concatenate([ids[rest], picked.ids])
                certs = np.concatenate([certs[rest], picked.certainty])
                probs = np.concatenate([probs[rest], picked.probs])
                batch = np.concatenate([batch[rest], picked.batch])
                rank = np.concatenate([rank[rest], picked.batch_rank])
            if ids.size == 0:
                continue
            order = np.argsort(ids)
            preds[slide_id] = Predictions(
                ids[order], cats, probs[order], certs[order], batch[order], rank[order]
            )
        return ranking_table(preds, {}, self.size)
