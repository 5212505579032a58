"""Imported objects and label images drawn into level 0 of the superpixel label pyramid, a
shard-aligned block at a time, with the segment job's own table builder.

Overlap rule: objects are drawn in file order and a later object wins the pixels it shares
with an earlier one (QuPath draws the same way). An object left with no pixel (covered
entirely by later ones, or thinner than a pixel everywhere) is dropped as "covered". Ids are
dense 1..n in file order of the objects kept (label images: in order of the external label).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image, ImageDraw

from histolabel.imports.errors import ImportRefused
from histolabel.imports.objects import Spool
from histolabel.segmentation.table import TableBuilder
from histolabel.slides.pyramid import SHARD, blocks

UINT32_MAX = 2**32 - 1


class Sink(Protocol):
    def __call__(self, y: int, x: int, ids: np.ndarray) -> None: ...


Reader = Callable[[int, int, int, int], np.ndarray]  # (y0, x0, y1, x1) -> uint32 ids at level 0


def bin_objects(boxes: np.ndarray, side: int = SHARD) -> tuple[np.ndarray, np.ndarray, int]:
    """Objects per block: (block keys sorted, object indices in file order within each block,
    blocks per row). An object whose bbox spans blocks is listed in each."""
    if not len(boxes):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 1
    by0, bx0 = boxes[:, 0] // side, boxes[:, 1] // side
    by1, bx1 = (boxes[:, 2] - 1) // side, (boxes[:, 3] - 1) // side
    cols = int(bx1.max()) + 1
    objs = [np.arange(len(boxes))]
    keys = [by0 * cols + bx0]
    spans = np.flatnonzero((by1 > by0) | (bx1 > bx0))
    extra_o, extra_k = [], []
    for i in spans.tolist():  # few: nuclei rarely cross a 2048 px block edge
        for by in range(int(by0[i]), int(by1[i]) + 1):
            for bx in range(int(bx0[i]), int(bx1[i]) + 1):
                if (by, bx) != (by0[i], bx0[i]):
                    extra_o.append(i)
                    extra_k.append(by * cols + bx)
    objs.append(np.asarray(extra_o, np.int64))
    keys.append(np.asarray(extra_k, np.int64))
    o, k = np.concatenate(objs), np.concatenate(keys)
    order = np.lexsort((o, k))  # by block, then file order
    return k[order], o[order], cols


def _draw(geom: Any, f: float, oy: int, ox: int, h: int, w: int) -> np.ndarray:
    """Boolean mask (h, w) of a polygonal geometry in level-0 px, drawn at 1/f scale with its
    top-left at raster (oy, ox); a pixel is inside when its centre is."""
    img = Image.new("1", (w, h), 0)
    draw = ImageDraw.Draw(img)
    polys = getattr(geom, "geoms", [geom])
    for poly in polys:
        ext = [(x / f - 0.5 - ox, y / f - 0.5 - oy) for x, y in poly.exterior.coords]
        draw.polygon(ext, fill=1)
    for poly in polys:
        for ring in poly.interiors:
            draw.polygon([(x / f - 0.5 - ox, y / f - 0.5 - oy) for x, y in ring.coords], fill=0)
    return np.asarray(img, dtype=bool)


@dataclass
class Rasterized:
    count: int  # objects kept (ids 1..count)
    keep: np.ndarray  # provisional index -> dense id (0: covered), over the spool's objects
    builder: TableBuilder


def rasterize(
    spool: Spool,
    shape: tuple[int, int],
    level: int,
    sink: Sink,
    read_back: Reader,
    progress: Callable[[int], None] | None = None,
) -> Rasterized:
    """Draw the spool's objects block by block into `sink`; returns the dense id map and the
    table builder (ids dense, covered objects removed, level 0 rewritten where that renumbers)."""
    height, width = shape
    f = float(2**level)
    n = len(spool)
    provisional = TableBuilder(n, level)
    keys, objs, cols = bin_objects(spool.boxes)
    starts = np.searchsorted(keys, np.arange(int(keys.max()) + 2 if len(keys) else 1))
    data = np.memmap(spool.path, np.uint8, mode="r") if spool.offsets[-1] else np.zeros(0, np.uint8)
    for y, x, h, w in blocks(height, width):
        key = (y // SHARD) * cols + x // SHARD
        ids = np.zeros((h, w), np.uint32)
        if x // SHARD < cols and key + 1 < len(starts):
            for i in objs[starts[key] : starts[key + 1]].tolist():
                oy0, ox0, oy1, ox1 = (int(v) for v in spool.boxes[i])
                cy0, cx0 = max(oy0, y), max(ox0, x)
                cy1, cx1 = min(oy1, y + h), min(ox1, x + w)
                if cy1 <= cy0 or cx1 <= cx0:
                    continue
                mask = _draw(spool.geometry(data, i), f, cy0, cx0, cy1 - cy0, cx1 - cx0)
                ids[cy0 - y : cy1 - y, cx0 - x : cx1 - x][mask] = i + 1
        sink(y, x, ids)
        provisional.add(ids, y, x)
        if progress:
            progress(h * w)
    return _densify(provisional, n, level, shape, sink, read_back)


def _densify(
    provisional: TableBuilder, n: int, level: int, shape: tuple[int, int], sink: Sink, read_back: Reader
) -> Rasterized:
    kept = provisional.area[1:] > 0
    count = int(kept.sum())
    keep = np.zeros(n + 1, np.uint32)
    keep[1:][kept] = np.arange(1, count + 1, dtype=np.uint32)
    if count < n:  # renumber level 0 so ids stay dense
        for y, x, h, w in blocks(*shape):
            sink(y, x, keep[read_back(y, x, y + h, x + w)])
    builder = TableBuilder(count, level)
    for name in ("area", "sum_y", "sum_x", "y0", "x0", "y1", "x1"):
        src = getattr(provisional, name)
        getattr(builder, name)[1:] = src[1:][kept]
    return Rasterized(count, keep[1:], builder)


# ---- label images -----------------------------------------------------------------------


def check_ids(block: np.ndarray, y: int, x: int, where: str) -> None:
    if block.dtype.kind not in "ui":
        raise ImportRefused(f"label images hold integers, not {block.dtype}", where)
    if block.size and block.dtype.kind == "i" and int(block.min()) < 0:
        raise ImportRefused(f"negative label {int(block.min())} in the block at y={y}, x={x}", where)
    if block.size and int(block.max()) > UINT32_MAX:
        raise ImportRefused(
            f"label {int(block.max())} at y={y}, x={x} overflows uint32 (ids must be 1..{UINT32_MAX})",
            where,
        )


def label_blocks(read: Reader, shape: tuple[int, int]) -> Iterator[tuple[int, int, np.ndarray]]:
    for y, x, h, w in blocks(*shape):
        yield y, x, np.asarray(read(y, x, y + h, x + w)).reshape(h, w)


def external_labels(read: Reader, shape: tuple[int, int], where: str) -> np.ndarray:
    """Sorted distinct non-zero labels of a label image, read a block at a time."""
    found: list[np.ndarray] = []
    merged = np.zeros(0, np.uint64)
    for y, x, block in label_blocks(read, shape):
        check_ids(block, y, x, where)
        found.append(np.unique(block).astype(np.uint64))
        if len(found) >= 64:
            merged = np.unique(np.concatenate([merged, *found]))
            found = []
    merged = np.unique(np.concatenate([merged, *found]))
    return merged[merged > 0]


def relabel(
    read: Reader,
    shape: tuple[int, int],
    level: int,
    labels: np.ndarray,
    sink: Sink,
    progress: Callable[[int], None] | None = None,
) -> TableBuilder:
    """Write the label image with its labels renumbered 1..len(labels) in their order."""
    builder = TableBuilder(len(labels), level)
    for y, x, block in label_blocks(read, shape):
        flat = block.astype(np.uint64)
        ids = np.where(flat > 0, np.searchsorted(labels, flat) + 1, 0).astype(np.uint32)
        sink(y, x, ids)
        builder.add(ids, y, x)
        if progress:
            progress(ids.size)
    return builder
