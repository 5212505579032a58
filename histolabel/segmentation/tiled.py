"""Tiled SLIC with seamless tiles, run in parallel processes.

Each tile runs SLIC (`kernel.slic`: our numba kernel by default, or skimage's, chosen by
`SlicParams.kernel`) on its window (core plus halo) and keeps only
superpixels that are complete: connected pieces of SLIC segments over tissue that no
earlier tile claimed, and that do not touch the window's open border (a window edge that
is not an image edge). Kept pixels become claimed; later tiles see them as off-limits, so
no superpixel is ever cut by a tile edge. Pieces smaller than half a superpixel (where
the new SLIC grid meets claimed pixels or the tissue edge) are merged into the neighbour
they share the longest border with, as SLIC's own connectivity step does. Tiles of the
last phase keep everything, which closes any gap.

Ids: every kept superpixel gets a key (tile index + 1) << 24 | local id, local ids in
raster order of their first pixel within the tile's window. At assembly the keys become
dense global ids 1..count by tile index then local id, so ids are stable for the same
image, mask and parameters, and do not depend on the number of workers.
"""

from __future__ import annotations

import heapq
import multiprocessing
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import imagecodecs
import numpy as np
from skimage.measure import label as connected

from histolabel.cpus import available_cpus
from histolabel.segmentation.kernel import DEFAULT_KERNEL, KERNELS, Kernel, slic
from histolabel.segmentation.table import BlockStats, block_stats
from histolabel.segmentation.tiling import Grid, Tile

KEY_SHIFT = 24
LOCAL_MASK = (1 << KEY_SHIFT) - 1
SLIVER_FACTOR = 0.5


class WindowReader(Protocol):
    """Picklable source of RGB pixels: (y0, x0, y1, x1) -> uint8 (h, w, 3)."""

    def __call__(self, y0: int, x0: int, y1: int, x1: int) -> np.ndarray: ...


class BlockSink(Protocol):
    """Picklable destination of assembled label blocks: (y, x, uint32 ids) -> None."""

    def __call__(self, y: int, x: int, ids: np.ndarray) -> None: ...


class MaskReader(Protocol):
    """Picklable source of the tissue mask at segmentation resolution: -> bool (h, w)."""

    def __call__(self, y0: int, x0: int, y1: int, x1: int) -> np.ndarray: ...


@dataclass(frozen=True)
class SlicParams:
    superpixel_size: int  # side of a superpixel, px at the segmented resolution
    compactness: float = 10.0
    tile: int = 0  # core side; 0 chooses 24 superpixels per side (at least 512 px)
    halo: int = 0  # 0 chooses 2 superpixel sides
    kernel: Kernel = DEFAULT_KERNEL  # the SLIC implementation (histolabel.segmentation.kernel)

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise ValueError(f"unknown SLIC kernel {self.kernel!r}: choose one of {', '.join(KERNELS)}")
        if self.superpixel_size < 2:
            raise ValueError("superpixel_size must be at least 2 px")
        if self.compactness <= 0:
            raise ValueError("compactness must be positive")
        if self.tile_px < 4 * self.halo_px:
            raise ValueError(
                f"tile {self.tile_px} px is too small for a halo of {self.halo_px} px (needs 4x the halo, "
                f"2 superpixels of {self.superpixel_size} px by default)"
            )

    @property
    def halo_px(self) -> int:
        return self.halo or 2 * self.superpixel_size

    @property
    def tile_px(self) -> int:
        if self.tile:
            return self.tile
        s = self.superpixel_size
        return max(512, 24 * s) // s * s


