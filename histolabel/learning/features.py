"""Per-superpixel features that need no weights: a hand-crafted vector (stain colour in HED and
Lab, texture, shape, context) and fixed-size masked patches for the CNN.

Vectors come from per-superpixel sufficient statistics (sums, sums of squares, extremes) that
add up across tiles, so a whole slide is processed tile by tile (with a halo for the filters)
and a superpixel that spans tiles gets exactly the value it would get from one big image."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi
from skimage.color import rgb2hed, rgb2lab

from histolabel.jit import njit

# Per-pixel channels whose per-superpixel mean and std enter the vector.
_CHANNELS = ("H", "E", "D", "L", "a", "b", "grad", "log1", "log2", "log4", "ctxH", "ctxE")
_MEAN_ONLY = ("hdark",)  # fraction of pixels darker in haematoxylin than the image's Otsu level
_SHAPE = ("log_area", "eccentricity", "extent", "aspect")
HANDCRAFTED_NAMES: tuple[str, ...] = (
    *(f"{c}_mean" for c in _CHANNELS),
    *(f"{c}_std" for c in _CHANNELS),
    *(f"{c}_mean" for c in _MEAN_ONLY),
    *_SHAPE,
)
HANDCRAFTED_DIM = len(HANDCRAFTED_NAMES)
HALO = 24  # px of context the filters need on each side of a tile (4 sigma of the widest)


def pixel_channels(rgb: NDArray[np.uint8], h_threshold: float | None = None) -> NDArray[np.float32]:
    """[c, h, w] per-pixel channels: HED, Lab, gradient, blob responses, blurred stain context."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB image [h, w, 3], got shape {rgb.shape}")
    img = rgb.astype(np.float32) / 255.0
    # Channels are written into one array and filtered from contiguous planes: stacking strided
    # views of the HED and Lab images, and filtering them, cost a third of the function.
    out = np.empty((13, *rgb.shape[:2]), np.float32)
    out[0:3] = rgb2hed(img).astype(np.float32).transpose(2, 0, 1)
    out[3:6] = rgb2lab(img).astype(np.float32).transpose(2, 0, 1)
    h = out[0]
    ndi.gaussian_gradient_magnitude(out[3], 1.0, output=out[6])
    for k, s in enumerate((1.0, 2.0, 4.0)):
        ndi.gaussian_laplace(h, s, output=out[7 + k])
        out[7 + k] *= -s * s  # exact: s is a power of two
    ndi.gaussian_filter(h, 6.0, output=out[10])
    ndi.gaussian_filter(out[1], 6.0, output=out[11])
    th = h_threshold if h_threshold is not None else otsu(h)
    np.greater(h, th, out=out[12], casting="unsafe")
    return out


