"""The setup panel's expected superpixel count against what the segment job makes, on real
slides: the job's own tile step on windows of the tissue at the job's resolution, scaled by
tissue area (histolabel/segmentation/estimate.py). Segmenting a 4x coarser copy instead read
~40% high on CMU-1 (1,140 shown vs 775 made at 32 px; 652 vs 471 at 40 px)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from histolabel.segmentation import estimate, sizing
from histolabel.segmentation.output import choose_level
from histolabel.segmentation.tiled import ArrayWindow, ScaledMask, SlicParams, segment
from histolabel.slides.ingest import ingest, read_tissue

TOLERANCE = 0.15


def _ingested(source: Path, out: Path) -> zarr.Group:
    group = zarr.open_group(zarr.storage.LocalStore(out), mode="w", zarr_format=3)
    with open(source, "rb") as fh:
        ingest(fh, group, source.stem)
    return group


def _job_and_estimate(group: zarr.Group, size: float) -> tuple[int, int, int]:
    """(made, expected, px): the segment job's steps (level, size rule, tissue mask, tiled SLIC)
    and the estimate, on the same pyramid."""
    attrs = dict(group.attrs)
    level = choose_level(attrs, len(attrs["ome"]["multiscales"][0]["datasets"]), 20)  # type: ignore[index, arg-type, call-overload]
    rgb = np.moveaxis(np.asarray(group[str(level.index)][:3]), 0, -1)  # type: ignore[index]
    h, w = rgb.shape[:2]
    px = sizing.superpixel_px(w, h, level.mpp, sizing.Size(size, 20))
    tissue, tissue_level = read_tissue(group)
    mask = ScaledMask(tissue, 2.0 ** (tissue_level - level.index))
    made = segment(ArrayWindow(rgb), (h, w), SlicParams(px, 10.0), mask).count
    expected = estimate.expected_count(
        (h, w), ArrayWindow(rgb), mask, tissue.sum() * mask.factor**2, px, 10.0
    )
    return made, expected, px


@pytest.mark.slow
# The demo's size (the 1,140 shown vs 775 made); 40 px is checked in the browser by the
# acceptance test, on the slide the pipeline segmented.
@pytest.mark.parametrize(("name", "size"), [("CMU-1-Small-Region.svs", 32)])
def test_expected_count_is_within_15_percent_of_what_segmenting_makes(
    shared_data: Path, tmp_path: Path, name: str, size: float
) -> None:
    group = _ingested(shared_data / "slides" / name, tmp_path / "image.ome.zarr")
    made, expected, px = _job_and_estimate(group, size)
    h, w = group["0"].shape[-2:]  # type: ignore[union-attr]
    assert h * w > estimate.BUDGET_PX  # the sampled path, not the whole image
    print(f"\n{name} at {px} px: expected {expected}, made {made} ({expected / made - 1:+.1%})")
    assert abs(expected - made) <= TOLERANCE * made, (expected, made)


def test_an_image_below_the_budget_is_segmented_whole_and_none_without_tissue() -> None:
    rng = np.random.default_rng(3)
    rgb = (rng.random((300, 400, 3)) * 255).astype(np.uint8)
    tissue = np.zeros((300, 400), bool)
    tissue[50:250, 60:340] = True
    mask = ScaledMask(tissue, 1.0)
    made = segment(ArrayWindow(rgb), (300, 400), SlicParams(20, 10.0), mask, workers=1).count
    expected = estimate.expected_count((300, 400), ArrayWindow(rgb), mask, float(tissue.sum()), 20, 10.0)
    assert abs(expected - made) <= 0.05 * made, (expected, made)
    none = ScaledMask(np.zeros((300, 400), bool), 1.0)
    assert estimate.expected_count((300, 400), ArrayWindow(rgb), none, 0.0, 20, 10.0) == 0


def test_windows_spread_over_the_tissue_within_the_budget() -> None:
    tissue = np.zeros((4000, 4000), bool)
    tissue[1000:3000, 500:3500] = True
    cores = estimate.windows((4000, 4000), ScaledMask(tissue, 1.0), 32, budget_px=1_000_000)
    side = (estimate.CORE_SUPERPIXELS + 2 * estimate.HALO_SUPERPIXELS) * 32
    assert len(cores) == 1_000_000 // side**2
    assert all(tissue[y0:y1, x0:x1].any() for y0, x0, y1, x1 in cores)
    rows = {y0 for y0, _, _, _ in cores}
    assert len(rows) > 3  # spread over the tissue, not bunched in its first rows
