"""The numba SLIC kernel on real H&E: a valid segmentation, and skimage's quality."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi
from skimage.color import rgb2lab
from skimage.measure import label as connected

from histolabel.segmentation import kernel
from histolabel.segmentation.kernel import slic
from histolabel.segmentation.quality import boundary_recall, compactness, nucleus_ids, undersegmentation
from histolabel.segmentation.tiled import SlicParams

MONUSEG = "TCGA-2Z-A9J9-01A-01-TS1"


@pytest.fixture(scope="module")
def monuseg(shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    folder = shared_data / "labeled" / "monuseg"
    rgb = np.ascontiguousarray(tifffile.imread(folder / f"{MONUSEG}.tif")[..., :3])
    return rgb, nucleus_ids(folder / f"{MONUSEG}.xml", rgb.shape[:2])


def test_labels_are_dense_connected_cover_the_image_and_repeat(monuseg) -> None:
    rgb = monuseg[0][:300, :400]
    asked = 300 * 400 // 16**2
    labels = slic(rgb, asked, 10.0)
    assert labels.shape == rgb.shape[:2] and labels.dtype == np.int32
    # every pixel labelled, ids 1..n in raster order of their first pixel
    np.testing.assert_array_equal(np.unique(labels), np.arange(1, labels.max() + 1))
    _, first = np.unique(labels.ravel(), return_index=True)
    assert (np.diff(first) > 0).all()
    # each superpixel is one 4-connected piece
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        assert connected(labels[box] == i, connectivity=1).max() == 1, f"superpixel {i} is split"
    # about as many as asked (skimage gives ~0.75 of the ask here, after merging fragments)
    assert 0.6 * asked <= labels.max() <= 1.1 * asked
    np.testing.assert_array_equal(labels, slic(rgb, asked, 10.0))
    np.testing.assert_array_equal(slic(rgb, asked, 10.0, start_label=0), labels - 1)
    # compactness changes the result (the comparison above can fail)
    assert not np.array_equal(labels, slic(rgb, asked, 40.0))


def test_count_follows_the_ask(monuseg) -> None:
    rgb = monuseg[0][:400, :400]
    counts = [int(slic(rgb, 400 * 400 // s**2, 10.0).max()) for s in (32, 16)]
    assert counts[1] > 3 * counts[0]


def test_lab_matches_skimage() -> None:
    levels = np.arange(0, 256, 5, dtype=np.uint8)
    rgb = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(1, -1, 3)
    ours = kernel._lab(rgb, kernel._LINEAR, kernel._RGB_TO_XYZ, kernel._WHITE)
    assert np.abs(ours.transpose(1, 2, 0) - rgb2lab(rgb)).max() < 0.01


def test_quality_matches_skimage_on_a_monuseg_crop(monuseg) -> None:
    """Within 5% of skimage on each measure, each in its own direction (the done-when rule of
    bench/slic_quality.py), at the product's superpixel size on these images (22 px)."""
    rgb, truth = monuseg[0][:500, :500], monuseg[1][:500, :500]
    asked = 500 * 500 // 22**2
    scores = {}
    for name in kernel.KERNELS:
        labels = slic(rgb, asked, 10.0, kernel=name)
        recalled, total = boundary_recall(labels, truth)
        scores[name] = (recalled / total, undersegmentation(labels, truth), compactness(labels))
    (br, ue, co), (br0, ue0, co0) = scores["numba"], scores["skimage"]
    assert br >= 0.95 * br0, (br, br0)
    assert ue <= 1.05 * ue0, (ue, ue0)
    assert co >= 0.95 * co0, (co, co0)


def test_measures_tell_good_from_bad(monuseg) -> None:
    """The quality measures can fail: square blocks that ignore the image recall fewer nucleus
    boundaries and cut more nuclei than SLIC of the same size."""
    rgb, truth = monuseg[0][:500, :500], monuseg[1][:500, :500]
    labels = slic(rgb, 500 * 500 // 22**2, 10.0)
    ys, xs = np.mgrid[:500, :500]
    blocks = (ys // 22) * 100 + xs // 22 + 1
    assert boundary_recall(labels, truth)[0] > 1.2 * boundary_recall(blocks, truth)[0]
    assert undersegmentation(labels, truth) < undersegmentation(blocks, truth)
    # squares are the most compact shape there is on a pixel grid
    assert compactness(blocks) > compactness(labels)


def test_bad_input_is_refused_by_name() -> None:
    rgb = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="unknown SLIC kernel 'fast'"):
        slic(rgb, 4, kernel="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="uint8"):
        slic(rgb.astype(np.float64), 4)
    with pytest.raises(ValueError, match="RGB"):
        slic(rgb[..., 0], 4)
    with pytest.raises(ValueError, match="unknown SLIC kernel"):
        SlicParams(16, kernel="fast")  # type: ignore[arg-type]


def test_segment_job_refuses_an_unknown_kernel() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gpu_jobs.segment", "--project", "p", "--slide", "s", "--kernel", "fast"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "--kernel" in out.stderr and "Traceback" not in out.stderr
