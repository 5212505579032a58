"""SLIC kernels for the tiled segmentation: scikit-image's, and our own compiled one.

`slic(image, n_segments, compactness, kernel=...)` segments one RGB window and returns int32
labels from `start_label`, 4-connected; the tiling (`tiled.py`) calls it once per tile window.

Why our own kernel, and why numba. SLIC is the slow stage of segmenting a slide (about 1 MP/s
on one core with skimage), and the options were:
- fast-slic (10-19x) does not build from a clean `pip install` (its sdist needs Cython at
  setup time, which build isolation hides) and has no wheels for Python 3.11: CI could not
  install it reliably.
- a vectorised numpy or torch SLIC must materialise, per iteration, a distance for every
  (pixel, candidate centre) pair (9 candidates a pixel): ~40 float32 arrays of the image's size
  per iteration, memory-bound, and torch on CPU brings no loop fusion either; a GPU is not
  where the segment job runs.
- a numba kernel is the textbook SLIC loop compiled: each centre scans its window once per
  iteration in float32, no temporaries, and connectivity is one BFS pass. numba ships cp311
  manylinux wheels (numba, llvmlite) and its JIT output is cached on disk (`cache=True`), so a
  job pays compilation (~seconds) once per machine, not per tile or per worker.

Same semantics as skimage's `slic` for what the product uses: CIE Lab (D65) from sRGB, the
same seed grid (`skimage.util.regular_grid`), the distance d_lab^2 / m^2 + d_xy^2 / S^2 with
S the grid step and m the compactness, up to `max_num_iter` k-means iterations (stopping when
no pixel changes), and skimage's connectivity rule (components smaller than
`min_size_factor` of a superpixel join the neighbour met first in raster order; labels are
renumbered in raster order of their first pixel). What differs, for speed: float32 throughout,
each centre searches +-S around itself (SLIC's paper, and fast-slic) where skimage searches
+-2S, a quarter of the work per iteration, and 5 iterations rather than 10 by default.
`bench/slic_quality.py` measures what that costs in boundary recall, undersegmentation error
and compactness on the MoNuSeg images: nothing beyond 5% (the numbers are in its output).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from skimage.util import regular_grid

from histolabel.jit import numba  # configured: its cache where the install is read-only

Kernel = Literal["numba", "skimage"]
KERNELS: tuple[Kernel, ...] = ("numba", "skimage")
DEFAULT_KERNEL: Kernel = "numba"
SEARCH = 1.0  # how far (in grid steps) each centre looks for its pixels
# k-means iterations when not given: skimage's own default, and 5 for ours, where MoNuSeg shows
# it within 5% of skimage at 10 on every measure (at 3 the undersegmentation error is 7% worse)
ITERATIONS: dict[str, int] = {"skimage": 10, "numba": 5}

# sRGB (D65) to XYZ, and the D65 white point, as skimage.color uses them
_RGB_TO_XYZ = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]],
    np.float32,
)
_WHITE = np.array([0.95047, 1.0, 1.08883], np.float32)


def _linear_lut() -> np.ndarray:
    c = np.arange(256, dtype=np.float64) / 255.0
    return np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92).astype(np.float32)


_LINEAR = _linear_lut()


def slic(
    image: np.ndarray,
    n_segments: int,
    compactness: float = 10.0,
    kernel: Kernel = DEFAULT_KERNEL,
    max_num_iter: int | None = None,
    start_label: int = 1,
    enforce_connectivity: bool = True,
    min_size_factor: float = 0.5,
    search: float = SEARCH,
) -> np.ndarray:
    """Superpixel labels (int32, h x w) of an RGB uint8 image (h x w x 3)."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown SLIC kernel {kernel!r}: choose one of {', '.join(KERNELS)}")
    iterations = ITERATIONS[kernel] if max_num_iter is None else max_num_iter
    if iterations < 1:
        raise ValueError("max_num_iter must be at least 1")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"SLIC needs an RGB image (h, w, 3), got shape {image.shape}")
    if n_segments < 1:
        raise ValueError("n_segments must be at least 1")
    if compactness <= 0:
        raise ValueError("compactness must be positive")
    if search <= 0:
        raise ValueError("search must be positive")
    if kernel == "skimage":
        from skimage.segmentation import slic as skimage_slic

        out = skimage_slic(
            image,
            n_segments=n_segments,
            compactness=compactness,
            max_num_iter=iterations,
            start_label=start_label,
            channel_axis=-1,
            enforce_connectivity=enforce_connectivity,
            min_size_factor=min_size_factor,
        )
        return np.asarray(out, np.int32)
    if image.dtype != np.uint8:
        raise ValueError(f"the numba SLIC kernel takes uint8 RGB, got {image.dtype}")
    rgb = np.ascontiguousarray(image)
    h, w = rgb.shape[:2]
    lab = _lab(rgb, _LINEAR, _RGB_TO_XYZ, _WHITE)
    slices = regular_grid((1, h, w), n_segments)  # skimage's seeds, exactly
    ys = np.arange(h)[slices[1]].astype(np.float32)
    xs = np.arange(w)[slices[2]].astype(np.float32)
    steps = [float(s.step) if s.step is not None else 1.0 for s in slices]
    step = max(steps)
    cy, cx = np.meshgrid(ys, xs, indexing="ij")
    centres = np.zeros((cy.size, 5), np.float32)
    centres[:, 0], centres[:, 1] = cy.ravel(), cx.ravel()
    centres[:, 2:] = lab[:, cy.ravel().astype(np.int64), cx.ravel().astype(np.int64)].T
    labels = _iterate(
        lab, centres, np.float32(step), np.float32(1.0 / compactness**2), iterations, np.float32(search)
    )
    if enforce_connectivity:
        min_size = int(min_size_factor * h * w / len(centres))
        return _connect(labels, min_size, start_label)
    return labels + np.int32(start_label)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _f(t: np.ndarray, bits: np.ndarray) -> None:
    """Lab's f(t) in place: cube root above 0.008856 (a bit-level first guess and two Newton
    steps, relative error ~1e-6, in loops that vectorise where libm's cbrtf does not)."""
    for i in range(t.size):
        bits[i] = bits[i] // 3 + 709921077
    guess = bits.view(np.float32)
    for i in range(t.size):
        v, y = t[i], guess[i]
        y = (y + y + v / (y * y)) * np.float32(1.0 / 3.0)
        y = (y + y + v / (y * y)) * np.float32(1.0 / 3.0)
        t[i] = y if v > np.float32(0.008856) else np.float32(7.787) * v + np.float32(16.0 / 116.0)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _lab(rgb: np.ndarray, linear: np.ndarray, m: np.ndarray, white: np.ndarray) -> np.ndarray:
    """CIE Lab planes (3, h, w), float32: planes keep the distance loop contiguous."""
    h, w = rgb.shape[:2]
    out = np.empty((3, h, w), np.float32)
    t = np.empty(3 * w, np.float32)
    bits = np.empty(3 * w, np.int32)
    for y in range(h):
        for x in range(w):
            r, g, b = linear[rgb[y, x, 0]], linear[rgb[y, x, 1]], linear[rgb[y, x, 2]]
            for c in range(3):
                t[c * w + x] = (m[c, 0] * r + m[c, 1] * g + m[c, 2] * b) / white[c]
        bits[:] = t.view(np.int32)
        _f(t, bits)
        for x in range(w):
            fx, fy, fz = t[x], t[w + x], t[2 * w + x]
            out[0, y, x] = np.float32(116.0) * fy - np.float32(16.0)
            out[1, y, x] = np.float32(500.0) * (fx - fy)
            out[2, y, x] = np.float32(200.0) * (fy - fz)
    return out


