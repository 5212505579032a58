"""Hand-crafted vectors and masked patches on synthetic images and a real MoNuSeg crop."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from skimage.segmentation import slic

from histolabel.learning import features as F


def test_vector_names_match_dimension() -> None:
    assert len(set(F.HANDCRAFTED_NAMES)) == F.HANDCRAFTED_DIM


def test_shape_and_stain_features_on_synthetic_regions() -> None:
    rgb = np.full((80, 120, 3), (235, 180, 210), np.uint8)  # eosin-pink background
    labels = np.ones((80, 120), np.uint32)
    labels[10:30, 10:70] = 2  # a 20x60 rectangle
    yy, xx = np.mgrid[:80, :120]
    disk = (yy - 55) ** 2 + (xx - 95) ** 2 <= 15**2
    labels[disk] = 3
    rgb[disk] = (70, 40, 140)  # haematoxylin-purple disk
    v = F.handcrafted(rgb, labels)
    col = {name: i for i, name in enumerate(F.HANDCRAFTED_NAMES)}
    assert v.shape == (3, F.HANDCRAFTED_DIM)
    assert v[1, col["extent"]] == pytest.approx(1.0)
    assert v[1, col["aspect"]] == pytest.approx(20 / 60)
    assert v[1, col["log_area"]] == pytest.approx(np.log1p(1200))
    assert v[2, col["eccentricity"]] < 0.2 < v[1, col["eccentricity"]]
    assert v[2, col["H_mean"]] > v[1, col["H_mean"]]
    assert v[2, col["hdark_mean"]] > 0.9 > 0.1 > v[1, col["hdark_mean"]]
    assert v[1, col["H_std"]] == pytest.approx(0.0, abs=1e-4)


def test_tiled_accumulation_equals_whole_image(shared_data: Path) -> None:
    img = tifffile.imread(shared_data / "labeled/monuseg/TCGA-2Z-A9J9-01A-01-TS1.tif")[:300, :260, :3]
    labels = slic(img, n_segments=150, compactness=10, start_label=1)
    n = int(labels.max())
    th = F.otsu(F.pixel_channels(img)[0])
    whole = F.HandcraftedAccumulator(n)
    whole.add(F.pixel_channels(img, th), labels)
    tiled = F.HandcraftedAccumulator(n)
    for t in F.tiles(300, 260, 96):
        tiled.add(F.pixel_channels(img[t.read], th), labels[t.read], origin=t.origin, core=t.core)
    np.testing.assert_allclose(tiled.result(), whole.result(), rtol=1e-4, atol=1e-4)


def test_masked_patches_blank_other_superpixels() -> None:
    rgb = np.zeros((60, 60, 3), np.uint8)
    rgb[:, :30] = (200, 0, 0)
    rgb[:, 30:] = (0, 0, 200)
    labels = np.ones((60, 60), np.uint32)
    labels[:, 30:] = 2
    labels[20:40, 20:40] = 3  # straddles both colours
    p = F.masked_patches(rgb, labels, size=16)
    assert p.shape == (3, 3, 16, 16) and p.dtype == np.uint8
    # Superpixel 3's square is its own bbox: half red, half blue, nothing blanked.
    assert p[2, 0, :, :6].mean() > 150 and p[2, 2, :, -6:].mean() > 150
    # Superpixel 1 (left half minus the square): its 60x60 square spans x -15..45, so the
    # patch holds 4 columns outside the image, 4 red ones, the blanked hole, then the blanked right half.
    assert p[0, :, :, :4].max() == 0
    assert p[0, 0, :, 4:8].mean() > 150
    assert p[0][:, 6:10, 10:12].max() == 0
    assert p[0][:, :, 13:].max() == 0


def test_crop_patches_pad_outside_image_and_bad_input() -> None:
    rgb = np.full((10, 10, 3), 255, np.uint8)
    p = F.crop_patches(rgb, np.array([[-10, -10, 10, 10]]), 8)
    assert p[0, :, :4, :4].max() == 0 and p[0, :, 5:, 5:].min() == 255
    with pytest.raises(ValueError, match="RGB"):
        F.pixel_channels(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="differ in size"):
        F.handcrafted(rgb, np.ones((5, 5), np.uint32))


def test_pooled_slide_embedding_equals_one_process(shared_data: Path) -> None:
    from histolabel.learning.embedding import handcrafted_slide
    from tests.learning.helpers import ArrayWindows

    img = tifffile.imread(shared_data / "labeled/monuseg/TCGA-2Z-A9J9-01A-01-TS1.tif")[:600, :520, :3]
    labels = slic(img, n_segments=300, compactness=10, start_label=1).astype(np.uint32)
    labels[:200, :200] = 0  # outside tissue: a tile with no superpixel is skipped
    n = int(labels.max())
    win = ArrayWindows(img, labels)
    seen: list[int] = []
    one = handcrafted_slide(win.rgb, win.labels, labels.shape, n, h_threshold=0.05, tile=192)
    pooled = handcrafted_slide(
        win.rgb, win.labels, labels.shape, n, h_threshold=0.05, tile=192, workers=2, progress=seen.append
    )
    np.testing.assert_array_equal(one, pooled)  # bit for bit: tiles merge in order
    assert sum(seen) == labels.size
    # The same tiles' statistics, ids restricted to each tile, give the whole image's vectors.
    acc = F.HandcraftedAccumulator(n)
    acc.add(F.pixel_channels(img, 0.05), labels)
    whole = acc.result()
    present = np.bincount(labels.ravel(), minlength=n + 1)[1:] > 0
    np.testing.assert_allclose(pooled[present], whole[present], rtol=1e-4, atol=1e-4)
    # Padded to 10^6 ids (a consortium slide's count), the rows present are unchanged.
    big = handcrafted_slide(win.rgb, win.labels, labels.shape, 10**6, h_threshold=0.05, tile=192)
    np.testing.assert_array_equal(big[:n], one)
    assert not big[n:].any()


def test_available_cpus_follows_the_jobs_declared_vcpus(monkeypatch: pytest.MonkeyPatch) -> None:
    from histolabel import cpus

    monkeypatch.setenv(cpus.JOB_VCPUS_ENV, "3")
    assert cpus.available_cpus() == 3
    monkeypatch.delenv(cpus.JOB_VCPUS_ENV)
    assert 1 <= cpus.available_cpus() <= (os.cpu_count() or 1)


def _bincount_tile_stats(channels, labels, origin, core):
    """The accumulation as it was, one np.bincount per sum: the compiled pass must equal it bit
    for bit (embedding vectors must not move with the implementation)."""
    from scipy import ndimage as ndi

    channels, labels = channels[:, core[0], core[1]], labels[core[0], core[1]]
    lab = labels.ravel().astype(np.int64)
    low = int(lab.min())
    seen = np.bincount(lab - low)
    ids = np.flatnonzero(seen) + low
    table = np.zeros(int(lab.max()) - low + 1, np.int64)
    table[ids - low] = np.arange(len(ids))
    local = table[lab - low]
    m, nc, flat = len(ids), len(F._CHANNELS), channels.reshape(channels.shape[0], -1)
    rows = [flat[i].astype(np.float64) for i in range(flat.shape[0])]
    sums = np.stack([np.bincount(local, r, minlength=m) for r in rows])
    sq = np.stack([np.bincount(local, r * r, minlength=m) for r in rows[:nc]])
    h, w = labels.shape
    y = np.repeat(np.arange(origin[0], origin[0] + h, dtype=np.float64), w)
    x = np.tile(np.arange(origin[1], origin[1] + w, dtype=np.float64), h)
    moments = np.stack([np.bincount(local, v, minlength=m) for v in (y, x, y * y, x * x, y * x)])
    boxes = ndi.find_objects(local.reshape(h, w) + 1, max_label=m)
    lo = np.array([[origin[0] + b[0].start for b in boxes], [origin[1] + b[1].start for b in boxes]])
    hi = np.array([[origin[0] + b[0].stop - 1 for b in boxes], [origin[1] + b[1].stop - 1 for b in boxes]])
    return ids, sums, sq, moments, lo, hi


def test_compiled_tile_statistics_equal_one_bincount_per_sum_bit_for_bit(shared_data: Path) -> None:
    img = tifffile.imread(shared_data / "labeled/monuseg/TCGA-2Z-A9J9-01A-01-TS1.tif")[:400, :360, :3]
    labels = slic(img, n_segments=200, compactness=10, start_label=1)
    channels = F.pixel_channels(img)
    for t in F.tiles(400, 360, 128):
        got = F.tile_stats(channels[:, t.read[0], t.read[1]], labels[t.read], t.origin, t.core)
        want = _bincount_tile_stats(channels[:, t.read[0], t.read[1]], labels[t.read], t.origin, t.core)
        assert got is not None
        for a, b in zip((got.ids, got.sums, got.sq, got.moments, got.lo, got.hi), want, strict=True):
            np.testing.assert_array_equal(a, b)


def test_pixel_channels_are_as_before(shared_data: Path) -> None:
    """The channels written into one array equal the former stack of separately filtered
    planes, bit for bit (recomputed here the former way)."""
    from scipy import ndimage as ndi
    from skimage.color import rgb2hed, rgb2lab

    rgb = tifffile.imread(shared_data / "labeled/monuseg/TCGA-2Z-A9J9-01A-01-TS1.tif")[:300, :200, :3]
    img = rgb.astype(np.float32) / 255.0
    hed, lab = rgb2hed(img).astype(np.float32), rgb2lab(img).astype(np.float32)
    logs = [-ndi.gaussian_laplace(hed[..., 0], s) * s * s for s in (1.0, 2.0, 4.0)]
    ctx = [ndi.gaussian_filter(hed[..., i], 6.0) for i in (0, 1)]
    hdark = (hed[..., 0] > F.otsu(hed[..., 0])).astype(np.float32)
    grad = ndi.gaussian_gradient_magnitude(lab[..., 0], 1.0)
    before = np.stack([*hed.transpose(2, 0, 1), *lab.transpose(2, 0, 1), grad, *logs, *ctx, hdark])
    np.testing.assert_array_equal(F.pixel_channels(rgb), before)
