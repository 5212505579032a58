"""Imported objects and label images drawn into level 0 of the superpixel label pyramid, a
shard-aligned block at a time, into the segment job's own table rows (`table.rows`) spooled
to local disk, so memory holds one block row of objects, not one entry per object.

Overlap rule: objects are drawn in file order and a later object wins the pixels it shares
with an earlier one (QuPath draws the same way). An object left with no pixel (covered
entirely by later ones, or thinner than a pixel everywhere) is dropped as "covered". Ids are
dense 1..n in file order of the objects kept (label images: in order of the external label).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image, ImageDraw

from histolabel.imports.errors import ImportRefused
from histolabel.imports.spool import Spool
from histolabel.segmentation.spooled import SpooledTable
from histolabel.slides.pyramid import SHARD, blocks

UINT32_MAX = 2**32 - 1
GEOMETRIES = 2048  # objects decoded at once (a block of dense nuclei holds ~20,000)


class Sink(Protocol):
    def __call__(self, y: int, x: int, ids: np.ndarray) -> None: ...


Reader = Callable[[int, int, int, int], np.ndarray]  # (y0, x0, y1, x1) -> uint32 ids at level 0


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
    table: SpooledTable  # its rows; `table.dropped`: provisional ids (spool position + 1) left out


def draw_blocks(spool: Spool, shape: tuple[int, int], level: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """(y, x, ids) of each shard-aligned block of a `shape` raster at slide `level`, with the
    spool's objects drawn as their spool position + 1 (a later object wins shared pixels); one
    block row of objects is read at a time."""
    height, width = shape
    f = float(2**level)
    recs, first, last = spool.row(0), np.zeros(0, np.int64), np.zeros(0, np.int64)
    for y, x, h, w in blocks(height, width):
        if x == 0:  # a new block row: its objects, in spool order
            recs = spool.row(y // SHARD)
            first, last = recs["x0"] // SHARD, (recs["x1"] - 1) // SHARD
        ids = np.zeros((h, w), np.uint32)
        here = recs[(first <= x // SHARD) & (last >= x // SHARD)]
        for start in range(0, len(here), GEOMETRIES):  # decoded a batch at a time, in spool order
            part = here[start : start + GEOMETRIES]
            for rec, geom in zip(part, spool.geometries(part), strict=True):
                cy0, cx0 = max(int(rec["y0"]), y), max(int(rec["x0"]), x)
                cy1, cx1 = min(int(rec["y1"]), y + h), min(int(rec["x1"]), x + w)
                if cy1 <= cy0 or cx1 <= cx0:
                    continue
                mask = _draw(geom, f, cy0, cx0, cy1 - cy0, cx1 - cx0)
                ids[cy0 - y : cy1 - y, cx0 - x : cx1 - x][mask] = int(rec["obj"]) + 1
        yield y, x, ids


def rasterize(
    spool: Spool,
    shape: tuple[int, int],
    level: int,
    sink: Sink,
    read_back: Reader,
    progress: Callable[[int], None] | None = None,
    extra: Callable[[np.ndarray], dict[str, Any]] | None = None,
    write: Callable[[Any], None] | None = None,
) -> Rasterized:
    """Draw the spool's objects block by block into `sink`, one block row of objects in memory
    at a time; an object's provisional id is its spool position + 1. Then the table's rows go
    to `write` a chunk at a time (`extra` adds columns per chunk of kept provisional ids), and
    level 0 is renumbered where covered objects left gaps, so ids end dense."""
    table = SpooledTable(spool.dir / "stats", len(spool), level)
    for y, x, ids in draw_blocks(spool, shape, level):
        sink(y, x, ids)
        table.add(ids, y, x)
        if progress:
            progress(ids.size)
    for batch in table.batches(extra):
        if write is not None:
            write(batch)
    if len(table.dropped):  # renumber level 0 so ids stay dense
        for y, x, h, w in blocks(*shape):
            sink(y, x, table.dense(read_back(y, x, y + h, x + w)))
    return Rasterized(table.kept, table)


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
    workdir: Path,
    progress: Callable[[int], None] | None = None,
) -> SpooledTable:
    """Write the label image with its labels renumbered 1..len(labels) in their order; the
    table's rows come from the returned table's `batches`."""
    table = SpooledTable(workdir, len(labels), level)
    for y, x, block in label_blocks(read, shape):
        flat = block.astype(np.uint64)
        ids = np.where(flat > 0, np.searchsorted(labels, flat) + 1, 0).astype(np.uint32)
        sink(y, x, ids)
        table.add(ids, y, x)
        if progress:
            progress(ids.size)
    return table
