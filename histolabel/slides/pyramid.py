"""Multiscale OME-Zarr (NGFF 0.5, Zarr v3, sharded) pyramids written shard by shard.

The writer takes any zarr store (S3 through s3fs in jobs, memory in unit tests), so this
module stays free of AWS. Memory is bounded by two level-0 shards per worker thread (the
job's CPUs), never by the slide size: level 0 is written from source regions, each further level from the
level below it, a shard at a time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BytesCodec, ZstdCodec

from histolabel.cpus import available_cpus
from histolabel.slides.readers import SlideSource

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
    if h % 2 or w % 2:
        pad = [(0, 0)] * (block.ndim - 2) + [(0, h % 2), (0, w % 2)]
        block = np.pad(block, pad, mode="edge")
    b = block.astype(np.uint16)
    total = b[..., 0::2, 0::2] + b[..., 1::2, 0::2] + b[..., 0::2, 1::2] + b[..., 1::2, 1::2]
    return ((total + 2) // 4).astype(np.uint8)


def create_level(group: zarr.Group, path: str, shape: tuple[int, ...], dtype: Any) -> zarr.Array:
    lead = shape[:-2]
    return group.create_array(
        path,
        shape=shape,
        dtype=dtype,
        chunks=(*lead, CHUNK, CHUNK),
        shards=(*lead, SHARD, SHARD),
        serializer=BytesCodec(),
        compressors=ZstdCodec(level=3),
        fill_value=0,
        dimension_names=("c", "y", "x"),
        overwrite=True,
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

    The group's `ome` attribute is written last, so a reader never sees a half-written
    image as complete.
    """
    shapes = level_shapes(source.height, source.width)
    arrays = [create_level(group, str(k), (3, h, w), np.uint8) for k, (h, w) in enumerate(shapes)]

    def store(y: int, x: int, region: np.ndarray) -> None:
        arrays[0][:, y : y + region.shape[0], x : x + region.shape[1]] = np.moveaxis(region, -1, 0)

    # Decode in this thread (the source is only ever read from here) while up to `workers`
    # shards are compressed and uploaded at once: shards are independent objects, and at most
    # 2 x workers decoded blocks wait in memory.
    workers = available_cpus()
    with ThreadPoolExecutor(workers) as writer:
        pending: deque[Future[None]] = deque()
        for y, x, h, w in blocks(source.height, source.width):
            region = source.read_region(y, x, h, w)
            if region.shape != (h, w, 3):
                raise ValueError(f"source returned {region.shape} for a {h}x{w} region")
            while len(pending) >= 2 * workers:
                pending.popleft().result()
            pending.append(writer.submit(store, y, x, region))
            if progress:
                progress(h * w)
        while pending:
            pending.popleft().result()
    for k in range(1, len(shapes)):
        write_downsampled(arrays[k - 1], arrays[k], progress)
    return PyramidInfo(source.width, source.height, len(shapes), source.mpp, source.magnification)


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
