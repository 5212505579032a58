"""Tiled SLIC on real slide crops: seamless tiles, dense stable ids, SLIC-like areas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi
from skimage.measure import label as connected
from skimage.measure import regionprops

from histolabel.segmentation.kernel import slic as kernel_slic
from histolabel.segmentation.table import TableBuilder
from histolabel.segmentation.tiled import ArrayWindow, ScaledMask, SlicParams, segment
from histolabel.segmentation.tiling import Grid


@pytest.fixture(scope="module")
def tcga(shared_data: Path) -> np.ndarray:
    return np.asarray(tifffile.imread(shared_data / "slides" / "tcga-cr-7395-01a-01-ts1.svs"))


def run(image: np.ndarray, params: SlicParams, workers: int, tmp: Path, mask=None) -> np.ndarray:
    result = segment(ArrayWindow(image), image.shape[:2], params, mask=mask, workers=workers, workdir=tmp)
    labels = result.block(0, 0, *image.shape[:2])
    assert labels.max() == result.count
    return labels


def change_fraction(labels: np.ndarray, axis: int, pos: int) -> float:
    if axis == 1:
        return float((labels[:, pos - 1] != labels[:, pos]).mean())
    return float((labels[pos - 1] != labels[pos]).mean())


def split_pairs(labels: np.ndarray, axis: int, pos: int, size: int) -> int:
    """Pairs of ids facing each other across a line, each wholly on its side, touching along
    at least half a superpixel, whose union is no bigger than one and a half superpixels:
    a SLIC-sized region cut in two by the line."""
    a, b = (labels[:, pos - 1], labels[:, pos]) if axis == 1 else (labels[pos - 1], labels[pos])
    boxes = ndi.find_objects(labels)
    area = np.bincount(labels.ravel())
    pairs, contact = np.unique(np.stack([a, b], 1)[a != b], axis=0, return_counts=True)
    count = 0
    for (i, j), n in zip(pairs, contact, strict=True):
        if n < size // 2 or area[i] + area[j] > 1.5 * size * size:
            continue
        if boxes[i - 1][axis].stop <= pos and boxes[j - 1][axis].start >= pos:
            count += 1
    return count


@pytest.mark.slow
def test_seams_on_a_real_slide(tcga: np.ndarray, tmp_path: Path) -> None:
    image = tcga[:1536, :2048]
    size, tile = 32, 512  # 12 tiles, each 16 superpixels across
    tiled = run(image, SlicParams(size, 10.0, tile=tile), workers=2, tmp=tmp_path)
    # untiled, the same kernel as the tiles (the kernel's own quality: test_kernel.py)
    mono = kernel_slic(image, image.shape[0] * image.shape[1] // size**2, 10.0)

    # dense ids, every pixel labelled, every superpixel one 4-connected piece
    ids = np.unique(tiled)
    np.testing.assert_array_equal(ids, np.arange(1, tiled.max() + 1))
    for i, box in enumerate(ndi.find_objects(tiled), start=1):
        assert connected(tiled[box] == i, connectivity=1).max() == 1, f"superpixel {i} is split"

    # no superpixel cut at a tile edge: along each tile edge, labels change about as often
    # as along the same line of the untiled run (a cut edge would change at every pixel),
    # and no SLIC-sized region lies split in two across it more often than untiled
    for axis, extent in ((1, image.shape[1]), (0, image.shape[0])):
        for pos in range(tile, extent, tile):
            assert change_fraction(tiled, axis, pos) <= 1.5 * change_fraction(mono, axis, pos) + 0.02, (
                axis,
                pos,
            )
            assert split_pairs(tiled, axis, pos, size) <= split_pairs(mono, axis, pos, size) + 2, (axis, pos)

    # the area distribution matches one monolithic SLIC call within 10%
    a_t, a_m = np.bincount(tiled.ravel())[1:], np.bincount(mono.ravel())[1:]
    assert abs(len(a_t) / len(a_m) - 1) < 0.10
    for q in (25, 50, 75, 90):
        assert abs(np.percentile(a_t, q) / np.percentile(a_m, q) - 1) < 0.10, q


@pytest.mark.slow
def test_ids_do_not_depend_on_worker_count_and_are_stable(tcga: np.ndarray, tmp_path: Path) -> None:
    image = tcga[1000:1768, 1000:2024]
    params = SlicParams(16, 10.0, tile=256)
    one = run(image, params, workers=1, tmp=tmp_path / "a")
    two = run(image, params, workers=2, tmp=tmp_path / "b")
    again = run(image, params, workers=1, tmp=tmp_path / "c")
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, again)
    # a different compactness gives a different segmentation (the test can fail)
    other = run(image, SlicParams(16, 40.0, tile=256), workers=1, tmp=tmp_path / "d")
    assert not np.array_equal(one, other)


def test_only_tissue_is_segmented(tcga: np.ndarray, tmp_path: Path) -> None:
    image = tcga[:512, :768]
    low = np.zeros((128, 192), bool)
    low[20:100, 30:150] = True
    low[60:70, :] = True
    mask = ScaledMask(low, 4.0)
    labels = run(image, SlicParams(16, 10.0, tile=256), workers=1, tmp=tmp_path, mask=mask)
    tissue = mask(0, 0, 512, 768)
    assert (labels[~tissue] == 0).all()
    assert (labels[tissue] > 0).all()
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        assert connected(labels[box] == i, connectivity=1).max() == 1


def test_table_matches_regionprops(tcga: np.ndarray, tmp_path: Path) -> None:
    image = tcga[:600, :900]
    labels = run(image, SlicParams(24, 10.0, tile=256), workers=1, tmp=tmp_path)
    labels[:50] = 0  # some background; ids wholly inside it vanish, so renumber densely
    present = np.unique(labels[labels > 0])
    dense = np.zeros(labels.max() + 1, np.uint32)
    dense[present] = np.arange(1, len(present) + 1)
    labels = dense[labels]
    builder = TableBuilder(int(labels.max()), level=1)
    for y in range(0, labels.shape[0], 256):
        for x in range(0, labels.shape[1], 256):
            builder.add(labels[y : y + 256, x : x + 256], y, x)
    rows = builder.table().to_pylist()
    assert len(rows) == labels.max()
    for prop in regionprops(labels):
        row = rows[prop.label - 1]
        assert row["id"] == prop.label and row["level"] == 1
        assert (row["y0"], row["x0"], row["y1"], row["x1"]) == tuple(2 * v for v in prop.bbox)
        assert row["area"] == 4 * prop.area
        assert row["cy"] == pytest.approx(2 * (prop.centroid[0] + 0.5))
        assert row["cx"] == pytest.approx(2 * (prop.centroid[1] + 0.5))


def test_grid_phases_never_neighbour_and_halo_must_fit() -> None:
    grid = Grid(2000, 3000, 512, 64)
    tiles = grid.tiles()
    for t in tiles:
        for n in grid.neighbours(t):
            assert tiles[n].phase != t.phase
        assert set(grid.depends_on(t)) == {n for n in grid.neighbours(t) if tiles[n].phase < t.phase}
    with pytest.raises(ValueError, match="four times the halo"):
        Grid(2000, 3000, 200, 64)
    with pytest.raises(ValueError, match="zero size"):
        Grid(0, 3000, 512, 64)


def test_grid_overlapping_is_every_tile_whose_window_meets_the_box() -> None:
    grid = Grid(5000, 7000, 512, 64)
    tiles = grid.tiles()

    def meets(w: tuple[int, int, int, int], box: tuple[int, int, int, int]) -> bool:
        return not (w[2] <= box[0] or w[0] >= box[2] or w[3] <= box[1] or w[1] >= box[3])

    for box in [(0, 0, 2048, 2048), (2048, 4096, 4096, 6144), (4096, 6144, 5000, 7000), (511, 511, 513, 513)]:
        near = grid.overlapping(*box)
        assert near == sorted(near)
        assert {t.index for t in tiles if meets(t.window, box)} <= set(near)
        # and no more than the one ring of tiles the reach of a halo can add
        assert len(near) <= (-(-(box[2] - box[0]) // 512) + 2) * (-(-(box[3] - box[1]) // 512) + 2)


def test_params_refuse_a_tile_too_small_for_the_halo() -> None:
    with pytest.raises(ValueError, match="too small for a halo"):
        SlicParams(64, 10.0, tile=256)
    with pytest.raises(ValueError, match="compactness"):
        SlicParams(16, 0.0)
    assert SlicParams(16).tile_px >= 4 * SlicParams(16).halo_px
