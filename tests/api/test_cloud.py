"""Against the local cloud: Cognito sign-in and JWKS, DynamoDB events, S3 uploads, presigned
data redirects, brush polygons and GeoJSON outlines on a real image segmented with SLIC."""

from __future__ import annotations

import io
import json
import urllib.request
import uuid

import numpy as np
import pyarrow as pa
import pytest
import shapely
from skimage import io as skio
from skimage.measure import regionprops
from skimage.segmentation import slic

from histolabel.adapters import cognito, pyramids
from histolabel.composition import service_from_env


@pytest.fixture(scope="module")
def pool(cloud):
    p = cognito.ensure_pool(cloud)
    for user in ("olivia", "ana", "oscar"):
        cognito.add_user(p, user, "Passw0rd!x", f"{user}@example.org", settings=cloud)
    return p


@pytest.fixture
def cloud_api(cloud, pool, monkeypatch):
    from app import app
    from chalice.test import Client
    from chalicelib.context import SERVICES

    from tests.api.conftest import RecordingSubmitter

    monkeypatch.setenv("HISTOLABEL_USER_POOL_ID", pool.user_pool_id)
    monkeypatch.setenv("HISTOLABEL_CLIENT_ID", pool.client_id)
    monkeypatch.delenv("HISTOLABEL_JWKS_URL", raising=False)
    SERVICES.service = service_from_env(cloud)
    SERVICES.submitter = RecordingSubmitter()
    SERVICES.pool = SERVICES.jwks = SERVICES.directory = None  # built from the environment, as in Lambda
    tokens = {u: cognito.login(pool, u, "Passw0rd!x", settings=cloud) for u in ("olivia", "ana", "oscar")}
    client = Client(app)

    def call(method, path, user=None, body=None, token=None, accept=None):
        headers = {"Content-Type": "application/json"}
        if accept:
            headers["Accept"] = accept
        if user or token:
            headers["Authorization"] = f"Bearer {token or tokens[user]}"
        return client.http.request(
            method, path, headers=headers, body=json.dumps(body) if body is not None else b""
        )

    yield call
    SERVICES.service = SERVICES.submitter = SERVICES.pool = SERVICES.jwks = SERVICES.directory = None


def test_cognito_login_and_config(cloud_api, pool, cloud):
    config = cloud_api("GET", "/config").json_body
    assert config["userPoolId"] == pool.user_pool_id and config["cognitoEndpoint"] == cloud.endpoint_url
    assert cloud_api("GET", "/me", user="ana").json_body["user"] == "ana"
    assert cloud_api("GET", "/me").status_code == 401
    # A real token with its signature tampered with is refused.
    token = cognito.login(pool, "ana", "Passw0rd!x", cloud)
    tampered = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    r = cloud_api("GET", "/me", token=tampered)
    assert r.status_code == 401 and r.json_body["error"] == "unauthorized"


def _write_segmentation(bucket: str, pid: str, sid: str, image: np.ndarray) -> tuple[np.ndarray, dict]:
    labels = slic(image, n_segments=150, compactness=10, start_label=1).astype(np.uint32)
    prefix = f"s3://{bucket}/projects/{pid}/slides/{sid}"
    group = pyramids.open_group(f"{prefix}/image.ome.zarr/labels/superpixels", "w")
    group.attrs.update(
        {"ome": {"multiscales": [{"datasets": [{"path": "0"}]}]}, "histolabel": {"image_level": 0}}
    )
    arr = group.create_array("0", shape=labels.shape, dtype="uint32", chunks=(128, 128))
    arr[:] = labels
    props = regionprops(labels)
    table = pa.table(
        {
            "id": [p.label for p in props],
            "y0": [p.bbox[0] for p in props], "x0": [p.bbox[1] for p in props],
            "y1": [p.bbox[2] for p in props], "x1": [p.bbox[3] for p in props],
            "cy": [p.centroid[0] for p in props], "cx": [p.centroid[1] for p in props],
            "area": [p.area for p in props], "level": [0] * len(props),
        }
    )  # fmt: skip
    pyramids.write_table(table, f"{prefix}/superpixels.parquet")
    seg = {
        "slide_id": sid, "count": int(labels.max()),
        "labels_uri": f"{prefix}/image.ome.zarr/labels/superpixels",
        "table_uri": f"{prefix}/superpixels.parquet", "superpixel_size": 40, "compactness": 10,
    }  # fmt: skip
    return labels, seg


