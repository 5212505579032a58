"""`histolabel import segmentation`: MoNuSeg nuclei as QuPath GeoJSON, and a label image from
the product's own SLIC, become the slide's superpixels through the import job."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely
import zarr
from shapely.geometry import Polygon

from histolabel.adapters import pyramids
from histolabel.adapters.s3 import zarr_store
from tests.imports.conftest import IMAGE, OWNER, SLIDE, cli, monuseg_polygons, qupath_geojson, write_json

pytestmark = pytest.mark.slow


def _state(project: str):  # type: ignore[no-untyped-def]
    from histolabel.service import HistoLabel

    return HistoLabel.from_env().project_state(project)


def test_qupath_geojson_nuclei_become_superpixels(project: str, shared_data: Path, tmp_path: Path) -> None:
    rings = monuseg_polygons(shared_data / "labeled" / "monuseg" / f"{IMAGE}.xml")
    classes = [("Tumor", [200, 0, 0]) if i % 3 else ("Lymphocyte", [0, 0, 200]) for i in range(len(rings))]
    doc = qupath_geojson(rings, classes)  # type: ignore[arg-type]
    path = write_json(tmp_path / "nuclei.geojson", doc)
    valid = [Polygon(r).is_valid for r in rings]
    if not all(valid):  # hand-drawn outlines: strict refuses the first invalid one by name
        assert cli("import", "segmentation", str(path), "--project", project, "--slide", SLIDE,
                   "--user", OWNER.user) == 1  # fmt: skip
        assert _state(project).slides[SLIDE].segmentation is None
    assert cli("import", "segmentation", str(path), "--project", project, "--slide", SLIDE, "--lenient",
               "--user", OWNER.user) == 0  # fmt: skip
    seg = _state(project).slides[SLIDE].segmentation
    assert seg is not None and seg["source"] == "import" and seg["format"] == "geojson"
    assert seg["objects_read"] == len(rings)
    assert seg["dropped"]["invalid_repaired"] == valid.count(False)
    count = seg["count"]
    assert count == len(rings) - seg["dropped"]["covered"] - seg["dropped"]["empty"]
    labels = np.asarray(zarr.open_group(zarr_store(seg["labels_uri"]), mode="r")["0"][0])
    assert labels.shape == (1000, 1000) and labels.max() == count
    assert len(np.unique(labels)) == count + 1  # dense ids, plus background
    table = pyramids.read_table(seg["table_uri"]).to_pydict()
    assert table["id"] == list(range(1, count + 1))
    by_ext = {e: i for i, e in zip(table["id"], table["external_id"], strict=True)}
    # every kept nucleus is drawn where its polygon is (later objects win overlaps)
    objects = pyramids.read_table(seg["objects_uri"]).to_pydict()
    assert objects["id"] == table["id"] and objects["external_id"] == table["external_id"]
    ious = []
    yy, xx = np.mgrid[0:1000, 0:1000]
    for k in range(0, count, 37):
        geom = shapely.from_wkb(objects["geometry"][k])
        x0, y0, x1, y1 = (int(v) for v in geom.bounds)
        sub = (slice(max(y0 - 1, 0), y1 + 2), slice(max(x0 - 1, 0), x1 + 2))
        inside = shapely.contains_xy(geom, xx[sub] + 0.5, yy[sub] + 0.5)
        drawn = labels[sub] == objects["id"][k]
        ious.append((inside & drawn).sum() / max((inside | drawn).sum(), 1))
    assert np.median(ious) > 0.9
    assert objects["category"][0] == "Lymphocyte" and objects["color"][0] == "#0000c8"
    assert by_ext[doc["features"][1]["id"]] >= 1