def otsu(values: NDArray[np.floating]) -> float:
    from skimage.filters import threshold_otsu

    v = np.asarray(values, dtype=np.float32).ravel()
    if v.size > 1_000_000:
        v = v[:: v.size // 1_000_000]
    return float(threshold_otsu(v)) if np.ptp(v) > 0 else float(v[0])


@dataclass(frozen=True)
class TileStats:
    """One tile's sufficient statistics, for the superpixel ids present in its core only (a few
    thousand at 10^6 superpixels a slide), so they travel cheaply between processes and merge
    into a `HandcraftedAccumulator` in any process."""

    ids: NDArray[np.int64]  # (m,) ids present
    count: NDArray[np.float64]  # (m,)
    sums: NDArray[np.float64]  # (channels + mean-only, m)
    sq: NDArray[np.float64]  # (channels, m)
    moments: NDArray[np.float64]  # (5, m): y, x, yy, xx, xy in slide coordinates
    lo: NDArray[np.int64]  # (2, m): smallest y, x
    hi: NDArray[np.int64]  # (2, m): largest y, x


def tile_stats(
    channels: NDArray[np.float32],
    labels: NDArray[np.integer],
    origin: tuple[int, int] = (0, 0),
    core: tuple[slice, slice] | None = None,
    n: int | None = None,
) -> TileStats | None:
    """Statistics of one tile: `channels` from `pixel_channels` of the tile, `labels` its
    superpixel ids; only pixels inside `core` count (the rest is halo). `origin` is the core's
    top-left in slide coordinates. None for an empty core. Each sum runs over the tile's pixels
    in raster order, as one bincount over the whole slide's ids would."""
    full = np.asarray(channels, dtype=np.float32)
    rows, cols = core if core is not None else (slice(None), slice(None))
    y0, y1, _ = rows.indices(full.shape[1])
    x0, x1, _ = cols.indices(full.shape[2])
    labels = labels[rows, cols]
    lab = np.asarray(labels).ravel().astype(np.int64)
    if lab.size == 0:
        return None
    top = int(lab.max())
    if n is not None and top > n:
        raise ValueError(f"superpixel id {top} exceeds the count {n}")
    # Renumber the ids present 0..m-1 through a table as long as the tile's id range (ids
    # are assigned tile by tile, so the range is short), not the slide's 10^6.
    low = int(lab.min())
    seen = np.bincount(lab - low)
    ids = np.flatnonzero(seen) + low
    table = np.zeros(top - low + 1, np.int64)
    table[ids - low] = np.arange(len(ids))
    local = table[lab - low]
    m = len(ids)
    count = seen[ids - low].astype(np.float64)
    # The core is read in place (a copy of a 2048^2 tile's channels is 0.2 GB).
    window = np.array([y0, y1, x0, x1, origin[0], origin[1]], np.int64)
    sums, sq, moments, lo, hi = _accumulate(full, local, m, len(_CHANNELS), window)
    return TileStats(ids, count, sums, sq, moments, lo, hi)


@njit(cache=True, nogil=True)
def _accumulate(
    channels: NDArray[np.float32], local: NDArray[np.int64], m: int, nc: int, window: NDArray[np.int64]
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any], NDArray[Any], NDArray[Any]]:
    """One pass over the core's pixels (`window`: rows y0:y1, columns x0:x1 of `channels`
    [k, h, w], and the core's origin in the slide) for every sum a tile's statistics need: per
    id the channels' sums (and squares for the first `nc`), the position moments and the
    bounding box. Each sum adds its pixels in raster order in float64, as `np.bincount` does,
    so the result is bit-identical to one bincount per channel (31 passes over the tile, 30% of
    embed's time)."""
    y0, y1, x0, x1, oy, ox = window
    k = channels.shape[0]
    sums = np.zeros((k, m))
    sq = np.zeros((nc, m))
    moments = np.zeros((5, m))
    lo = np.full((2, m), np.iinfo(np.int64).max, np.int64)
    hi = np.full((2, m), np.iinfo(np.int64).min, np.int64)
    i = 0
    for r in range(y0, y1):
        yi = oy + r - y0
        y = np.float64(yi)
        for q in range(x0, x1):
            j = local[i]
            i += 1
            for c in range(k):
                v = np.float64(channels[c, r, q])
                sums[c, j] += v
                if c < nc:
                    sq[c, j] += v * v
            xi = ox + q - x0
            x = np.float64(xi)
            moments[0, j] += y
            moments[1, j] += x
            moments[2, j] += y * y
            moments[3, j] += x * x
            moments[4, j] += y * x
            lo[0, j] = min(lo[0, j], yi)
            lo[1, j] = min(lo[1, j], xi)
            hi[0, j] = max(hi[0, j], yi)
            hi[1, j] = max(hi[1, j], xi)
    return sums, sq, moments, lo, hi


class HandcraftedAccumulator:
    """Accumulates per-superpixel statistics over tiles; `result()` gives [n, HANDCRAFTED_DIM].
    Tiles merged in the same order give the same result wherever their statistics came from."""

    def __init__(self, n: int) -> None:
        self.n = n
        k = len(_CHANNELS) + len(_MEAN_ONLY)
        self.count = np.zeros(n + 1)
        self.sums = np.zeros((k, n + 1))
        self.sq = np.zeros((len(_CHANNELS), n + 1))
        self.moments = np.zeros((5, n + 1))  # y, x, yy, xx, xy (global coordinates)
        self.lo = np.full((2, n + 1), np.iinfo(np.int64).max, dtype=np.int64)
        self.hi = np.full((2, n + 1), -1, dtype=np.int64)

    def add(
        self,
        channels: NDArray[np.float32],
        labels: NDArray[np.integer],
        origin: tuple[int, int] = (0, 0),
        core: tuple[slice, slice] | None = None,
    ) -> None:
        """Add one tile (see `tile_stats`)."""
        stats = tile_stats(channels, labels, origin, core, self.n)
        if stats is not None:
            self.merge(stats)

    def merge(self, t: TileStats) -> None:
        if t.ids.size and int(t.ids.max()) > self.n:
            raise ValueError(f"superpixel id {int(t.ids.max())} exceeds the count {self.n}")
        ids = t.ids
        self.count[ids] += t.count
        self.sums[:, ids] += t.sums
        self.sq[:, ids] += t.sq
        self.moments[:, ids] += t.moments
        self.lo[:, ids] = np.minimum(self.lo[:, ids], t.lo)
        self.hi[:, ids] = np.maximum(self.hi[:, ids], t.hi)

    def result(self) -> NDArray[np.float32]:
        c = np.maximum(self.count[1:], 1)
        mean = self.sums[:, 1:] / c
        nc = len(_CHANNELS)
        var = np.maximum(self.sq[:, 1:] / c - mean[:nc] ** 2, 0)
        my, mx = self.moments[0, 1:] / c, self.moments[1, 1:] / c
        vyy = self.moments[2, 1:] / c - my**2
        vxx = self.moments[3, 1:] / c - mx**2
        vxy = self.moments[4, 1:] / c - my * mx
        tr, det = vyy + vxx, vyy * vxx - vxy**2
        disc = np.sqrt(np.maximum(tr**2 / 4 - det, 0))
        l1, l2 = tr / 2 + disc, np.maximum(tr / 2 - disc, 0)
        ecc = np.sqrt(np.clip(1 - l2 / np.maximum(l1, 1e-9), 0, 1))
        bh = np.maximum(self.hi[0, 1:] - self.lo[0, 1:] + 1, 1)
        bw = np.maximum(self.hi[1, 1:] - self.lo[1, 1:] + 1, 1)
        extent = self.count[1:] / (bh * bw)
        aspect = np.minimum(bh, bw) / np.maximum(bh, bw)
        out = np.concatenate(
            [mean[:nc], np.sqrt(var), mean[nc:], np.stack([np.log1p(self.count[1:]), ecc, extent, aspect])]
        ).T
        out[self.count[1:] == 0] = 0.0
        return out.astype(np.float32)


