"""Multiscale OME-Zarr (NGFF 0.5, Zarr v3, sharded) pyramids written shard by shard.

The writer takes any zarr store (S3 through s3fs in jobs, memory in unit tests), so this
module stays free of AWS. Memory is bounded by two level-0 shards per worker thread (the
job's CPUs) and one shard per level, never by the slide size: level 0 is written from source
regions, each further level from the halves of the shards below it, kept in memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import zarr
from zarr.codecs import BytesCodec, ZstdCodec

from histolabel.cpus import available_cpus
from histolabel.slides.readers import SlideSource
from histolabel.slides.shards import write_shard

CHUNK = 256  # viewer tile side
SHARD = 2048  # side of the unit of work and of one S3 object per level
MIN_LEVEL_SIDE = 1024


def level_shapes(height: int, width: int, min_side: int = MIN_LEVEL_SIDE) -> list[tuple[int, int]]:
    """Power-of-two levels, halving (rounding up) until the longer side is at most min_side."""
    shapes = [(height, width)]
    while max(shapes[-1]) > min_side:
        h, w = shapes[-1]
        shapes.append(((h + 1) // 2, (w + 1) // 2))
    return shapes


def blocks(height: int, width: int, side: int = SHARD) -> Iterator[tuple[int, int, int, int]]:
    """(y, x, h, w) of the shard-aligned blocks covering an image, in raster order."""
    for y in range(0, height, side):
        for x in range(0, width, side):
            yield y, x, min(side, height - y), min(side, width - x)


def downsample2(block: np.ndarray) -> np.ndarray:
    """2x2 mean of a (..., h, w) uint8 block, odd edges padded by repetition, rounded half up."""
    h, w = block.shape[-2:]
    from histolabel.slides.halving import halve  # numba, loaded once a block is halved

    planes = np.ascontiguousarray(block, np.uint8).reshape(-1, h, w)
    return halve(planes).reshape(*block.shape[:-2], (h + 1) // 2, (w + 1) // 2)


def create_level(
    group: zarr.Group, path: str, shape: tuple[int, ...], dtype: Any, *, dense: bool = False
) -> zarr.Array:
    """One level's array. `dense`: every chunk is written, even one that is all fill value, as
    `shards.write_shard` writes them; for images, where no chunk is (zarr's per-chunk check for
    it was a fifth of ingest's CPU)."""
    lead = shape[:-2]
    return group.create_array(
        path,
        shape=shape,
        dtype=dtype,
        chunks=(*lead, CHUNK, CHUNK),
        shards=(*lead, SHARD, SHARD),
        serializer=BytesCodec(),
        # level 1: tissue compresses about as badly at any level (0.82 at 3), at 2.3x the speed
        compressors=ZstdCodec(level=1),
        fill_value=0,
        dimension_names=("c", "y", "x"),
        overwrite=True,
        config={"write_empty_chunks": dense},
    )


@dataclass(frozen=True)
class PyramidInfo:
    width: int
    height: int
    levels: int
    mpp: float | None
    magnification: float | None


Progress = Callable[[int], None]


def write_pyramid(
    source: SlideSource, group: zarr.Group, name: str = "image", progress: Progress | None = None
) -> PyramidInfo:
    """Write levels 0..n of `source` into `group` (arrays "0", "1", ...) as uint8 (3, y, x).

    Level-0 shards are read, decoded, compressed and uploaded in as many threads as the job has
    CPUs (the readers are safe to read from several threads; decoding, zstd and S3 release the
    GIL); each thread encodes its own shards (`shards.write_shard`), not zarr's one I/O thread.
    The lower levels never read anything back: each level-0 block is halved in memory and the
    halves are stitched into the next level's shards, walking the shards in quadtree order so
    that one shard per level is open at a time. Memory is bounded by the in-flight
    blocks (2 per worker) plus one shard per level, never by the slide. Every shard is written
    once, whole, with the same bytes as halving each finished level would give.

    The group's `ome` attribute is written last, so a reader never sees a half-written
    image as complete.
    """
    shapes = level_shapes(source.height, source.width)
    arrays = [create_level(group, str(k), (3, h, w), np.uint8, dense=True) for k, (h, w) in enumerate(shapes)]
    top = len(shapes) - 1
    assert max(shapes[top]) <= SHARD, "the quadtree walk starts from a top level of one shard"
    workers = available_cpus()

    def leaf(i: int, j: int) -> np.ndarray | None:
        y, x = i * SHARD, j * SHARD
        h, w = min(SHARD, source.height - y), min(SHARD, source.width - x)
        region = source.read_region(y, x, h, w)
        if region.shape != (h, w, 3):
            raise ValueError(f"source returned {region.shape} for a {h}x{w} region")
        block = np.ascontiguousarray(np.moveaxis(region, -1, 0))
        write_shard(arrays[0], i, j, block)
        if progress:
            progress(h * w)
        return downsample2(block) if top > 0 else None

    with ThreadPoolExecutor(workers) as pool:
        halves = _ordered(pool, leaf, list(_leaves(shapes, top, 0, 0)), 2 * workers)
        writes: deque[Future[None]] = deque()

        def write(k: int, i: int, j: int, shard: np.ndarray) -> None:
            while len(writes) >= 2 * workers:
                writes.popleft().result()
            writes.append(pool.submit(_store, arrays[k], i, j, shard, progress))

        def build(k: int, i: int, j: int) -> np.ndarray | None:
            """Shard (i, j) of level k, written; returns its half for level k + 1."""
            if k == 0:
                return next(halves)
            h, w = min(SHARD, shapes[k][0] - i * SHARD), min(SHARD, shapes[k][1] - j * SHARD)
            shard = np.empty((3, h, w), np.uint8)
            half = SHARD // 2
            for di, dj in _children(shapes[k - 1], i, j):
                piece = build(k - 1, 2 * i + di, 2 * j + dj)
                assert piece is not None
                shard[:, di * half : di * half + piece.shape[1], dj * half : dj * half + piece.shape[2]] = (
                    piece
                )
            write(k, i, j, shard)
            return downsample2(shard) if k < top else None

        build(top, 0, 0)
        while writes:
            writes.popleft().result()
    return PyramidInfo(source.width, source.height, len(shapes), source.mpp, source.magnification)


def _store(array: zarr.Array, i: int, j: int, shard: np.ndarray, progress: Progress | None) -> None:
    write_shard(array, i, j, shard)
    if progress:
        progress(shard.shape[1] * shard.shape[2])


def _children(below: tuple[int, int], i: int, j: int) -> Iterator[tuple[int, int]]:
    """The shards of the level below (shape `below`) that halve into shard (i, j), in order."""
    for di in (0, 1):
        for dj in (0, 1):
            if (2 * i + di) * SHARD < below[0] and (2 * j + dj) * SHARD < below[1]:
                yield di, dj


def _leaves(shapes: list[tuple[int, int]], k: int, i: int, j: int) -> Iterator[tuple[int, int]]:
    """Level-0 shards under shard (i, j) of level k, in the order `build` takes them."""
    if k == 0:
        yield i, j
        return
    for di, dj in _children(shapes[k - 1], i, j):
        yield from _leaves(shapes, k - 1, 2 * i + di, 2 * j + dj)


T = TypeVar("T")


def _ordered(
    pool: ThreadPoolExecutor, fn: Callable[[int, int], T], todo: list[tuple[int, int]], ahead: int
) -> Iterator[T]:
    """fn over `todo` in the pool, results in order, at most `ahead` submitted and not taken."""
    pending: deque[Future[T]] = deque()
    for item in todo:
        pending.append(pool.submit(fn, *item))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def write_downsampled(
    src: zarr.Array, dst: zarr.Array, progress: Progress | None = None, labels: bool = False
) -> None:
    """Fill `dst` from `src` at half resolution, one destination shard at a time, shards in
    parallel threads (each reads its own 2x source region and writes its own shard)."""
    height, width = dst.shape[-2:]

    def one(y: int, x: int, h: int, w: int) -> int:
        block = np.asarray(src[..., 2 * y : 2 * (y + h), 2 * x : 2 * (x + w)])
        dst[..., y : y + h, x : x + w] = block[..., ::2, ::2] if labels else downsample2(block)
        return h * w

    with ThreadPoolExecutor(available_cpus()) as pool:
        for done in pool.map(lambda b: one(*b), blocks(height, width)):
            if progress:
                progress(done)
