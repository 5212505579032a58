"""The superpixel table built from per-block sums spooled to local disk, for segmentations
with more objects than fit comfortably in memory (an import of 10^6 nuclei).

`TableBuilder` holds eight numbers per id for the whole run; this holds only a bounded buffer
of block sums, files them by id chunk, and at the end sums one chunk of ids at a time into
table rows (the same rows, by `table.rows`). Ids that received no pixel are left out and the
rest numbered densely in id order; `dropped` lists the left-out ids for the caller, which
renumbers its label image to match (`dense`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from histolabel.segmentation.table import BlockStats, block_stats, rows

STAT = np.dtype(
    [("id", "<i8"), ("area", "<i8"), ("sum_y", "<f8"), ("sum_x", "<f8"),
     ("y0", "<i8"), ("x0", "<i8"), ("y1", "<i8"), ("x1", "<i8")]
)  # fmt: skip
FIELDS = ("id", "area", "sum_y", "sum_x", "y0", "x0", "y1", "x1")  # BlockStats' order
CHUNK = 65_536  # ids summed at a time
BUFFER_BYTES = 8 << 20  # block sums held before they are filed


class SpooledTable:
    """Per-id sums over blocks of a label image with ids 1..count (see the module)."""

    def __init__(self, workdir: Path, count: int, level: int) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.count, self.level = count, level
        self._pending: list[np.ndarray] = []
        self._bytes = 0
        self.dropped = np.zeros(0, np.int64)  # ids with no pixel, sorted (after `batches`)
        self.kept = 0

    def add(self, ids: np.ndarray, y: int, x: int) -> None:
        self.merge(block_stats(ids, y, x))

    def merge(self, stats: BlockStats | None) -> None:
        if stats is None:
            return
        rec = np.empty(len(stats[0]), STAT)
        for name, column in zip(FIELDS, stats, strict=True):
            rec[name] = column
        self._pending.append(rec)
        self._bytes += rec.nbytes
        if self._bytes >= BUFFER_BYTES:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        recs = np.concatenate(self._pending)
        self._pending, self._bytes = [], 0
        chunk = (recs["id"] - 1) // CHUNK
        order = np.argsort(chunk, kind="stable")  # keeps block order within a chunk
        chunk = chunk[order]
        starts = np.flatnonzero(np.r_[True, chunk[1:] != chunk[:-1]])
        for s, e in zip(starts, [*starts[1:], len(chunk)], strict=True):
            with (self.dir / f"{int(chunk[s])}.bin").open("ab") as fh:
                fh.write(recs[order[s:e]].tobytes())

    def batches(
        self, extra: Callable[[np.ndarray], dict[str, pa.Array]] | None = None
    ) -> Iterator[pa.RecordBatch]:
        """Table rows a chunk of ids at a time, densely renumbered; `extra(ids)` adds columns
        for the kept (pre-renumbering) ids of each chunk."""
        self._flush()
        dropped: list[np.ndarray] = []
        dense = 0
        big = np.iinfo(np.int64).max
        for c in range(-(-self.count // CHUNK)):
            lo = c * CHUNK + 1
            n = min(self.count, lo + CHUNK - 1) - lo + 1
            path = self.dir / f"{c}.bin"
            recs = np.fromfile(path, STAT) if path.exists() else np.zeros(0, STAT)
            local = recs["id"] - lo
            area = np.bincount(local, weights=recs["area"], minlength=n).astype(np.int64)
            sum_y = np.bincount(local, weights=recs["sum_y"], minlength=n)
            sum_x = np.bincount(local, weights=recs["sum_x"], minlength=n)
            box: dict[str, Any] = {}
            for name, fill, op in (("y0", big, np.minimum), ("x0", big, np.minimum),
                                   ("y1", 0, np.maximum), ("x1", 0, np.maximum)):  # fmt: skip
                box[name] = np.full(n, fill, np.int64)
                op.at(box[name], local, recs[name])
            kept = area > 0
            ids = np.arange(lo, lo + n)
            dropped.append(ids[~kept])
            k = int(kept.sum())
            if not k:
                continue
            new_ids = np.arange(dense + 1, dense + k + 1)
            batch = rows(new_ids, self.level, area[kept], sum_y[kept], sum_x[kept],
                         *(box[b][kept] for b in ("y0", "x0", "y1", "x1")))  # fmt: skip
            dense += k
            if extra is not None:
                for name, column in extra(ids[kept]).items():
                    batch = batch.append_column(name, column)
            yield batch
        self.kept = dense
        self.dropped = np.concatenate(dropped) if dropped else np.zeros(0, np.int64)

    def dense(self, ids: np.ndarray) -> np.ndarray:
        """Label ids renumbered as `batches` numbered them (0 stays 0; call after it)."""
        if not len(self.dropped):
            return ids
        return (ids - np.searchsorted(self.dropped, ids).astype(ids.dtype)).astype(ids.dtype)