def handcrafted(
    rgb: NDArray[np.uint8], labels: NDArray[np.integer], n: int | None = None
) -> NDArray[np.float32]:
    """Hand-crafted vectors of every superpixel of one in-memory image; row i is id i+1."""
    if rgb.shape[:2] != labels.shape:
        raise ValueError(f"image {rgb.shape[:2]} and labels {labels.shape} differ in size")
    n = int(labels.max()) if n is None else n
    acc = HandcraftedAccumulator(n)
    acc.add(pixel_channels(rgb), labels)
    return acc.result()


@dataclass(frozen=True)
class Tile:
    read: tuple[slice, slice]  # region to read (core plus halo, clipped to the image)
    core: tuple[slice, slice]  # the core, relative to the read region
    origin: tuple[int, int]  # the core's top-left in image coordinates


def tiles(height: int, width: int, size: int, halo: int = HALO) -> Iterator[Tile]:
    for y0 in range(0, height, size):
        for x0 in range(0, width, size):
            y1, x1 = min(y0 + size, height), min(x0 + size, width)
            ry0, rx0 = max(y0 - halo, 0), max(x0 - halo, 0)
            ry1, rx1 = min(y1 + halo, height), min(x1 + halo, width)
            yield Tile(
                read=(slice(ry0, ry1), slice(rx0, rx1)),
                core=(slice(y0 - ry0, y1 - ry0), slice(x0 - rx0, x1 - rx0)),
                origin=(y0, x0),
            )


def square_boxes(bboxes: NDArray[np.integer], scale: float = 1.0, min_side: int = 0) -> NDArray[np.int64]:
    """Squares [y0, x0, y1, x1] centred on each bbox, side = max(h, w) * scale (at least min_side)."""
    b = np.asarray(bboxes, dtype=np.float64)
    cy, cx = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    side = np.maximum(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) * scale, max(min_side, 1))
    half = side / 2
    sq = np.stack([cy - half, cx - half, cy + half, cx + half], axis=1)
    return np.round(sq).astype(np.int64)


