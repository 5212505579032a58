"""The embed job on a slide that went through the real ingest and segment jobs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from histolabel.commands import AddCategory, CreateProject, RegisterSlide
from tests.learning.helpers import OWNER

pytestmark = pytest.mark.slow


def test_embed_after_ingest_and_segment(cloud, svc, project_id, shared_data: Path) -> None:
    from gpu_jobs import embed, ingest, segment
    from histolabel.adapters import artifacts
    from histolabel.adapters.s3 import filesystem

    svc.execute(CreateProject(project_id=project_id, name="real"), OWNER)
    for name in ("tumor", "stroma"):
        svc.execute(AddCategory(project_id=project_id, name=name), OWNER)
    source = f"{artifacts.project_prefix(project_id)}/slides/os1/source/OS-1-detail.ome.tif"
    filesystem().put_file(str(shared_data / "slides/OS-1-detail.ome.tif"), source[5:])
    svc.execute(RegisterSlide(project_id=project_id, slide_id="os1", name="OS-1", source_uri=source), OWNER)
    assert (
        ingest.main(["--project", project_id, "--slide", "os1", "--source", source, "--progress", "off"]) == 0
    )
    args = ["--project", project_id, "--slide", "os1", "--superpixel-size", "48", "--workers", "1"]
    assert segment.main([*args, "--progress", "off"]) == 0
    seg = svc.project_state(project_id).slides["os1"].segmentation
    for kind in ("handcrafted", "patch"):
        assert embed.main(["--project", project_id, "--slide", "os1", "--kind", kind, "--tile", "512"]) == 0
    feats = svc.project_state(project_id).slides["os1"].features
    hc = artifacts.read_features(feats["handcrafted"]["uri"])
    patches = artifacts.read_features(feats["patch"]["uri"])
    assert hc.shape[0] == patches.shape[0] == seg["count"] > 50
    assert np.isfinite(hc).all()
    # Every superpixel got a patch with some of its own pixels (the rest blanked).
    assert (patches.reshape(seg["count"], -1).max(axis=1) > 0).all()