@pytest.mark.slow
def test_upload_label_by_brush_and_export_outlines(cloud_api, cloud, shared_data, monkeypatch):
    pid = f"p{uuid.uuid4().hex[:10]}"
    assert (
        cloud_api(
            "POST", "/projects", "olivia", {"project_id": pid, "name": "IHC", "site": "nyc"}
        ).status_code
        == 201
    )
    assert (
        cloud_api(
            "POST", f"/projects/{pid}/members", "olivia", {"user": "ana", "role": "annotator", "site": "rome"}
        ).status_code
        == 201
    )
    # Members must exist in the pool; an email finds its user; a typo writes nothing.
    r = cloud_api(
        "POST",
        f"/projects/{pid}/members",
        "olivia",
        {"user": "oscar@example.org", "role": "auditor", "site": "oslo"},
    )
    assert r.status_code == 201 and r.json_body["user"] == "oscar", r.body
    assert cloud_api("DELETE", f"/projects/{pid}/members/oscar", "olivia").status_code == 200
    svc = service_from_env(cloud)
    before = len(list(svc.events.read(f"P#{pid}")))
    for typo in ("anaa", "nobody@example.org"):
        r = cloud_api(
            "POST", f"/projects/{pid}/members", "olivia", {"user": typo, "role": "annotator", "site": "rome"}
        )
        assert r.status_code == 404 and r.json_body["field"] == "user" and typo in r.json_body["detail"]
    assert len(list(svc.events.read(f"P#{pid}"))) == before
    # How members are shown: their emails from the pool (ids may be opaque on a deployed pool).
    people = cloud_api("GET", f"/projects/{pid}/people", "ana").json_body["people"]
    assert people == {
        "ana": {"email": "ana@example.org", "name": None},
        "olivia": {"email": "olivia@example.org", "name": None},
    }
    assert cloud_api("GET", f"/projects/{pid}/people", "oscar").status_code == 403
    assert cloud_api("POST", f"/projects/{pid}/categories", "ana", {"name": "brown"}).status_code == 201
    assert cloud_api("GET", f"/projects/{pid}", "oscar").status_code == 403

    source = (shared_data / "slides" / "skimage_ihc.png").read_bytes()
    r = cloud_api(
        "POST", f"/projects/{pid}/slides", "olivia", {"name": "ihc", "filename": "ihc.png", "slide_id": "s1"}
    )
    assert r.status_code == 201, r.body
    upload = r.json_body["upload"]
    put = urllib.request.Request(
        upload["url"], data=source, method="PUT", headers={"Content-Type": "image/png"}
    )
    with urllib.request.urlopen(put, timeout=10) as resp:
        assert resp.status == 200
    # The browser's read path: a 302 to a presigned GET of the object.
    r = cloud_api("GET", f"/projects/{pid}/slides/s1/data?key=source/ihc.png", "ana")
    assert r.status_code == 302
    with urllib.request.urlopen(r.headers["Location"], timeout=10) as resp:
        assert resp.read() == source
    assert cloud_api("GET", f"/projects/{pid}/slides/s1/data?key=source/ihc.png", "oscar").status_code == 403

    image = skio.imread(io.BytesIO(source))[..., :3]
    labels, seg = _write_segmentation(cloud.data_bucket, pid, "s1", image)
    svc = service_from_env(cloud)
    svc.record_job_event(pid, "SegmentationCompleted", seg, job="segment")

    # Brush: a square over the image's top-left quarter selects the superpixels centred in it.
    square = [[0, 0], [256, 0], [256, 256], [0, 256]]
    r = cloud_api(
        "POST", f"/projects/{pid}/slides/s1/labels", "ana", {"category_id": "brown", "polygon": square}
    )
    assert r.status_code == 200, r.body
    expected = {p.label for p in regionprops(labels) if p.centroid[0] < 256 and p.centroid[1] < 256}
    assert r.json_body["ids"] == len(expected)
    entries = cloud_api("GET", f"/projects/{pid}/slides/s1/labels", "ana").json_body["entries"]
    assert {e["id"] for e in entries} == expected

    queue = cloud_api("GET", f"/projects/{pid}/queue?n=10", "ana").json_body["items"]
    assert queue and not {i["id"] for i in queue} & expected
    y0, x0, y1, x1 = queue[0]["bbox"]
    assert (labels[y0:y1, x0:x1] == queue[0]["id"]).any()

    geo = cloud_api("GET", f"/projects/{pid}/export?format=geojson&anonymize=true", "olivia").json_body
    assert len(geo["features"]) == len(expected)
    for feature in geo["features"]:
        sp = int(feature["id"].split(":")[1])
        poly = shapely.Polygon(feature["geometry"]["coordinates"][0])
        area = int((labels == sp).sum())
        assert poly.is_valid and abs(poly.area - area) <= 0.1 * area + 10
        assert feature["properties"]["classification"]["name"] == "brown"
        assert feature["properties"]["labeled_by"] == "annotator-1"

    assert cloud_api("GET", f"/projects/{pid}/export?format=parquet", "olivia").status_code == 406
    parquet = cloud_api(
        "GET", f"/projects/{pid}/export?format=parquet", "olivia", accept="application/vnd.apache.parquet"
    )
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(parquet.body))
    assert sorted(table.column("id").to_pylist()) == sorted(expected)
    assert set(table.column("labeled_by").to_pylist()) == {"ana"}

    # Past what a Lambda response may carry, the export is a 303 to a copy in the data bucket,
    # tagged for the lifecycle rule that expires exports.
    from histolabel.adapters.aws import client
    from histolabel.resources import EXPORT_TAG

    monkeypatch.setenv("HISTOLABEL_INLINE_RESPONSE_BYTES", "1000")
    r = cloud_api("GET", f"/projects/{pid}/export?format=geojson&anonymize=true", "olivia")
    assert r.status_code == 303, r.body
    with urllib.request.urlopen(r.headers["Location"], timeout=10) as resp:
        assert json.loads(resp.read()) == geo
        assert resp.headers["Content-Type"] == "application/geo+json"
        assert "attachment" in resp.headers["Content-Disposition"]
    r = cloud_api("GET", f"/projects/{pid}/export?format=parquet", "olivia")
    assert r.status_code == 303, r.body
    with urllib.request.urlopen(r.headers["Location"], timeout=10) as resp:
        assert pq.read_table(io.BytesIO(resp.read())).num_rows == len(expected)
    s3 = client("s3", cloud)
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=cloud.data_bucket, Prefix=f"projects/{pid}/exports/")["Contents"]
    ]
    assert len(keys) == 2
    for key in keys:
        assert s3.get_object_tagging(Bucket=cloud.data_bucket, Key=key)["TagSet"] == [EXPORT_TAG]
    # Refused input still writes nothing.
    assert cloud_api("GET", f"/projects/{pid}/export?format=xml", "olivia").status_code == 422
    assert cloud_api("GET", f"/projects/{pid}/export?format=csv", "oscar").status_code == 403
    listed = s3.list_objects_v2(Bucket=cloud.data_bucket, Prefix=f"projects/{pid}/exports/")
    assert len(listed["Contents"]) == 2
