"""The per-slide tables the API reads: superpixel geometry and a model's predictions, as
numpy arrays built from pyarrow tables (reading the parquet files is the caller's job)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

PROB_PREFIX = "prob_"
GEOMETRY = ("id", "y0", "x0", "y1", "x1", "cy", "cx")  # a superpixel table's columns the API reads


@dataclass(frozen=True)
class SuperpixelTable:
    ids: NDArray[np.int64]
    bbox: NDArray[np.int64]  # [n, 4] y0, x0, y1, x1 in level-0 px
    centroid: NDArray[np.float64]  # [n, 2] cy, cx

    @classmethod
    def from_arrow(cls, table: pa.Table) -> SuperpixelTable:
        missing = set(GEOMETRY) - set(table.column_names)
        if missing:
            raise ValueError(f"superpixel table lacks columns {sorted(missing)}")
        ids = table.column("id").to_numpy().astype(np.int64)
        bbox = np.stack([table.column(c).to_numpy() for c in ("y0", "x0", "y1", "x1")], axis=1).astype(
            np.int64
        )
        cen = np.stack([table.column(c).to_numpy() for c in ("cy", "cx")], axis=1).astype(np.float64)
        order = np.argsort(ids)
        return cls(ids[order], bbox[order], cen[order])

    @classmethod
    def empty(cls) -> SuperpixelTable:
        return cls(np.zeros(0, np.int64), np.zeros((0, 4), np.int64), np.zeros((0, 2)))

    def rows(self, ids: NDArray[np.int64]) -> NDArray[np.int64]:
        """Row index of each id (-1 where absent)."""
        pos = np.searchsorted(self.ids, ids)
        pos = np.clip(pos, 0, max(len(self.ids) - 1, 0))
        found = (len(self.ids) > 0) & (self.ids[pos] == ids) if len(self.ids) else np.zeros(len(ids), bool)
        return np.where(found, pos, -1)


@dataclass(frozen=True)
class Predictions:
    ids: NDArray[np.int64]
    categories: list[str]
    probs: NDArray[np.float32]  # [n, k]
    certainty: NDArray[np.float32]
    batch: NDArray[np.int32] | None = None  # BatchBALD batch number (-1: none), when acquired
    batch_rank: NDArray[np.int32] | None = None  # position inside its batch

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Predictions:
        cats = [c[len(PROB_PREFIX) :] for c in table.column_names if c.startswith(PROB_PREFIX)]
        if "id" not in table.column_names or not cats:
            raise ValueError("prediction table needs an id column and prob_<category> columns")
        ids = table.column("id").to_numpy().astype(np.int64)
        probs = np.stack([table.column(PROB_PREFIX + c).to_numpy() for c in cats], axis=1).astype(np.float32)
        if "certainty" in table.column_names:
            certainty = table.column("certainty").to_numpy().astype(np.float32)
        else:
            certainty = probs.max(axis=1)
        order = np.argsort(ids)
        batch = rank = None
        if "batch" in table.column_names and "batch_rank" in table.column_names:
            batch = table.column("batch").to_numpy().astype(np.int32)[order]
            rank = table.column("batch_rank").to_numpy().astype(np.int32)[order]
        return cls(ids[order], cats, probs[order], certainty[order], batch, rank)

    def predicted(self) -> list[str]:
        top = self.probs.argmax(axis=1)
        return [self.categories[i] for i in top]

    def lookup(self, ids: Iterable[int] | None = None) -> dict[int, tuple[str, float, float]]:
        """id -> (predicted category, confidence, certainty), of `ids` only when given (a page
        of labeled superpixels need not cost a dict of the slide's million)."""
        rows = np.arange(len(self.ids))
        if ids is not None:
            want = np.fromiter(ids, np.int64)
            pos = np.clip(np.searchsorted(self.ids, want), 0, max(len(self.ids) - 1, 0))
            rows = pos[(len(self.ids) > 0) & (self.ids[pos] == want)] if len(self.ids) else rows[:0]
        probs = self.probs[rows]
        top = probs.argmax(axis=1) if len(rows) else np.zeros(0, np.int64)
        conf = probs.max(axis=1) if len(rows) else np.zeros(0, np.float32)
        return {
            int(i): (self.categories[t], float(c), float(u))
            for i, t, c, u in zip(self.ids[rows], top, conf, self.certainty[rows], strict=True)
        }
