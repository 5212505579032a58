"""GeoJSON outlines from one read per tile equal those from one crop per superpixel."""

from __future__ import annotations

import numpy as np
from skimage import io as skio
from skimage.measure import find_contours, regionprops
from skimage.segmentation import slic

from histolabel.api.export import outline, outlines
from histolabel.contours import outer_ring


def test_outlines_by_tile_equal_outlines_by_crop(shared_data) -> None:
    rgb = skio.imread(shared_data / "slides" / "skimage_ihc.png")[..., :3]
    labels = slic(rgb, n_segments=600, compactness=10, start_label=1)
    boxes = {p.label: p.bbox for p in regionprops(labels)}
    reads: list[tuple[int, int, int, int]] = []

    def window(y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        reads.append((y0, x0, y1, x1))
        return labels[y0:y1, x0:x1]

    got = outlines(window, boxes, scale=2.0, tile=128)
    assert set(got) == set(boxes)
    for sp, (y0, x0, y1, x1) in boxes.items():
        assert got[sp] == outline(labels[y0:y1, x0:x1] == sp, y0, x0, 2.0), sp
    # One read per 128 px tile of the 512 px image (16), not one per superpixel (~600).
    assert len(reads) <= 16 < len(boxes)


def _skimage_outline(mask: np.ndarray) -> list[tuple[float, float]]:
    """The reference: skimage's marching squares, longest contour, straight runs' inner points
    left out (what outline() computed before its compiled tracer)."""
    padded = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), np.uint8)
    padded[1:-1, 1:-1] = mask
    contours = find_contours(padded, 0.5)
    if not contours:
        return []
    ring = max(contours, key=len)
    if len(ring) > 1 and (ring[0] == ring[-1]).all():
        ring = ring[:-1]
    if len(ring) >= 3:
        before, after = ring - np.roll(ring, 1, axis=0), np.roll(ring, -1, axis=0) - ring
        turns = before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0] != 0
        if turns.sum() >= 3:
            ring = ring[turns]
    return [(float(r), float(c)) for r, c in ring]


def _same_cycle(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
    """The same ring, in the same direction, whatever point it starts at."""
    if len(a) != len(b) or (a and b[0] not in a):
        return False
    k = a.index(b[0]) if a else 0
    return a[k:] + a[:k] == b


def test_the_compiled_tracer_draws_skimages_contour(shared_data) -> None:
    """Real superpixels of two sizes, and random blobs with holes, corner-only contacts and
    pixels touching the crop's edge: the same ring as skimage's find_contours, point for point."""
    rgb = skio.imread(shared_data / "slides" / "skimage_ihc.png")[..., :3]
    masks = []
    for n in (300, 3000):
        labels = slic(rgb, n_segments=n, compactness=10, start_label=1)
        masks += [labels[p.slice] == p.label for p in regionprops(labels)]
    rng = np.random.default_rng(7)
    masks += [rng.random((rng.integers(1, 14), rng.integers(1, 14))) < 0.55 for _ in range(2000)]
    masks += [np.zeros((3, 4), bool), np.ones((1, 1), bool)]
    for mask in masks:
        got = [(float(r), float(c)) for r, c in outer_ring(mask)]
        assert _same_cycle(got, _skimage_outline(mask)), mask.astype(int)
