"""QuPath -> HistoLabel -> QuPath: MoNuSeg nuclei imported as superpixels with their classes
as labels (idempotent), features from the embed job re-imported as a table, a model trained
on them, the queue and review served, and the GeoJSON export giving every object back with
its geometry, id and label."""

from __future__ import annotations

import io
import json
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
import zarr
from shapely.geometry import Polygon, shape

from histolabel.adapters import artifacts, pyramids
from histolabel.adapters.s3 import zarr_store
from histolabel.composition import service_from_env
from histolabel.events.streams import slide_events
from tests.imports.conftest import IMAGE, OWNER, SLIDE, cli, monuseg_polygons, qupath_geojson, write_json

pytestmark = pytest.mark.slow


def _svc() -> Any:

    return service_from_env()


@pytest.fixture
def http(cloud: Any) -> Any:
    """The API in-process (the Chalice test client) over the local cloud's service."""
    from chalicelib.context import SERVICES

    from tests.api.conftest import Api, Signer

    api = Api(Signer("import-test"))
    SERVICES.service = _svc()
    yield api
    SERVICES.service = SERVICES.submitter = SERVICES.pool = SERVICES.jwks = SERVICES.directory = None


def test_qupath_round_trip(project: str, shared_data: Path, tmp_path: Path, http: Any) -> None:
    rings = monuseg_polygons(shared_data / "labeled" / "monuseg" / f"{IMAGE}.xml")
    classes: list[Any] = [
        None if i % 5 == 0 else ("Tumor", [200, 0, 0]) if i % 3 else ("Lymphocyte", [0, 0, 200])
        for i in range(len(rings))
    ]  # a fifth left unclassified, for the queue
    doc = qupath_geojson(rings, classes)
    path = write_json(tmp_path / "nuclei.geojson", doc)
    base = ("--project", project, "--slide", SLIDE, "--user", OWNER.user, "--site", OWNER.site)
    valid = [Polygon(r).is_valid for r in rings]
    assert not all(valid)  # hand-drawn outlines: strict refuses the first invalid one, writes nothing
    assert cli("import", "segmentation", str(path), *base) == 1
    assert _svc().project_state(project).slides[SLIDE].segmentation is None
    assert cli("import", "segmentation", str(path), *base, "--lenient") == 0
    assert cli("import", "labels", str(path), *base) == 0
    svc = _svc()
    state = svc.project_state(project)
    cats = {c.name: c for c in state.live_categories()}
    assert cats["Tumor"].color == "#c80000" and cats["Lymphocyte"].color == "#0000c8"
    seg = state.slides[SLIDE].segmentation
    table = pyramids.read_table(seg["table_uri"]).to_pydict()
    sp_of = dict(zip(table["external_id"], table["id"], strict=True))
    assert seg["source"] == "import" and seg["objects_read"] == len(rings)
    assert seg["count"] == len(rings) - seg["dropped"]["covered"] - seg["dropped"]["empty"]
    assert table["id"] == list(range(1, seg["count"] + 1))
    # every kept nucleus is drawn where its polygon is (later objects win overlaps)
    drawn = np.asarray(zarr.open_group(zarr_store(seg["labels_uri"]), mode="r")["0"][0])
    assert drawn.shape == (1000, 1000) and len(np.unique(drawn)) == seg["count"] + 1  # dense, plus 0
    objects = pyramids.read_table(seg["objects_uri"]).to_pydict()
    assert objects["id"] == table["id"] and objects["external_id"] == table["external_id"]
    yy, xx = np.mgrid[0:1000, 0:1000]
    ious = []
    for k in range(0, seg["count"], 23):
        geom = shapely.from_wkb(objects["geometry"][k])
        x0, y0, x1, y1 = (int(v) for v in geom.bounds)
        sub = (slice(max(y0 - 1, 0), y1 + 2), slice(max(x0 - 1, 0), x1 + 2))
        inside = shapely.contains_xy(geom, xx[sub] + 0.5, yy[sub] + 0.5)
        mine = drawn[sub] == objects["id"][k]
        ious.append((inside & mine).sum() / max((inside | mine).sum(), 1))
    assert np.median(ious) > 0.9
    labels = svc.slide_labels_fresh(project, SLIDE).current()
    classified = {f["id"] for f, c in zip(doc["features"], classes, strict=True) if c} & set(sp_of)
    assert len(labels) == len(classified)  # every kept object with a class, and no other
    events = slide_events(svc.events, project, SLIDE)
    assert {e.actor_user for e in events} == {OWNER.user}
    assert {json.loads(e.data)["source"] for e in events} == {"import"}
    for f, c in zip(doc["features"], classes, strict=True):
        if f["id"] in sp_of:
            assert labels.get(sp_of[f["id"]]) == (cats[c[0]].id if c else None)
    # label masks: every labeled superpixel painted with its category's value, 0 elsewhere
    import tifffile

    superpixels = drawn
    value = {c.id: k for k, c in enumerate(state.live_categories(), start=1)}
    lut = np.zeros(seg["count"] + 1, np.uint8)
    for sp, cat in labels.items():
        lut[sp] = value[cat]
    for out in (tmp_path / "mask.tif", tmp_path / "mask.zarr"):
        assert (
            cli("export", "masks", str(out), "--project", project, "--slide", SLIDE, "--user", OWNER.user)
            == 0
        )
        if out.suffix == ".tif":
            mask = tifffile.imread(out)
            legend = json.loads(tifffile.TiffFile(out).pages[0].description)["histolabel_mask"]
            assert {(v["value"], v["name"]) for v in legend} == {(value[c.id], c.name) for c in cats.values()}
        else:
            group = zarr.open_group(zarr.storage.LocalStore(out), mode="r")
            assert group.attrs["ome"]["image-label"]["properties"][0]["label-value"] == 1
            mask = np.asarray(group["0"][0])
        np.testing.assert_array_equal(mask, lut[superpixels])
    # the same TIFF mask through the API (the browser's button): a 302 to a presigned copy
    route = f"/projects/{project}/slides/{SLIDE}/mask"
    answer = http.request("GET", route, OWNER.user)
    assert answer.status_code == 302, answer.body
    with urllib.request.urlopen(answer.headers["Location"]) as fh:
        got = fh.read()
    np.testing.assert_array_equal(tifffile.imread(io.BytesIO(got)), lut[superpixels])
    wrong = http.request("GET", route + "?format=zarr", OWNER.user)
    assert wrong.status_code == 422 and "format" in wrong.body.decode()
    # the same file again writes nothing
    assert cli("import", "labels", str(path), *base) == 0
    assert len(slide_events(svc.events, project, SLIDE)) == len(events)

    # features: the embed job's own output, exported as a table by external id, imported back
    from gpu_jobs import embed

    assert embed.main(["--project", project, "--slide", SLIDE, "--kind", "handcrafted"]) == 0
    state = svc.project_state(project)
    values = artifacts.read_features(state.slides[SLIDE].features["handcrafted"]["uri"])
    order = np.random.default_rng(0).permutation(len(values))  # any row order
    cols = {"external_id": pa.array([table["external_id"][i] for i in order])}
    cols.update({f"f{j}": pa.array(values[order, j]) for j in range(values.shape[1])})
    pq.write_table(pa.table(cols), tmp_path / "features.parquet")
    assert cli("import", "features", str(tmp_path / "features.parquet"), *base) == 0
    state = svc.project_state(project)
    imported = artifacts.read_features(state.slides[SLIDE].features["imported"]["uri"])
    np.testing.assert_array_equal(imported, values.astype(np.float32))

    # train on the imported features, then queue, review and export through the API
    from gpu_jobs import train
    from histolabel.commands import ChangeSettings

    settings = state.settings.model_copy(update={"feature_kind": "imported"})
    svc.execute(ChangeSettings(project_id=project, settings=settings), OWNER)
    request = svc.request_training(project, OWNER)
    runs = svc.project_state(project).training.items()
    request_id = next(r for r, run in runs if run.status == "requested")
    assert request.appended == 1
    assert train.main(["--project", project, "--request", request_id, "--max-epochs", "60"]) == 0
    state = svc.project_state(project)
    assert state.current_model["model_version"] == 1 and state.predictions["model_version"] == 1
    queue = http.request("GET", f"/projects/{project}/queue?n=5", OWNER.user)
    assert queue.status_code == 200, queue.body
    unlabeled = {sp_of[e] for e in set(sp_of) - classified}
    items = json.loads(queue.body)["items"]
    assert items and {i["id"] for i in items} <= unlabeled
    review = http.request("GET", f"/projects/{project}/review?slide={SLIDE}", OWNER.user)
    assert review.status_code == 200 and json.loads(review.body)["total"] == len(classified), review.body
    first = sp_of[next(iter(sorted(classified)))]
    approved = http.request("POST", f"/projects/{project}/slides/{SLIDE}/review", OWNER.user,
                            {"ids": [first], "action": "approve"})  # fmt: skip
    assert approved.status_code in (200, 201), approved.body
    out = http.request("GET", f"/projects/{project}/export?format=geojson&slide={SLIDE}", OWNER.user)
    if out.status_code == 303:
        from urllib.request import urlopen

        body = urlopen(out.headers["Location"]).read()
    else:
        assert out.status_code == 200, out.body
        body = out.body
    exported = {f["id"]: f for f in json.loads(body)["features"]}
    originals = {f["id"]: (f, c) for f, c in zip(doc["features"], classes, strict=True)}
    assert set(exported) == classified  # every labeled object comes back under its own id
    for ext, feature in exported.items():
        source, c = originals[ext]
        assert feature["properties"]["classification"]["name"] == c[0]
        before = Polygon(source["geometry"]["coordinates"][0])
        if before.is_valid:
            after = shape(feature["geometry"])
            assert after.intersection(before).area / after.union(before).area > 0.99, ext
