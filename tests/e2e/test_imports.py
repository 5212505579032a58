"""The Project panel's import from other tools, in Chromium against the local stack: MoNuSeg's
hand-drawn nuclei (shared data) written as QuPath GeoJSON are refused naming the first invalid
object, imported with repairs (counts shown match the job's), their classes imported as labels,
and the slide's label mask downloaded from the Export section and checked against the labels."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_labeling_flow import sign_in
from tests.imports.conftest import IMAGE, monuseg_polygons, qupath_geojson

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def ingested_slide(stack: Stack, project: str, owner: str) -> str:
    """A registered slide whose pyramid is where ingest puts it, with no superpixels yet."""
    from histolabel.adapters.s3 import filesystem

    out = stack.call("POST", f"/projects/{project}/slides", owner, {"name": "CMU-1", "filename": "CMU-1.svs"})
    slide_id = str(out["slide"]["slide_id"])
    prefix = f"{stack.settings.data_bucket}/projects/{project}/slides/{slide_id}"
    fs = filesystem(stack.settings)
    fs.put(str(stack.slide.root / "image.ome.zarr"), f"{prefix}/image.ome.zarr", recursive=True)
    fs.invalidate_cache()
    s = stack.slide
    ingested = {"slide_id": slide_id, "zarr_uri": f"s3://{prefix}/image.ome.zarr", "width": s.width,
                "height": s.height, "levels": s.levels, "mpp": 0.499}  # fmt: skip
    stack.svc.record_job_event(project, "SlideIngested", ingested, job="ingest")
    return slide_id


def run_import(page: Any, kind: str, path: Path, lenient: bool = False) -> str:
    page.select_option("#imp-kind", kind)
    page.set_input_files("#imp-file", str(path))
    if kind == "segmentation":
        page.set_checked("#imp-lenient", lenient)
    page.click("#imp-start")
    page.wait_for_selector("#imp-result[data-state=done], #imp-result[data-state=failed]", timeout=240_000)
    return str(page.inner_text("#imp-result"))


def test_import_panel_and_mask_download(stack: Stack, browser_context: Any, shared_data: Path,
                                        tmp_path: Path, artifacts: Path) -> None:  # fmt: skip
    import tifffile

    project = f"imp{uuid.uuid4().hex[:8]}"
    stack.call("POST", "/projects", "pat", {"project_id": project, "name": "Imports", "site": "chicago"})
    slide = ingested_slide(stack, project, "pat")
    rings = monuseg_polygons(shared_data / "labeled" / "monuseg" / f"{IMAGE}.xml")
    classes: list[Any] = [("Tumor", [200, 0, 0]) if i % 3 else ("Lymphocyte", [0, 0, 200])
                          for i in range(len(rings))]  # fmt: skip
    nuclei = tmp_path / "MoNuSeg nuclei.geojson"  # a space: the panel makes the name the API takes
    nuclei.write_text(json.dumps(qupath_geojson(rings, classes)))

    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(page, stack, "pat", project)
    page.click("[data-mode=manage]")
    page.wait_for_selector(f"#imp-slide option[value='{slide}']", state="attached", timeout=30_000)

    # strict: the first invalid outline refuses the file, in words, and nothing is written
    refused = run_import(page, "segmentation", nuclei)
    assert refused.startswith("Import refused:") and "object " in refused and "not a valid polygon" in refused
    assert "s3://" not in refused and "Traceback" not in refused
    assert stack.call("GET", f"/projects/{project}/slides/{slide}", "pat")["segmentation"] is None

    # lenient: imported; the panel's counts are the job's
    done = run_import(page, "segmentation", nuclei, lenient=True)
    seg = stack.call("GET", f"/projects/{project}/slides/{slide}", "pat")["segmentation"]
    assert seg["source"] == "import" and seg["objects_read"] == len(rings)
    assert f"{seg['count']} objects imported of {len(rings)} read" in done
    repaired = seg["dropped"]["invalid_repaired"]
    assert repaired > 0 and f"{repaired} invalid, repaired" in done
    page.screenshot(path=str(artifacts / "import-panel.png"))

    # labels: the objects' classes, categories created by name
    labeled = run_import(page, "labels", nuclei)
    labels = stack.call("GET", f"/projects/{project}/slides/{slide}/labels", "pat")
    total = sum(labels["counts"].values())
    assert total > 0 and labeled.startswith(f"{total} superpixels labeled"), labeled
    names = {c["name"] for c in stack.call("GET", f"/projects/{project}", "pat")["categories"]}
    assert {"Tumor", "Lymphocyte"} <= names

    # the label mask from the Export section: every labeled superpixel painted, nothing else
    page.wait_for_selector(f"#mg-mask-slide option[value='{slide}']", state="attached", timeout=30_000)
    with page.expect_download(timeout=120_000) as dl:
        page.click("#mg-mask")
    path = tmp_path / "mask.tif"
    dl.value.save_as(str(path))
    mask = tifffile.imread(path)
    from histolabel.slides.pyramid import level_shapes

    assert mask.shape == level_shapes(stack.slide.height, stack.slide.width)[seg["level"]]
    legend = json.loads(tifffile.TiffFile(path).pages[0].description)["histolabel_mask"]
    assert {v["name"] for v in legend} >= {"Tumor", "Lymphocyte"}
    painted = set(np.unique(mask).tolist()) - {0}
    assert painted == {v["value"] for v in legend if v["name"] in ("Tumor", "Lymphocyte")}
    assert not errors, errors