@numba.njit(cache=True, nogil=True, fastmath=True)
def _iterate(
    lab: np.ndarray,
    centres: np.ndarray,
    step: np.float32,
    colour_weight: np.float32,
    max_iter: int,
    search: np.float32,
) -> np.ndarray:
    """k-means over (y, x, L, a, b): each centre claims the pixels within +-step that it is the
    nearest centre to; returns 0-based centre indices (int32)."""
    h, w = lab.shape[1:]
    n = centres.shape[0]
    big = np.float32(3.0e38)
    labels = np.full((h, w), -1, np.int32)
    before = np.empty((h, w), np.int32)
    dist = np.empty((h, w), np.float32)
    spatial_weight = np.float32(1.0) / (step * step)
    reach = int(np.ceil(search * step))
    sums = np.zeros((n, 6), np.float64)
    xs = np.arange(w).astype(np.float32)
    row = np.empty(2 * reach + 1, np.float32)
    for _ in range(max_iter):
        dist[:] = big
        before[:] = labels
        for k in range(n):
            cy, cx = centres[k, 0], centres[k, 1]
            cl, ca, cb = centres[k, 2], centres[k, 3], centres[k, 4]
            y0, y1 = max(int(cy) - reach, 0), min(int(cy) + reach + 1, h)
            x0, x1 = max(int(cx) - reach, 0), min(int(cx) + reach + 1, w)
            kk = np.int32(k)
            n_x = x1 - x0
            for y in range(y0, y1):
                dy = np.float32(y) - cy
                dyy = dy * dy * spatial_weight
                lrow, arow, brow = lab[0, y, x0:x1], lab[1, y, x0:x1], lab[2, y, x0:x1]
                # distances first, in a loop that vectorises, then the comparison
                for i in range(n_x):
                    dx = xs[x0 + i] - cx
                    dl = lrow[i] - cl
                    da = arow[i] - ca
                    db = brow[i] - cb
                    row[i] = (dl * dl + da * da + db * db) * colour_weight + dyy + dx * dx * spatial_weight
                drow, labrow = dist[y], labels[y]
                for i in range(n_x):
                    if row[i] < drow[x0 + i]:
                        drow[x0 + i] = row[i]
                        labrow[x0 + i] = kk
        if np.array_equal(before, labels):
            break
        sums[:] = 0.0
        for y in range(h):
            for x in range(w):
                k = labels[y, x]
                if k < 0:
                    continue
                sums[k, 0] += y
                sums[k, 1] += x
                sums[k, 2] += lab[0, y, x]
                sums[k, 3] += lab[1, y, x]
                sums[k, 4] += lab[2, y, x]
                sums[k, 5] += 1.0
        for k in range(n):
            if sums[k, 5] > 0:
                for j in range(5):
                    centres[k, j] = sums[k, j] / sums[k, 5]
    # a pixel no window reached (possible only if a centre's window misses it) joins the
    # nearest labelled pixel to its left or above, else 0
    for y in range(h):
        for x in range(w):
            if labels[y, x] < 0:
                if x > 0:
                    labels[y, x] = labels[y, x - 1]
                elif y > 0:
                    labels[y, x] = labels[y - 1, x]
                else:
                    labels[y, x] = 0
    return labels


