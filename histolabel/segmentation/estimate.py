"""How many superpixels the segment job will make on a slide, before it runs: the job's own tile
step run on a few windows of the tissue at the job's resolution and superpixel size, scaled up
by tissue area.

Why not the area ratio or a coarser level: on H&E the tissue mask's ragged edges and holes cut
many SLIC cells into slivers that the job merges into neighbours, so tissue area / size² reads
about 3x high (CMU-1: 2,426 vs 775 made at 32 px); running the step on a 4x coarser copy reads
~40% high (1,140 vs 775; 652 vs 471 at 40 px), since coarse outlines make fewer slivers to merge.
Sampled windows at full resolution see the slivers as the job does.

Each window is a core plus a halo of two superpixels (as the job's tiles); a superpixel counts
for the share of its pixels that lie in the core, so regions cut by the window's edge (whose
pieces would be counted whole) count for little. Density = counted / tissue px in the cores;
the estimate is density x the slide's tissue px.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from histolabel.segmentation.tiled import SlicParams, segment_tile

# Pixels segmented per estimate: a few seconds of SLIC; below it the whole image is segmented.
BUDGET_PX = 2_500_000
# Many small windows rather than a few large ones: sliver rates vary across a slide (tissue
# edges vs its interior), so the spread of windows matters more than their size. Measured on
# the shared slides (expected / made): CMU-1 0.97 (32 px) 1.03 (40 px), TCGA-CR-7395 0.87 (64 px)
# 1.02 (32 px), DICOM 1.05, OS-1 and OS-2 1.01 (segmented whole); with 6-10-superpixel cores (and
# a 1.5 M px budget) the same CMU-1 read 0.74-1.27 by core and size.
CORE_SUPERPIXELS = 4
HALO_SUPERPIXELS = 2  # as the segment job's tiles

Window = Callable[[int, int, int, int], np.ndarray]  # (y0, x0, y1, x1) -> rgb (h, w, 3)
MaskWindow = Callable[[int, int, int, int], np.ndarray]  # (y0, x0, y1, x1) -> bool (h, w)


def _count(
    rgb: np.ndarray, tissue: np.ndarray, params: SlicParams, core: tuple[slice, slice] | None
) -> float:
    h, w = tissue.shape
    edges = (np.zeros(w, bool), np.zeros(h, bool), np.zeros(w, bool), np.zeros(h, bool))
    keys, n = segment_tile(rgb, tissue, np.zeros((h, w), np.int64), edges, params, 0, keep_all=True)
    if core is None or n == 0:
        return float(n)
    whole = np.bincount(keys.ravel(), minlength=n + 1)[1:]
    inside = np.bincount(keys[core].ravel(), minlength=n + 1)[1:]
    present = whole > 0
    return float((inside[present] / whole[present]).sum())


def windows(
    shape: tuple[int, int], tissue: MaskWindow, px: int, budget_px: int = BUDGET_PX
) -> list[tuple[int, int, int, int]]:
    """Cores (y0, x0, y1, x1) on a grid over the image, spread evenly over those with tissue."""
    h, w = shape
    side = CORE_SUPERPIXELS * px
    window = side + 2 * HALO_SUPERPIXELS * px
    k = max(1, budget_px // (window * window))
    cells = [(y, x, min(y + side, h), min(x + side, w)) for y in range(0, h, side) for x in range(0, w, side)]
    with_tissue = [c for c in cells if tissue(*c).any()]
    if len(with_tissue) <= k:
        return with_tissue
    step = len(with_tissue) / k
    return [with_tissue[int(i * step + step / 2)] for i in range(k)]


def expected_count(
    shape: tuple[int, int],
    image: Window,
    tissue: MaskWindow,
    tissue_px: float,
    px: int,
    compactness: float,
    budget_px: int = BUDGET_PX,
) -> int:
    """Superpixels the segment job makes on an image of `shape` (h, w) at its segmentation level,
    with superpixels of side `px`; `tissue_px`: the tissue's area there, in px."""
    h, w = shape
    # The job's own kernel: skimage's makes up to 30% fewer superpixels on small images (CMU-1's
    # region at 40 px: 487 against the job's 682). A fresh API container compiles it once (or
    # loads it from numba's cache), 5-16 s on a loaded 2-core machine.
    params = SlicParams(px, compactness)
    if tissue_px <= 0:
        return 0
    if h * w <= budget_px:
        return round(_count(image(0, 0, h, w), tissue(0, 0, h, w), params, None))
    halo = HALO_SUPERPIXELS * px
    counted = sampled = 0.0
    for y0, x0, y1, x1 in windows(shape, tissue, px, budget_px):
        ey0, ex0, ey1, ex1 = max(0, y0 - halo), max(0, x0 - halo), min(h, y1 + halo), min(w, x1 + halo)
        mask = tissue(ey0, ex0, ey1, ex1)
        core = (slice(y0 - ey0, y1 - ey0), slice(x0 - ex0, x1 - ex0))
        counted += _count(image(ey0, ex0, ey1, ex1), mask, params, core)
        sampled += float(mask[core].sum())
    return max(1, round(counted / sampled * tissue_px)) if sampled else 0
