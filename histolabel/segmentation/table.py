"""The per-superpixel table (id, bbox, centroid, area, level), accumulated block by block."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

if TYPE_CHECKING:
    import pyarrow as pa

COLUMNS = ("id", "y0", "x0", "y1", "x1", "cy", "cx", "area", "level")


# ids present, then per id: area, sum of y, sum of x, bbox y0, x0, y1, x1 (label px)
BlockStats = tuple[np.ndarray, ...]


def block_stats(ids: np.ndarray, y: int, x: int) -> BlockStats | None:
    """Compact per-id sums over one block of labels whose top-left pixel is (y, x)."""
    present, inverse = _unique(ids)
    local = inverse.reshape(ids.shape)
    if present[0] == 0:
        present = present[1:]
    else:
        local = local + 1
    if not len(present):
        return None
    k = len(present) + 1
    yy, xx = np.indices(ids.shape, dtype=np.float64)
    flat = local.ravel()
    area = np.bincount(flat, minlength=k)[1:]
    sum_y = np.bincount(flat, weights=yy.ravel() + y, minlength=k)[1:]
    sum_x = np.bincount(flat, weights=xx.ravel() + x, minlength=k)[1:]
    boxes = ndi.find_objects(local.astype(np.int32), max_label=k - 1)
    by0 = np.array([b[0].start for b in boxes]) + y
    bx0 = np.array([b[1].start for b in boxes]) + x
    by1 = np.array([b[0].stop for b in boxes]) + y
    bx1 = np.array([b[1].stop for b in boxes]) + x
    return present, area, sum_y, sum_x, by0, bx0, by1, bx1


def _unique(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(ids, return_inverse=True), by counting: a block's ids are dense global ids of
    a few neighbouring tiles, a narrow range, where sorting every pixel was most of the cost."""
    flat = ids.ravel().astype(np.int64)
    lo, hi = int(flat.min()), int(flat.max())
    if hi - lo > 4 * flat.size:
        return np.unique(ids, return_inverse=True)
    seen = np.bincount(flat - lo, minlength=hi - lo + 1) > 0
    rank = np.cumsum(seen) - 1
    return (np.flatnonzero(seen) + lo).astype(ids.dtype), rank[flat - lo]


class TableBuilder:
    """Sums per-id statistics over blocks of a label image; geometry is reported in level-0 px.

    `factor` is level-0 px per label px (2**level): bboxes are scaled to level 0, centroids
    are the centre of the label pixels in level-0 coordinates and `area` counts label pixels
    times factor**2 (level-0 px).
    """

    def __init__(self, count: int, level: int) -> None:
        self.count, self.level, self.factor = count, level, 2**level
        n = count + 1
        self.area = np.zeros(n, np.int64)
        self.sum_y = np.zeros(n, np.float64)
        self.sum_x = np.zeros(n, np.float64)
        big = np.iinfo(np.int64).max
        self.y0 = np.full(n, big, np.int64)
        self.x0 = np.full(n, big, np.int64)
        self.y1 = np.zeros(n, np.int64)
        self.x1 = np.zeros(n, np.int64)

    def add(self, ids: np.ndarray, y: int, x: int) -> None:
        """Account for a block of ids whose top-left label pixel is (y, x)."""
        self.merge(block_stats(ids, y, x))

    def merge(self, stats: BlockStats | None) -> None:
        if stats is None:
            return
        present, area, sum_y, sum_x, by0, bx0, by1, bx1 = stats
        self.area[present] += area
        self.sum_y[present] += sum_y
        self.sum_x[present] += sum_x
        self.y0[present] = np.minimum(self.y0[present], by0)
        self.x0[present] = np.minimum(self.x0[present], bx0)
        self.y1[present] = np.maximum(self.y1[present], by1)
        self.x1[present] = np.maximum(self.x1[present], bx1)

    def table(self) -> pa.Table:
        import pyarrow as pa

        ids = np.arange(1, self.count + 1)
        area = self.area[1:]
        if (area == 0).any():
            missing = ids[area == 0][:5].tolist()
            raise ValueError(f"superpixel ids {missing}... have no pixels: ids are not dense")
        return pa.Table.from_batches([rows(ids, self.level, area, self.sum_y[1:], self.sum_x[1:],
                                           self.y0[1:], self.x0[1:], self.y1[1:], self.x1[1:])])  # fmt: skip


def rows(
    ids: np.ndarray,
    level: int,
    area: np.ndarray,
    sum_y: np.ndarray,
    sum_x: np.ndarray,
    y0: np.ndarray,
    x0: np.ndarray,
    y1: np.ndarray,
    x1: np.ndarray,
) -> pa.RecordBatch:
    """Table rows for superpixels `ids` from their sums over label px at `level` (the one
    rule for the table's columns, whether built in memory or streamed in chunks)."""
    import pyarrow as pa

    f = 2**level
    return pa.record_batch(
        {
            "id": pa.array(ids, pa.uint32()),
            "y0": y0 * f,
            "x0": x0 * f,
            "y1": y1 * f,
            "x1": x1 * f,
            "cy": (sum_y / area + 0.5) * f,
            "cx": (sum_x / area + 0.5) * f,
            "area": area * f * f,
            "level": pa.array(np.full(len(ids), level), pa.uint8()),
        }
    )
