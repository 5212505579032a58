"""Export of a slide segmented by the real jobs (ingest + segment, the label pyramid as the
segment job writes it: (1, y, x)), through the API on the local cloud; read back with third-party
readers: shapely for GeoJSON (what QuPath needs: polygons with a classification {name, colour}),
csv and pyarrow for the tables, with category names rather than ids."""

from __future__ import annotations

import csv
import io
import uuid

import pyarrow.parquet as pq
import pytest
import shapely

from gpu_jobs import ingest as ingest_job
from gpu_jobs import segment as segment_job
from histolabel.adapters.s3 import filesystem
from tests.api.test_cloud import cloud_api, pool  # noqa: F401 - fixtures


@pytest.mark.slow
def test_geojson_and_tables_of_a_segmented_slide(cloud_api, cloud, shared_data):  # noqa: F811
    pid = f"p{uuid.uuid4().hex[:10]}"
    assert (
        cloud_api("POST", "/projects", "olivia", {"project_id": pid, "name": "x", "site": "nyc"}).status_code
        == 201
    )
    tumor = cloud_api("POST", f"/projects/{pid}/categories", "olivia", {"name": "tumor", "color": "#ff0000"})
    stroma = cloud_api(
        "POST", f"/projects/{pid}/categories", "olivia", {"name": "stroma", "color": "#00ff00"}
    )
    tid, sid_ = tumor.json_body["id"], stroma.json_body["id"]
    r = cloud_api("POST", f"/projects/{pid}/slides", "olivia", {"name": "ihc", "filename": "ihc.png"})
    assert r.status_code == 201, r.body
    slide = r.json_body["slide"]["slide_id"]
    prefix = f"{cloud.data_bucket}/projects/{pid}/slides/{slide}"
    filesystem(cloud).put_file(str(shared_data / "slides" / "skimage_ihc.png"), f"{prefix}/source/ihc.png")
    base = ["--project", pid, "--slide", slide, "--progress", "off"]
    assert ingest_job.main([*base, "--source", f"s3://{prefix}/source/ihc.png"]) == 0
    assert segment_job.main([*base, "--superpixel-size", "48", "--workers", "1"]) == 0
    state = cloud_api("GET", f"/projects/{pid}/slides/{slide}", "olivia").json_body
    width, height = state["ingest"]["width"], state["ingest"]["height"]

    ids = [1, 2, 3, 10, 20]
    assert cloud_api("POST", f"/projects/{pid}/slides/{slide}/labels", "olivia",
                     {"category_id": tid, "ids": ids[:3]}).status_code == 200  # fmt: skip
    assert cloud_api("POST", f"/projects/{pid}/slides/{slide}/labels", "olivia",
                     {"category_id": sid_, "ids": ids[3:]}).status_code == 200  # fmt: skip
    # A renamed category: exports say what it is called now, not its id.
    assert cloud_api("PATCH", f"/projects/{pid}/categories/{tid}", "olivia",
                     {"name": "Tumour (invasive)"}).status_code == 200  # fmt: skip

    r = cloud_api("GET", f"/projects/{pid}/export?format=geojson", "olivia")
    assert r.status_code == 200, r.body
    features = r.json_body["features"]
    assert sorted(int(f["id"].split(":")[1]) for f in features) == ids
    frame = shapely.box(0, 0, width, height)
    names = {}
    for f in features:
        assert f["geometry"]["type"] == "Polygon" and f["properties"]["objectType"] == "annotation"
        poly = shapely.geometry.shape(f["geometry"])
        assert poly.is_valid and poly.area > 0 and frame.buffer(1).contains(poly), f["id"]
        names[int(f["id"].split(":")[1])] = (f["properties"]["classification"]["name"],
                                             tuple(f["properties"]["classification"]["color"]))  # fmt: skip
    assert names == {
        **{i: ("Tumour (invasive)", (255, 0, 0)) for i in ids[:3]},
        **{i: ("stroma", (0, 255, 0)) for i in ids[3:]},
    }
    # Neighbours' outlines meet but do not overlap.
    polys = [shapely.geometry.shape(f["geometry"]) for f in features]
    assert sum(p.area for p in polys) == pytest.approx(shapely.union_all(polys).area, rel=0.02)

    text = cloud_api("GET", f"/projects/{pid}/export?format=csv", "olivia").body.decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {int(r["id"]): r["label"] for r in rows} == {
        **{i: "Tumour (invasive)" for i in ids[:3]},
        **{i: "stroma" for i in ids[3:]},
    }
    assert {r["label_id"] for r in rows} == {tid, sid_}
    raw = cloud_api("GET", f"/projects/{pid}/export?format=parquet", "olivia",
                    accept="application/vnd.apache.parquet").body  # fmt: skip
    table = pq.read_table(io.BytesIO(raw)).to_pydict()
    assert sorted(set(table["label"])) == ["Tumour (invasive)", "stroma"]
