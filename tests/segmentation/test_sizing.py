"""Superpixel size defaults: µm where the slide has a pixel size, at least MIN_SUPERPIXELS on a
small image, and the segment job applying the same rule as the setup dialog's count."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from histolabel.composition import service_from_env
from histolabel.events.catalogue import ProjectSettings
from histolabel.segmentation import sizing


def test_physical_size_where_the_slide_has_a_pixel_size() -> None:
    s = ProjectSettings()  # 64 px at 20x = 32 µm
    assert sizing.superpixel_um(s) == pytest.approx(32.0)
    # A 40x whole slide (0.25 µm/px) and the same tissue scanned at 20x (0.5 µm/px): same µm.
    assert sizing.superpixel_px(80_000, 60_000, 0.25, s) == 128
    assert sizing.superpixel_px(40_000, 30_000, 0.5, s) == 64
    assert sizing.expected_superpixel_count(80_000, 60_000, 0.25, s) == sizing.expected_superpixel_count(
        40_000, 30_000, 0.5, s
    )
    assert sizing.superpixel_px(80_000, 60_000, None, s) == 64  # no pixel size: px as set
    # A 72-dpi TIFF's "pixel size" (352.8 µm/px) is no microscope's: px as set.
    assert sizing.superpixel_px(80_000, 60_000, 25400 / 72, s) == 64


def test_a_small_detail_image_still_gets_enough_superpixels() -> None:
    s = ProjectSettings()
    for mpp in (None, 0.2271, 0.25):
        n = sizing.expected_superpixel_count(1000, 1000, mpp, s)
        assert sizing.MIN_SUPERPIXELS * 0.9 <= n <= sizing.MIN_SUPERPIXELS * 1.1
    # Never below the settings' 8 px floor, however small the image.
    assert sizing.superpixel_px(50, 40, None, s) == sizing.MIN_PX
    with pytest.raises(ValueError, match="image size"):
        sizing.superpixel_px(0, 10, None, s)
    with pytest.raises(ValueError, match="pixel size"):
        sizing.superpixel_px(10, 10, -1.0, s)


@pytest.mark.slow
def test_segment_job_sizes_by_the_project_on_an_image_without_pixel_size(cloud, shared_data: Path) -> None:
    """Started as the API's start-job route starts it (only --project and --slide)."""
    from gpu_jobs import ingest, segment
    from histolabel.adapters import artifacts
    from histolabel.adapters.s3 import filesystem
    from histolabel.commands import CreateProject, RegisterSlide
    from histolabel.events.catalogue import Actor

    svc, pid, owner = (
        service_from_env(cloud),
        f"p{uuid.uuid4().hex[:12]}",
        Actor(user="olivia", site="nyc"),
    )
    svc.execute(CreateProject(project_id=pid, name="sizes"), owner)
    source = f"{artifacts.project_prefix(pid)}/slides/m/source/m.tif"
    filesystem().put_file(str(shared_data / "labeled/monuseg/TCGA-2Z-A9J9-01A-01-TS1.tif"), source[5:])
    svc.execute(RegisterSlide(project_id=pid, slide_id="m", name="m", source_uri=source), owner)
    assert ingest.main(["--project", pid, "--slide", "m", "--source", source, "--progress", "off"]) == 0
    assert segment.main(["--project", pid, "--slide", "m", "--workers", "1", "--progress", "off"]) == 0
    seg = svc.project_state(pid).slides["m"].segmentation
    assert seg is not None
    s = svc.project_state(pid).settings
    # 64 px would give ~240 superpixels; the rule gives ~2,000, and the setup dialog's count is
    # what segmenting gives, up to tissue and SLIC's slack.
    expected = sizing.expected_superpixel_count(1000, 1000, None, s)
    assert sizing.superpixel_px(1000, 1000, None, s) < s.superpixel_size
    assert 0.6 * expected <= seg["count"] <= 1.2 * expected
