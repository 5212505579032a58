"""Per-superpixel features of a whole slide, tile by tile, from window readers (so the same
code reads S3 Zarr in a job and in-memory arrays in a test)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from histolabel.learning import features

FeatureKind = Literal["handcrafted", "patch", "foundation"]
Window = Callable[[int, int, int, int], NDArray[Any]]  # (y0, x0, y1, x1) -> array
Progress = Callable[[int], None]


def handcrafted_slide(
    rgb: Window,
    labels: Window,
    shape: tuple[int, int],
    count: int,
    *,
    h_threshold: float,
    tile: int = 2048,
    progress: Progress | None = None,
    workers: int = 1,
) -> NDArray[np.float32]:
    """[count, HANDCRAFTED_DIM]; `h_threshold` is the slide-wide haematoxylin Otsu level (from a
    low-resolution level), so every tile thresholds alike.

    With `workers` > 1, tiles are read, filtered and summed in that many processes, the sums
    too, which run in Python between numpy calls (`rgb` and `labels` must then pickle, and each
    process reads its own tiles).
    A tile's statistics cover the ids present in it, and they are merged in tile order here,
    so the result is the same, bit for bit, for any number of workers. Each worker holds one
    tile at a time."""
    acc = features.HandcraftedAccumulator(count)
    todo = list(features.tiles(shape[0], shape[1], tile))

    def merge(t: features.Tile, stats: features.TileStats | None) -> None:
        if stats is not None:
            acc.merge(stats)
        if progress:
            progress((t.core[0].stop - t.core[0].start) * (t.core[1].stop - t.core[1].start))

    if workers <= 1 or len(todo) <= 1:
        for t in todo:
            merge(t, _tile_stats(rgb, labels, h_threshold, count, t))
        return acc.result()
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the job's process has threads (s3fs, zarr) that a fork would copy mid-call.
    with ProcessPoolExecutor(
        min(workers, len(todo)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_set_worker,
        initargs=(rgb, labels, h_threshold, count),
    ) as pool:
        for t, stats in zip(todo, pool.map(_worker_tile_stats, todo), strict=True):
            merge(t, stats)
    return acc.result()


def _tile_stats(
    rgb: Window, labels: Window, h_threshold: float, count: int, t: features.Tile
) -> features.TileStats | None:
    (ys, xs) = t.read
    lab = labels(ys.start, xs.start, ys.stop, xs.stop)
    part = _labelled_part(t, lab[t.core[0], t.core[1]] > 0)
    if part is None:
        return None
    ry, rx = part.read
    cut = lab[ry.start - ys.start : ry.stop - ys.start, rx.start - xs.start : rx.stop - xs.start]
    channels = features.pixel_channels(rgb(ry.start, rx.start, ry.stop, rx.stop), h_threshold)
    return features.tile_stats(channels, cut, part.origin, part.core, count)


def _labelled_part(t: features.Tile, labelled: NDArray[np.bool_]) -> features.Tile | None:
    """The tile cut to the box of its labelled core pixels, with the halo around that box (the
    filters reach HALO px, so every labelled pixel's channels are the same bit for bit: glass
    at a tissue edge is not filtered for nothing). None if nothing in the core is labelled."""
    rows, cols = np.flatnonzero(labelled.any(axis=1)), np.flatnonzero(labelled.any(axis=0))
    if rows.size == 0:
        return None
    (ys, xs), (cy, cx) = t.read, t.core
    y0, y1 = ys.start + cy.start + int(rows[0]), ys.start + cy.start + int(rows[-1]) + 1
    x0, x1 = xs.start + cx.start + int(cols[0]), xs.start + cx.start + int(cols[-1]) + 1
    ry0, ry1 = max(y0 - features.HALO, ys.start), min(y1 + features.HALO, ys.stop)
    rx0, rx1 = max(x0 - features.HALO, xs.start), min(x1 + features.HALO, xs.stop)
    return features.Tile(
        read=(slice(ry0, ry1), slice(rx0, rx1)),
        core=(slice(y0 - ry0, y1 - ry0), slice(x0 - rx0, x1 - rx0)),
        origin=(y0, x0),
    )


_WORKER: tuple[Window, Window, float, int] | None = None


def _set_worker(rgb: Window, labels: Window, h_threshold: float, count: int) -> None:
    global _WORKER
    _WORKER = (rgb, labels, h_threshold, count)


def _worker_tile_stats(t: features.Tile) -> features.TileStats | None:
    assert _WORKER is not None, "a pool worker starts through _set_worker"
    return _tile_stats(*_WORKER, t)


Sink = Callable[[NDArray[np.int64], NDArray[Any]], None]  # (row indices, their values)


class ChunkedRows:
    """Rows of an [n, ...] array that arrive in any order, handed to `write(start, block)` a chunk
    of `rows` at a time as soon as every row `expected` in that chunk has arrived: a slide's
    patches (12 KiB each) go to storage while the slide is read, never all in memory at once.
    Rows never expected stay zero."""

    def __init__(
        self, n: int, rows: int, expected: NDArray[np.bool_], write: Callable[[int, NDArray[Any]], None]
    ) -> None:
        self.n, self.rows, self.write = n, max(1, rows), write
        chunks = -(-n // self.rows)
        self.missing = np.bincount(np.flatnonzero(expected) // self.rows, minlength=chunks)
        self.buffers: dict[int, NDArray[Any]] = {}
        self.peak_rows = 0

    def put(self, idx: NDArray[np.int64], values: NDArray[Any]) -> None:
        chunk_of = idx // self.rows
        for c in np.unique(chunk_of).tolist():
            sel = chunk_of == c
            buf = self.buffers.get(c)
            if buf is None:
                start = c * self.rows
                buf = np.zeros((min(self.rows, self.n - start), *values.shape[1:]), values.dtype)
                self.buffers[c] = buf
            buf[idx[sel] - c * self.rows] = values[sel]
            self.missing[c] -= int(sel.sum())
            self.peak_rows = max(self.peak_rows, sum(b.shape[0] for b in self.buffers.values()))
            if self.missing[c] <= 0:
                self.write(c * self.rows, self.buffers.pop(c))

    def close(self) -> None:
        for c in sorted(self.buffers):
            self.write(c * self.rows, self.buffers.pop(c))


def patches_slide(
    rgb: Window,
    labels: Window | None,
    shape: tuple[int, int],
    bboxes: NDArray[np.int64],
    *,
    size: int,
    scale: float = 1.0,
    min_side: int = 0,
    tile: int = 2048,
    embed: Callable[[NDArray[np.uint8]], NDArray[np.float32]] | None = None,
    progress: Progress | None = None,
    sink: Sink | None = None,
) -> NDArray[Any] | None:
    """Square crops around every superpixel's bbox ([count, 4] y0, x0, y1, x1 in label px):
    masked to the superpixel when `labels` is given. Superpixels are grouped by the tile holding
    their bbox centre, and each group's crops come from one read. With `embed`, each group's
    crops are turned into vectors right away (the foundation model). With `sink`, each group's
    rows go there (row = superpixel id - 1) and nothing is returned, so nothing piles up."""
    n = bboxes.shape[0]
    squares = features.square_boxes(bboxes, scale, min_side)
    cy = (bboxes[:, 0] + bboxes[:, 2]) // 2
    cx = (bboxes[:, 1] + bboxes[:, 3]) // 2
    exists = present(bboxes)
    tiles_x = -(-shape[1] // tile)
    cell = (cy // tile) * tiles_x + (cx // tile)
    out: NDArray[Any] | None = None
    for c in np.unique(cell[exists]):
        idx = np.flatnonzero(exists & (cell == c))
        y0, x0 = int(max(squares[idx, 0].min(), 0)), int(max(squares[idx, 1].min(), 0))
        y1 = int(min(squares[idx, 2].max(), shape[0]))
        x1 = int(min(squares[idx, 3].max(), shape[1]))
        img = rgb(y0, x0, y1, x1)
        lab = labels(y0, x0, y1, x1) if labels is not None else None
        crops = features.crop_patches(img, squares[idx], size, labels=lab, ids=idx + 1, origin=(y0, x0))
        values = embed(crops) if embed is not None else crops
        if sink is not None:
            sink(idx, values)
        else:
            if out is None:
                out = np.zeros((n, *values.shape[1:]), values.dtype)
            out[idx] = values
        if progress:
            progress(idx.size)
    if sink is not None:
        return None
    if out is None:
        out = np.zeros((n, 3, size, size), np.uint8)
    return out


def present(bboxes: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Superpixels that exist (a superpixel id may be unused: its bbox is empty)."""
    return np.asarray(bboxes[:, 2] > bboxes[:, 0])