@numba.njit(cache=True, nogil=True)
def _connect(labels: np.ndarray, min_size: int, start_label: int) -> np.ndarray:
    """4-connected components of equal labels, renumbered from `start_label` in raster order
    of their first pixel; a component smaller than `min_size` takes the label of the pixel
    before it in raster order (left, else above), as skimage's connectivity step does."""
    h, w = labels.shape
    out = np.full((h, w), -1, np.int32)
    qy = np.empty(h * w, np.int32)  # the component's pixels, rows and columns apart: no division
    qx = np.empty(h * w, np.int32)
    current = start_label
    for y in range(h):
        for x in range(w):
            if out[y, x] >= 0:
                continue
            adjacent = -1
            if x > 0:
                adjacent = out[y, x - 1]
            elif y > 0:
                adjacent = out[y - 1, x]
            label = labels[y, x]
            out[y, x] = current
            qy[0], qx[0] = y, x
            head, tail = 0, 1
            while head < tail:
                py, px = qy[head], qx[head]
                head += 1
                if py > 0 and out[py - 1, px] < 0 and labels[py - 1, px] == label:
                    out[py - 1, px] = current
                    qy[tail], qx[tail] = py - 1, px
                    tail += 1
                if py < h - 1 and out[py + 1, px] < 0 and labels[py + 1, px] == label:
                    out[py + 1, px] = current
                    qy[tail], qx[tail] = py + 1, px
                    tail += 1
                if px > 0 and out[py, px - 1] < 0 and labels[py, px - 1] == label:
                    out[py, px - 1] = current
                    qy[tail], qx[tail] = py, px - 1
                    tail += 1
                if px < w - 1 and out[py, px + 1] < 0 and labels[py, px + 1] == label:
                    out[py, px + 1] = current
                    qy[tail], qx[tail] = py, px + 1
                    tail += 1
            if tail < min_size and adjacent >= 0:
                for i in range(tail):
                    out[qy[i], qx[i]] = adjacent
            else:
                current += 1
    return out