@dataclass
class TiledResult:
    height: int
    width: int
    grid: Grid
    counts: list[int]
    workdir: Path
    offsets: np.ndarray = field(init=False)
    stats: list[BlockStats | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    @property
    def count(self) -> int:
        return int(self.offsets[-1])

    def keys_to_ids(self, keys: np.ndarray) -> np.ndarray:
        tile = (keys >> KEY_SHIFT) - 1
        ids = np.where(keys > 0, self.offsets[np.maximum(tile, 0)] + (keys & LOCAL_MASK), 0)
        return ids.astype(np.uint32)

    def block(self, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        """Dense uint32 ids of a region, composed from the tile outputs under it."""
        keys = np.zeros((y1 - y0, x1 - x0), np.int64)
        tiles = self.grid.tiles()
        n = len(tiles)
        near = self.grid.overlapping(y0, x0, y1, x1)
        # windows first, then cores (sweep outputs), each in tile order, as before: only the
        # tiles near the block are visited, so assembly is O(tiles) over the whole image
        for index in [*near, *(n + i for i in near)]:
            tile = tiles[index % n]
            wy0, wx0, wy1, wx1 = tile.window if index < n else tile.core
            if wy1 <= y0 or wy0 >= y1 or wx1 <= x0 or wx0 >= x1:
                continue
            loaded = _load(self.workdir, index)
            if loaded is None:
                continue
            out, (wy0, wx0, wy1, wx1) = loaded
            if wy1 <= y0 or wy0 >= y1 or wx1 <= x0 or wx0 >= x1:
                continue
            ys, xs, ye, xe = max(y0, wy0), max(x0, wx0), min(y1, wy1), min(x1, wx1)
            part = out[ys - wy0 : ye - wy0, xs - wx0 : xe - wx0]
            target = keys[ys - y0 : ye - y0, xs - x0 : xe - x0]
            np.copyto(target, part, where=part > 0)
        return self.keys_to_ids(keys)


def _path(workdir: Path, index: int) -> Path:
    return workdir / f"tile-{index:07d}.keys"


def _save(workdir: Path, index: int, keys: np.ndarray, box: tuple[int, int, int, int] = (0, 0, 0, 0)) -> None:
    """A tile's keys over its box, zstd-compressed (fast both ways; runs of keys shrink ~100x)."""
    tmp = workdir / f".tile-{index:07d}.tmp"
    header = np.asarray(box if keys.any() else (0, 0, 0, 0), "<i8").tobytes()
    raw = np.ascontiguousarray(keys, "<i8").tobytes()
    body = imagecodecs.zstd_encode(raw, level=1) if keys.any() else b""
    tmp.write_bytes(header + body)
    os.replace(tmp, _path(workdir, index))


def _load(workdir: Path, index: int) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """A tile's output keys and the box (y0, x0, y1, x1) they cover, or None if empty."""
    data = _path(workdir, index).read_bytes()
    y0, x0, y1, x1 = (int(v) for v in np.frombuffer(data[:32], "<i8"))
    if y1 <= y0 or x1 <= x0:
        return None
    keys = np.frombuffer(imagecodecs.zstd_decode(data[32:]), "<i8").reshape(y1 - y0, x1 - x0)
    return keys, (y0, x0, y1, x1)


def segment_tile(
    image: np.ndarray,
    free: np.ndarray,
    claimed: np.ndarray,
    outside_free: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    params: SlicParams,
    key_base: int,
    keep_all: bool,
) -> tuple[np.ndarray, int]:
    """Segment one window. Returns int64 keys (0 = not claimed here) and the count of new ids.

    `free`: tissue not yet claimed; `claimed`: keys of earlier tiles (0 where unclaimed);
    `outside_free`: for the top, left, bottom and right edges, whether the pixel just
    outside the window is free tissue. A superpixel touching such a pixel would be cut by
    the window, so it is left for a later tile (unless `keep_all`).
    """
    keys = np.zeros(free.shape, np.int64)
    if not free.any():
        return keys, 0
    s = params.superpixel_size
    n_segments = max(1, round(free.size / (s * s)))
    seg = slic(image, n_segments, params.compactness, kernel=params.kernel, start_label=1)
    seg[~free] = 0
    comp = connected(seg, background=0, connectivity=1)
    n = int(comp.max())
    target = _merge_slivers(comp, claimed, n, SLIVER_FACTOR * s * s)
    # target[c] > 0: new component id it belongs to; < 0: -key of a claimed segment
    merged = target[comp]
    if not keep_all:
        touching = np.zeros(n + 1, bool)
        top, left, bottom, right = outside_free
        for edge, beyond in (
            (merged[0], top),
            (merged[:, 0], left),
            (merged[-1], bottom),
            (merged[:, -1], right),
        ):
            hit = edge[beyond & (edge > 0)]
            touching[hit] = True
        merged = np.where((merged > 0) & touching[np.maximum(merged, 0)], 0, merged)
    kept = _present(merged, n)  # measure.label numbers in raster order: keep it
    local = np.zeros(n + 1, np.int64)
    local[kept] = np.arange(1, len(kept) + 1)
    keys = np.where(merged > 0, key_base + local[np.maximum(merged, 0)], 0)
    keys = np.where(merged < 0, -merged, keys)
    return keys, len(kept)


def _present(labels: np.ndarray, n: int) -> np.ndarray:
    """Sorted positive values (at most n) occurring in `labels`; faster than np.unique."""
    seen = np.zeros(n + 1, bool)
    seen[np.maximum(labels, 0).ravel()] = True
    seen[0] = False
    return np.flatnonzero(seen)


def _merge_slivers(comp: np.ndarray, claimed: np.ndarray, n: int, min_area: float) -> np.ndarray:
    """Map each component to itself, or (if small) to its longest-border neighbour.

    Returns an int64 array indexed by component id: a positive component id, or the
    negative key of a claimed segment.
    """
    target = np.arange(n + 1, dtype=np.int64)
    area = np.bincount(comp.ravel(), minlength=n + 1)
    small = np.flatnonzero(area < min_area)
    small = small[small > 0]
    if not len(small):
        return target
    # Neighbour label of each pixel pair across a horizontal or vertical edge: a component
    # id (>0) or a claimed key encoded negative.
    other = np.where(comp > 0, comp, -claimed)
    pairs = []
    for a, b in ((other[:, :-1], other[:, 1:]), (other[:-1], other[1:])):
        diff = (a != b) & ((a > 0) | (b > 0))
        pairs.append(np.stack([a[diff], b[diff]], axis=1))
        pairs.append(np.stack([b[diff], a[diff]], axis=1))
    edges = np.concatenate(pairs)
    edges = edges[(edges[:, 0] > 0) & (edges[:, 1] != 0)]
    is_small = np.zeros(n + 1, bool)
    is_small[small] = True
    edges = edges[is_small[edges[:, 0]]]
    if not len(edges):
        return target
    uniq, counts = np.unique(edges, axis=0, return_counts=True)
    # prefer new, not-small neighbours, then claimed ones, then other small ones; then contact
    nb = uniq[:, 1]
    rank = np.where(nb > 0, np.where(is_small[np.maximum(nb, 0)], 0, 2), 1)
    order = np.lexsort((-nb, counts, rank, uniq[:, 0]))
    best = uniq[order]
    last = np.r_[best[1:, 0] != best[:-1, 0], True]
    for src, dst in best[last]:
        target[src] = dst
    # a small piece merged into another small piece that itself moved follows it once
    moved = target[np.maximum(target, 0)]
    target = np.where((target > 0) & (moved != target), moved, target)
    return target


@dataclass(frozen=True)
class _Job:
    tile: Tile
    deps: tuple[tuple[int, tuple[int, int, int, int]], ...]
    shape: tuple[int, int]
    params: SlicParams
    keep_all: bool
    workdir: str
    sweep: bool = False


def _compose(job: _Job, box: tuple[int, int, int, int]) -> np.ndarray:
    """Keys claimed by the job's dependencies over `box` (0 where unclaimed)."""
    y0, x0, y1, x1 = box
    claimed = np.zeros((y1 - y0, x1 - x0), np.int64)
    for index, _ in job.deps:
        loaded = _load(Path(job.workdir), index)
        if loaded is None:
            continue
        out, (wy0, wx0, wy1, wx1) = loaded
        ys, xs, ye, xe = max(y0, wy0), max(x0, wx0), min(y1, wy1), min(x1, wx1)
        if ys >= ye or xs >= xe:
            continue
        part = out[ys - wy0 : ye - wy0, xs - wx0 : xe - wx0]
        np.copyto(claimed[ys - y0 : ye - y0, xs - x0 : xe - x0], part, where=part > 0)
    return claimed


def _run_tile(job: _Job, image: WindowReader, mask: MaskReader | None) -> tuple[int, int]:
    tile, (height, width) = job.tile, job.shape
    workdir = Path(job.workdir)
    if job.sweep:
        box = tile.core
        n_tiles = -(-height // job.params.tile_px) * -(-width // job.params.tile_px)
        tissue = np.ones((box[2] - box[0], box[3] - box[1]), bool) if mask is None else mask(*box)
        if _claimed_in_core(workdir, job) == int(tissue.sum()):
            # the phases claimed all of the core's tissue (the rule): nothing to load or close
            _save(workdir, n_tiles + tile.index, np.zeros((0, 0), np.int64))
            return n_tiles + tile.index, 0
        claimed = _compose(job, box)
        keys, count = sweep_tile(
            tissue & (claimed == 0), claimed, job.params, (n_tiles + tile.index + 1) << KEY_SHIFT
        )
        _save(workdir, n_tiles + tile.index, keys, box)
        return n_tiles + tile.index, count
    # The window: the core grown (by at most the halo) to the bounding box of the free
    # tissue connected to it, plus one pixel all round to see what lies beyond.
    # Towards a neighbour that ran earlier the window may reach two halos: what it left
    # unclaimed near its open border can extend beyond one halo from this core.
    h = job.params.halo_px
    up, left, down, right = _reach(tile, job, h)
    cy0, cx0, cy1, cx1 = tile.core
    ext = (
        max(0, cy0 - up - 1),
        max(0, cx0 - left - 1),
        min(height, cy1 + down + 1),
        min(width, cx1 + right + 1),
    )
    ey0, ex0 = ext[0], ext[1]
    claimed_ext = _compose(job, ext)
    tissue_ext = np.ones(claimed_ext.shape, bool) if mask is None else mask(*ext)
    free_ext = tissue_ext & (claimed_ext == 0)
    ry0, rx0 = max(0, cy0 - up), max(0, cx0 - left)
    ry1, rx1 = min(height, cy1 + down), min(width, cx1 + right)
    region = free_ext[ry0 - ey0 : ry1 - ey0, rx0 - ex0 : rx1 - ex0]
    comps = connected(region, background=0, connectivity=1)
    at_core = _present(comps[cy0 - ry0 : cy1 - ry0, cx0 - rx0 : cx1 - rx0], int(comps.max()))
    if not len(at_core):
        _save(workdir, tile.index, np.zeros((0, 0), np.int64))
        _save_claims(workdir, job, np.zeros((0, 0), np.int64), (0, 0, 0, 0))
        return tile.index, 0
    touches_core = np.zeros(int(comps.max()) + 1, bool)
    touches_core[at_core] = True
    reach = touches_core[comps]
    rows, cols = np.flatnonzero(reach.any(axis=1)), np.flatnonzero(reach.any(axis=0))
    y0, y1 = min(ry0 + rows[0], cy0), max(ry0 + rows[-1] + 1, cy1)
    x0, x1 = min(rx0 + cols[0], cx0), max(rx0 + cols[-1] + 1, cx1)
    inner = (slice(y0 - ey0, y1 - ey0), slice(x0 - ex0, x1 - ex0))
    blank = np.zeros(0, bool)

    def beyond(ys: slice | int, xs: slice | int, inside: bool) -> np.ndarray:
        return free_ext[ys, xs] if inside else blank

    n_w, n_h = x1 - x0, y1 - y0
    outside = (
        beyond(y0 - ey0 - 1, inner[1], y0 > 0) if y0 > 0 else np.zeros(n_w, bool),
        beyond(inner[0], x0 - ex0 - 1, x0 > 0) if x0 > 0 else np.zeros(n_h, bool),
        beyond(y1 - ey0, inner[1], y1 < height) if y1 < height else np.zeros(n_w, bool),
        beyond(inner[0], x1 - ex0, x1 < width) if x1 < width else np.zeros(n_h, bool),
    )
    keys, count = segment_tile(
        image(y0, x0, y1, x1),
        free_ext[inner],
        claimed_ext[inner],
        outside,
        job.params,
        (tile.index + 1) << KEY_SHIFT,
        job.keep_all,
    )
    _save(workdir, tile.index, keys, (y0, x0, y1, x1))
    _save_claims(workdir, job, keys, (y0, x0, y1, x1))
    return tile.index, count


def _claims_path(workdir: Path, index: int) -> Path:
    return workdir / f"tile-{index:07d}.claims.npy"


def _save_claims(workdir: Path, job: _Job, keys: np.ndarray, box: tuple[int, int, int, int]) -> None:
    """(core index, pixels this tile claimed in it) for each tile core its output overlaps, so
    that a sweep can tell from a few numbers that its core has nothing left (claims are
    disjoint: a tile claims only free pixels)."""
    t, cols = job.params.tile_px, -(-job.shape[1] // job.params.tile_px)
    y0, x0, y1, x1 = box
    rows = []
    if y1 > y0 and x1 > x0:
        for r in range(y0 // t, (y1 - 1) // t + 1):
            for c in range(x0 // t, (x1 - 1) // t + 1):
                ys, ye = max(y0, r * t) - y0, min(y1, (r + 1) * t) - y0
                xs, xe = max(x0, c * t) - x0, min(x1, (c + 1) * t) - x0
                rows.append((r * cols + c, int(np.count_nonzero(keys[ys:ye, xs:xe]))))
    tmp = workdir / f".tile-{job.tile.index:07d}.claims.tmp"
    with open(tmp, "wb") as f:
        np.save(f, np.asarray(rows, np.int64).reshape(-1, 2))
    os.replace(tmp, _claims_path(workdir, job.tile.index))


def _claimed_in_core(workdir: Path, job: _Job) -> int:
    """Pixels of the sweep's core that its own and its neighbours' tiles claimed (only they
    reach it: a window extends at most two halos, a quarter tile, beyond its core)."""
    total = 0
    for index, _ in job.deps:
        claims = np.load(_claims_path(workdir, index))
        total += int(claims[claims[:, 0] == job.tile.index, 1].sum())
    return total


def _reach(tile: Tile, job: _Job, halo: int) -> tuple[int, int, int, int]:
    """How far (up, left, down, right) the window may grow beyond the core."""
    earlier = {index for index, _ in job.deps}
    cols = -(-job.shape[1] // job.params.tile_px)
    out = []
    for dr, dc in ((-1, 0), (0, -1), (1, 0), (0, 1)):
        r, c = tile.row + dr, tile.col + dc
        inside = r >= 0 and 0 <= c < cols
        out.append(2 * halo if inside and r * cols + c in earlier else halo)
    return out[0], out[1], out[2], out[3]


def sweep_tile(
    free: np.ndarray, claimed: np.ndarray, params: SlicParams, key_base: int
) -> tuple[np.ndarray, int]:
    """Close what the phases left unclaimed in a core (rare: superpixels longer than the halo).

    Each leftover piece joins the claimed superpixel it shares the longest border with when
    smaller than half a superpixel, and is a superpixel of its own otherwise.
    """
    keys = np.zeros(free.shape, np.int64)
    if not free.any():
        return keys, 0
    comp = connected(free, background=0, connectivity=1)
    n = int(comp.max())
    target = _merge_slivers(comp, claimed, n, SLIVER_FACTOR * params.superpixel_size**2)
    merged = target[comp]
    kept = _present(merged, n)
    local = np.zeros(n + 1, np.int64)
    local[kept] = np.arange(1, len(kept) + 1)
    keys = np.where(merged > 0, key_base + local[np.maximum(merged, 0)], 0)
    keys = np.where(merged < 0, -merged, keys)
    return keys, len(kept)


_WORKER: dict[str, object] = {}


def _init_worker(image: WindowReader, mask: MaskReader | None, env: dict[str, str]) -> None:
    # The fork server outlives this call and may predate the caller's environment (the
    # endpoint and credentials readers use): take the caller's, as of now.
    from histolabel.config import get_settings

    os.environ.update(env)
    get_settings.cache_clear()
    _WORKER["image"], _WORKER["mask"] = image, mask


def _run_in_worker(job: _Job) -> tuple[int, int]:
    return _run_tile(job, _WORKER["image"], _WORKER["mask"])  # type: ignore[arg-type]


def segment(
    image: WindowReader,
    shape: tuple[int, int],
    params: SlicParams,
    mask: MaskReader | None = None,
    workers: int | None = None,
    workdir: Path | None = None,
    progress: Callable[[int], None] | None = None,
    sink: BlockSink | None = None,
    stats: bool = False,
    block: int = 2048,
) -> TiledResult:
    """Segment an image of `shape` (h, w) tile by tile; returns where the tiles' ids are.

    `workers` processes (default: all cores; 1 runs in this process). Tile outputs go to
    `workdir` (default: a new temporary folder), read back by `TiledResult.block`.
    With a `sink` (and/or `stats`), the same workers then assemble dense ids in
    `block`-sized pieces, hand each to the sink and return per-block table sums in
    `result.stats`. `progress` counts pixels: once per tile core and once per block.
    """
    grid = Grid(shape[0], shape[1], params.tile_px, params.halo_px)
    tiles = grid.tiles()
    work = Path(workdir or tempfile.mkdtemp(prefix="histolabel-slic-"))
    work.mkdir(parents=True, exist_ok=True)
    last_phase = max(t.phase for t in tiles)
    jobs = {
        t.index: _Job(
            t,
            tuple((d, tiles[d].window) for d in grid.depends_on(t)),
            shape,
            params,
            t.phase == last_phase,
            str(work),
        )
        for t in tiles
    }
    n = len(tiles)
    for t in tiles:
        # the sweep of a tile reads the outputs of its own and all neighbouring tiles
        deps = tuple((d, tiles[d].window) for d in [t.index, *grid.neighbours(t)])
        jobs[n + t.index] = _Job(t, deps, shape, params, True, str(work), sweep=True)
    counts = [0] * (2 * n)
    n_workers = workers or available_cpus()
    boxes = [
        (y, x, min(y + block, shape[0]), min(x + block, shape[1]))
        for y in range(0, shape[0], block)
        for x in range(0, shape[1], block)
    ]
    assemble = sink is not None or stats
    if n_workers <= 1 or n == 1:
        for index in sorted(jobs, key=lambda i: (i >= n, tiles[i % n].phase, i)):
            _, counts[index] = _run_tile(jobs[index], image, mask)
            if progress and index < n:
                progress(_area(tiles[index].core))
        result = TiledResult(shape[0], shape[1], grid, counts, work)
        if assemble:
            for box in boxes:
                result.stats.append(_assemble(result, box, sink, stats))
                if progress:
                    progress(_area(box))
        return result
    ctx = _forkserver()
    with ProcessPoolExecutor(
        n_workers, mp_context=ctx, initializer=_init_worker, initargs=(image, mask, _settings_env())
    ) as pool:
        for index, count in _schedule(jobs, pool, n_workers):
            counts[index] = count
            if progress and index < n:
                progress(_area(tiles[index].core))
        # dense ids need every tile's count, so assembly starts once all tiles are done
        result = TiledResult(shape[0], shape[1], grid, counts, work)
        if assemble:
            futures = [pool.submit(_assemble, result, box, sink, stats) for box in boxes]
            for box, future in zip(boxes, futures, strict=True):
                result.stats.append(future.result())
                if progress:
                    progress(_area(box))
    return result


def _assemble(
    result: TiledResult, box: tuple[int, int, int, int], sink: BlockSink | None, stats: bool
) -> BlockStats | None:
    ids = result.block(*box)
    if sink is not None:
        sink(box[0], box[1], ids)
    return block_stats(ids, box[0], box[1]) if stats else None


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _settings_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "HISTOLABEL_"))}


def _forkserver() -> multiprocessing.context.ForkServerContext:
    """Workers fork from a server that already imported everything a tile needs (the SLIC
    kernel compiled), with one BLAS thread each: the processes are the parallelism, threads
    would oversubscribe."""
    from multiprocessing import forkserver

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["histolabel.segmentation.tiled", "histolabel.segmentation.warm"])
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update(dict.fromkeys(_THREAD_VARS, "1"))
    try:
        forkserver.ensure_running()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return ctx


def _schedule(jobs: dict[int, _Job], pool: ProcessPoolExecutor, slots: int) -> Iterator[tuple[int, int]]:
    """Run each tile once its earlier-phase neighbours are done; yield (index, count).

    Only as many jobs as workers are in flight, each slot taking the ready job of the earliest
    phase: those are what later tiles wait on, so no worker idles while a queue of late-phase
    or sweep jobs stands before the job that would release more work."""
    # a heap of ready jobs and a count of unfinished dependencies per job: O(jobs log jobs),
    # where rescanning every waiting job after each completion was O(jobs^2)
    blocked = {i: len({d for d, _ in job.deps if d != i}) for i, job in jobs.items()}
    dependants: dict[int, list[int]] = {i: [] for i in jobs}
    for i, job in jobs.items():
        for d in {d for d, _ in job.deps if d != i}:
            dependants[d].append(i)

    def key(i: int) -> tuple[bool, int, int]:
        return (jobs[i].sweep, jobs[i].tile.phase, i)

    ready = [key(i) for i, k in blocked.items() if k == 0]
    heapq.heapify(ready)
    running: dict[Future[tuple[int, int]], int] = {}
    while ready or running:
        while ready and len(running) < slots:
            i = heapq.heappop(ready)[2]
            running[pool.submit(_run_in_worker, jobs[i])] = i
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for fut in finished:
            del running[fut]
            index, count = fut.result()
            for j in dependants[index]:
                blocked[j] -= 1
                if blocked[j] == 0:
                    heapq.heappush(ready, key(j))
            yield index, count


def _area(box: tuple[int, int, int, int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


@dataclass(frozen=True)
class ArrayWindow:
    """An in-memory image (tests, small images)."""

    array: np.ndarray

    def __call__(self, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        return np.ascontiguousarray(self.array[y0:y1, x0:x1])


@dataclass(frozen=True)
class ScaledMask:
    """A low-resolution boolean mask read at a higher resolution by nearest neighbour."""

    mask: np.ndarray
    factor: float  # segmentation px per mask px

    def __call__(self, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        h, w = self.mask.shape
        ys = np.minimum(((np.arange(y0, y1) + 0.5) / self.factor).astype(np.int64), h - 1)
        xs = np.minimum(((np.arange(x0, x1) + 0.5) / self.factor).astype(np.int64), w - 1)
        return self.mask[np.ix_(ys, xs)]


@dataclass(frozen=True)
class NpyWindow:
    """An image in a .npy file, memory-mapped: each worker reads only its windows."""

    path: str

    def __call__(self, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        return np.ascontiguousarray(np.load(self.path, mmap_mode="r")[y0:y1, x0:x1])
