"""`histolabel slides add` and the jobs' events: register, ingest, segment, all recorded."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from histolabel.composition import service_from_env
from histolabel.config import Settings


@pytest.fixture
def project(cloud: Settings, project_id: str) -> str:
    from histolabel.commands import CreateProject
    from histolabel.events.catalogue import Actor

    service_from_env().execute(
        CreateProject(project_id=project_id, name="slides"), Actor(user="owner1", site="a")
    )
    return project_id


def _args(path: Path, project: str, **extra: object) -> argparse.Namespace:
    from histolabel.cli.slides import add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args([str(path), "--project", project, "--user", "owner1", "--progress", "off"])
    for k, v in extra.items():
        setattr(args, k, v)
    return args


@pytest.mark.slow
def test_add_slide_registers_ingests_and_segments(project: str, shared_data: Path) -> None:
    from gpu_jobs import segment as segment_job
    from histolabel.cli.slides import add_slide

    path = shared_data / "slides" / "OS-1-detail.ome.tif"
    assert add_slide(_args(path, project)) == 0
    state = service_from_env().project_state(project)
    slide = state.slides["OS-1-detail"]
    assert slide.source_uri.endswith("/slides/OS-1-detail/source/OS-1-detail.ome.tif")
    ingest = slide.ingest
    assert ingest is not None and (ingest["width"], ingest["height"]) == (1101, 1101)
    assert ingest["mpp"] == pytest.approx(0.2271, abs=1e-4) and ingest["levels"] == 2
    assert ingest["pyramid_bytes"] > 0 and ingest["source_bytes"] == path.stat().st_size

    code = segment_job.main(
        [
            "--project",
            project,
            "--slide",
            "OS-1-detail",
            "--superpixel-size",
            "10",
            "--unit",
            "um",
            "--tile",
            "512",
            "--workers",
            "1",
            "--progress",
            "off",
        ]
    )
    assert code == 0
    seg = service_from_env().project_state(project).slides["OS-1-detail"].segmentation
    assert seg is not None and seg["count"] > 100 and seg["tile_size"] == 512
    assert seg["labels_uri"].endswith("image.ome.zarr/labels/superpixels")


def test_add_slide_refuses_bad_files_and_writes_nothing(
    project: str, tmp_path: Path, cloud: Settings, shared_data: Path
) -> None:
    from gpu_jobs.common import JobError
    from histolabel.cli.errors import CliError
    from histolabel.cli.slides import add_slide

    bad = tmp_path / "broken.svs"
    bad.write_bytes(b"II*\x00" + b"\x00" * 64)
    with pytest.raises(CliError, match=r"broken\.svs"):
        add_slide(_args(bad, project))
    with pytest.raises(CliError, match="no such file"):
        add_slide(_args(tmp_path / "missing.svs", project))
    # a header that parses over tiles that do not: refused at ingest, upload removed
    import tifffile

    full = tmp_path / "full.tif"
    pixels = tifffile.imread(shared_data / "slides" / "OS-1-detail.ome.tif")
    tifffile.imwrite(full, pixels, tile=(256, 256), compression="zlib", photometric="rgb")
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 3])
    with pytest.raises(JobError, match="cannot decode"):
        add_slide(_args(truncated, project))
    assert service_from_env().project_state(project).slides == {}
    from histolabel.adapters.aws import client

    listed = client("s3").list_objects_v2(Bucket=cloud.data_bucket, Prefix=f"projects/{project}/")
    assert listed.get("Contents", []) == []