def crop_patches(
    rgb: NDArray[np.uint8],
    boxes: NDArray[np.int64],
    size: int,
    *,
    labels: NDArray[np.integer] | None = None,
    ids: NDArray[np.integer] | None = None,
    origin: tuple[int, int] = (0, 0),
) -> NDArray[np.uint8]:
    """[m, 3, size, size] uint8 crops of `boxes` (image coordinates; zero outside the image),
    resized with area averaging. With `labels` and `ids`, pixels of other superpixels are blanked."""
    import torch  # here, not at the top: the handcrafted pool's workers never load it
    import torch.nn.functional as F

    out = np.zeros((len(boxes), 3, size, size), np.uint8)
    h, w = rgb.shape[:2]
    for i, (y0, x0, y1, x1) in enumerate(np.asarray(boxes) - np.array([*origin, *origin])):
        side_y, side_x = max(int(y1 - y0), 1), max(int(x1 - x0), 1)
        crop = np.zeros((side_y, side_x, 3), np.uint8)
        sy0, sx0, sy1, sx1 = max(y0, 0), max(x0, 0), min(y1, h), min(x1, w)
        if sy1 <= sy0 or sx1 <= sx0:
            continue
        crop[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
        if labels is not None and ids is not None:
            keep = np.zeros((side_y, side_x), bool)
            keep[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = labels[sy0:sy1, sx0:sx1] == ids[i]
            crop[~keep] = 0
        t = torch.from_numpy(crop).permute(2, 0, 1)[None].float()
        mode = "area" if side_y >= size and side_x >= size else "bilinear"
        r = F.interpolate(
            t, size=(size, size), mode=mode, **({} if mode == "area" else {"align_corners": False})
        )
        out[i] = r[0].round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def bboxes_from_labels(labels: NDArray[np.integer], n: int | None = None) -> NDArray[np.int64]:
    """[n, 4] (y0, x0, y1, x1), end-exclusive; zeros for an id that does not occur."""
    n = int(labels.max()) if n is None else n
    out = np.zeros((n, 4), np.int64)
    for i, sl in enumerate(ndi.find_objects(np.asarray(labels), max_label=n)):
        if sl is not None:
            out[i] = (sl[0].start, sl[1].start, sl[0].stop, sl[1].stop)
    return out


def masked_patches(
    rgb: NDArray[np.uint8], labels: NDArray[np.integer], size: int = 64, n: int | None = None
) -> NDArray[np.uint8]:
    """Masked patch of every superpixel of one in-memory image: the square around its bbox,
    pixels of other superpixels blanked, resized to size x size."""
    boxes = bboxes_from_labels(labels, n)
    ids = np.arange(1, boxes.shape[0] + 1)
    return crop_patches(rgb, square_boxes(boxes, 1.0), size, labels=labels, ids=ids)


def standardize_per_slide(x: NDArray[np.floating]) -> NDArray[np.float32]:
    """Z-score every feature over one slide's superpixels. Stain and scanner differences shift
    whole slides; removing each slide's own mean and spread lets a model trained on some slides
    transfer to others (all superpixels are used, labeled or not, so no label leaks)."""
    v = np.asarray(x, dtype=np.float64)
    if v.shape[0] == 0:
        return v.astype(np.float32)
    std = v.std(axis=0)
    return standardize_with(v, v.mean(axis=0), np.where(std > 1e-9, std, 1.0))


def standardize_with(
    x: NDArray[Any], mean: NDArray[np.float64], scale: NDArray[np.float64]
) -> NDArray[np.float32]:
    return ((np.asarray(x, dtype=np.float64) - mean) / scale).astype(np.float32)


class ColumnStats:
    """Per-feature mean and spread of a slide's rows fed a block at a time (Chan et al.'s
    pairwise update, stable where sums of squares are not), so `standardize_per_slide`'s
    statistics come without the slide's array in memory."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: NDArray[np.float64] | None = None
        self.m2: NDArray[np.float64] | None = None

    def add(self, block: NDArray[Any]) -> None:
        b = np.asarray(block, dtype=np.float64)
        if b.shape[0] == 0:
            return
        nb, mb = b.shape[0], b.mean(axis=0)
        m2b = ((b - mb) ** 2).sum(axis=0)
        if self.mean is None or self.m2 is None:
            self.n, self.mean, self.m2 = nb, mb, m2b
            return
        n = self.n + nb
        delta = mb - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2b + delta**2 * (self.n * nb / n)
        self.n = n

    def result(self, dim: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(mean, scale) as `standardize_per_slide` uses them; zeros and ones for no rows."""
        if self.mean is None or self.m2 is None:
            return np.zeros(dim), np.ones(dim)
        std = np.sqrt(self.m2 / self.n)
        return self.mean, np.where(std > 1e-9, std, 1.0)


def column_stats(array: Any, step: int | None = None) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """`standardize_per_slide`'s (mean, scale) of a sliceable [n, dim] array, read `step` rows at a
    time (default: its chunk, for a Zarr array; all of it, for one in memory)."""
    mean, scale, _ = stats_and_rows(array, np.empty(0, np.int64), step)
    return mean, scale


def stats_and_rows(
    array: Any, rows: NDArray[np.int64], step: int | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[Any]]:
    """`column_stats` and `array[rows]` (rows sorted, unique) in one read of the array: the train
    job's labeled rows come out of the blocks the statistics read anyway."""
    n = int(array.shape[0])
    chunks = getattr(array, "chunks", None)
    step = max(1, step or (int(chunks[0]) if chunks else n))
    stats = ColumnStats()
    picked = np.empty((rows.size, *array.shape[1:]), array.dtype)
    for start in range(0, n, step):
        block = np.asarray(array[start : start + step])
        stats.add(block)
        lo, hi = np.searchsorted(rows, [start, start + step])
        picked[lo:hi] = block[rows[lo:hi] - start]
    mean, scale = stats.result(int(np.prod(array.shape[1:])))
    return mean, scale, picked


class Standardized:
    """A lazy, standardized view of a sliceable [n, dim] array (read a batch at a time)."""

    def __init__(self, array: Any, mean: NDArray[np.float64], scale: NDArray[np.float64]) -> None:
        self.array, self.mean, self.scale = array, mean, scale
        self.shape = tuple(array.shape)

    def __getitem__(self, key: slice) -> NDArray[np.float32]:
        return standardize_with(np.asarray(self.array[key]), self.mean, self.scale)
