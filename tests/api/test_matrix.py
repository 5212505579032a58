"""Every route x every role, member or not, with and without a token: allowed calls succeed,
the rest get 401/403 and write nothing."""

from __future__ import annotations

import numpy as np
import pytest

from histolabel.api.routes import ROUTES
from histolabel.commands import ExcludeCategory
from tests.api.conftest import OUTSIDER, ROLE_USERS, publish_predictions
from tests.unit.helpers import OWNER

P = "/projects/proj"
IMPORT_ID = "0" * 32

# A valid request for every route of a project, against the seeded project.
REQUESTS = {
    "get_project": ("GET", P, None),
    "change_settings": ("PUT", P + "/settings", {"settings": {"retrain_threshold": 20}}),
    "update_settings": ("PATCH", P + "/settings", {"settings": {"retrain_threshold": 20}}),
    "add_member": ("POST", P + "/members", {"user": "newbie", "role": "annotator", "site": "rome"}),
    "change_role": ("PATCH", P + "/members/ana", {"role": "reviewer"}),
    "remove_member": ("DELETE", P + "/members/audrey", None),
    "people": ("GET", P + "/people", None),
    "add_category": ("POST", P + "/categories", {"name": "fat"}),
    "merge_categories": ("POST", P + "/categories/merge", {"sources": ["stroma"], "target": "tumor"}),
    "update_category": (
        "PATCH",
        P + "/categories/tumor",
        {"name": "Tumour", "color": "#112233", "hotkey": "shift+t"},
    ),
    "exclude_category": ("POST", P + "/categories/necrosis/exclude", None),
    "include_category": ("POST", P + "/categories/necrosis/include", None),
    "delete_category": ("DELETE", P + "/categories/necrosis", None),
    "register_slide": ("POST", P + "/slides", {"name": "slide 2", "filename": "s2.svs"}),
    "list_slides": ("GET", P + "/slides", None),
    "get_slide": ("GET", P + "/slides/s1", None),
    "start_job": ("POST", P + "/slides/s1/jobs", {"job": "ingest"}),
    "job_status": ("GET", P + "/jobs/job-1", None),
    "slide_mask": ("GET", P + "/slides/s1/mask?format=tiff", None),
    "import_upload": ("POST", P + "/slides/s1/imports", {"kind": "labels", "filename": "l.csv", "size": 20}),
    "import_start": (
        "POST",
        P + f"/slides/s1/imports/{IMPORT_ID}/start",
        {"kind": "labels", "filename": "l.csv"},
    ),
    "slide_data": ("GET", P + "/slides/s1/data?key=image.ome.zarr/zarr.json", None),
    "slide_data_urls": ("POST", P + "/slides/s1/data/urls", {"keys": ["image.ome.zarr/zarr.json"]}),
    "slide_labels": ("GET", P + "/slides/s1/labels", None),
    "slide_predictions": ("GET", P + "/slides/s1/predictions", None),
    "label": ("POST", P + "/slides/s1/labels", {"category_id": "tumor", "ids": [1, 2, 3]}),
    "unlabel": ("POST", P + "/slides/s1/unlabel", {"ids": [1]}),
    "review": ("POST", P + "/slides/s1/review", {"action": "clear", "ids": [1, 2]}),
    "queue": ("GET", P + "/queue?n=5", None),
    "changes": ("GET", P + "/changes?slide=s1&labels_seq=0", None),
    "review_list": ("GET", P + "/review?sort=label&group_by=label", None),
    "review_ids": ("GET", P + "/review/ids?label=tumor&limit=1000", None),
    "agreement": ("GET", P + "/agreement", None),
    "request_training": ("POST", P + "/training", None),
    "training": ("GET", P + "/training", None),
    "audit_history": ("GET", P + "/audit/history", None),
    "audit_replay": ("GET", P + "/audit/replay?as_of=2100-01-01", None),
    "export": ("GET", P + "/export?format=csv&anonymize=true", None),
    "start_export": ("POST", P + "/exports", {"format": "csv", "anonymize": True}),
    "export_status": ("GET", P + "/exports/job-2", None),  # an export job recorded (below)
    "create_upload": ("POST", P + "/uploads", {"filename": "s2.svs", "size": 100}),
    "upload_parts": ("POST", P + "/uploads/parts", {"part_numbers": [1]}),  # + an upload (below)
    "complete_upload": ("POST", P + "/uploads/complete", {}),  # + an upload with a part (below)
    "remove_slide": ("DELETE", P + "/slides/s1", None),
    "superpixel_estimate": (
        "GET",
        P + "/slides/s1/superpixel-estimate?superpixel_size=32&magnification=20",
        None,
    ),
    "invite": (
        "POST",
        P + "/invitations",
        {"email": "newbie@example.org", "role": "annotator", "site": "rome"},
    ),
    "list_jobs": ("GET", P + "/jobs", None),
    "retry_job": ("POST", P + "/jobs/job-1/retry", None),
    "cancel_job": ("POST", P + "/jobs/job-1/cancel", None),
    "job_log": ("GET", P + "/jobs/job-1/log", None),
    "select_model": ("POST", P + "/models/1/use", None),
}
READ_ONLY_POSTS = {"slide_data_urls", "create_upload", "upload_parts", "import_upload"}
PROJECT_ROUTES = [r for r in ROUTES if isinstance(r.access, tuple)]
CALLERS = [*ROLE_USERS, "outsider", "anonymous"]


def _upload(api, with_part: bool) -> dict:
    """A browser upload begun by the owner (and its one part sent), as the upload routes need."""
    import http.client
    import urllib.parse

    up = api.request("POST", P + "/uploads", user="olivia", body={"filename": "s2.png", "size": 3}).json_body
    ref = {k: up[k] for k in ("upload_id", "slide_id", "filename")}
    if with_part:
        url = api.request("POST", P + "/uploads/parts", user="olivia", body={**ref, "part_numbers": [1]})
        parts = urllib.parse.urlsplit(url.json_body["urls"]["1"])
        conn = http.client.HTTPConnection(parts.netloc, timeout=30)
        conn.request("PUT", f"{parts.path}?{parts.query}", body=b"abc", headers={"Content-Length": "3"})
        assert conn.getresponse().status == 200
        conn.close()
    return ref


def _label_pyramid(api, cloud):
    """A real 64 x 64 label pyramid (ids 1..4) as slide s1's segmentation, for routes that read it."""
    from histolabel.adapters import pyramids
    from histolabel.segmentation.output import create_label_pyramid, publish_pyramid

    image_uri = f"s3://{cloud.data_bucket}/projects/proj/slides/s1/image.ome.zarr"
    image = pyramids.open_group(image_uri, "w")
    create_label_pyramid(image, 64, 64)
    image["labels/superpixels/0"][0] = np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) % 4 + 1
    publish_pyramid(image, 64, 64, 4, 0, None, {})
    table_uri = f"s3://{cloud.data_bucket}/projects/proj/slides/s1/superpixels.parquet"
    seg = {"slide_id": "s1", "count": 4, "labels_uri": f"{image_uri}/labels/superpixels",
           "table_uri": table_uri, "source": "import"}  # fmt: skip
    api.svc.record_job_event("proj", "SegmentationCompleted", seg, job="import_segmentation")


def test_every_project_route_has_a_request():
    assert {r.name for r in PROJECT_ROUTES} == set(REQUESTS)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", PROJECT_ROUTES, ids=lambda r: r.name)
def test_access(api, route, caller, cloud):
    if route.name in ("job_status", "cancel_job", "job_log"):
        api.submitter.submit("ingest", [], "warm-up")
    if route.name == "export_status":
        from histolabel.commands import RecordJobSubmitted

        job = api.submitter.submit("export", [], "export")
        api.svc.execute(RecordJobSubmitted(project_id="proj", job="export", job_id=job), OWNER)
    if route.name == "include_category":
        api.svc.execute(ExcludeCategory(project_id="proj", category_id="necrosis"), OWNER)
    if route.name in ("superpixel_estimate", "retry_job"):
        ingested = {"slide_id": "s1", "zarr_uri": "s3://b/x.zarr", "width": 4000, "height": 3000, "levels": 3}
        api.svc.record_job_event("proj", "SlideIngested", ingested, job="ingest")
    if route.name in ("slide_predictions", "select_model"):
        publish_predictions(api.svc, cloud, {"s1": np.full((5000, 2), 0.5)}, ["tumor", "stroma"])
    if route.name == "import_start":
        from histolabel.adapters.s3 import filesystem

        key = f"{cloud.data_bucket}/projects/proj/slides/s1/imports/{IMPORT_ID}/l.csv"
        filesystem(cloud).pipe_file(key, b"id,category\n1,tumor\n")
    if route.name == "slide_mask":
        _label_pyramid(api, cloud)
    method, path, body = REQUESTS[route.name]
    if route.name in ("upload_parts", "complete_upload"):
        body = {**body, **_upload(api, with_part=route.name == "complete_upload")}
    user = {"outsider": OUTSIDER, "anonymous": None, **ROLE_USERS}[caller]
    before = api.events()
    response = api.request(method, path, user=user, body=body)
    if caller in ROLE_USERS and ROLE_USERS[caller] in api.svc.project_state("proj").members:
        allowed = caller in route.access
    else:
        allowed = False
    if allowed:
        assert response.status_code < 400, (route.name, caller, response.body)
        if route.method == "GET" or route.name in READ_ONLY_POSTS:
            assert api.events() == before
        else:
            assert api.events() > before, route.name
    else:
        expected = 401 if caller == "anonymous" else 403
        assert response.status_code == expected, (route.name, caller, response.body)
        assert response.json_body["error"] == ("unauthorized" if expected == 401 else "forbidden")
        assert api.events() == before


@pytest.mark.parametrize("route", [r for r in ROUTES if r.access == "open"], ids=lambda r: r.name)
def test_open_routes_need_no_token(api, route):
    response = api.request(route.method, route.path)
    assert response.status_code == 200


def test_signed_in_routes_need_a_token(api):
    assert api.request("GET", "/me").status_code == 401
    assert api.request("GET", "/me", user="zed").json_body == {"user": "zed", "email": "zed@example.org"}
    before = api.events()
    body = {"project_id": "p2", "name": "x", "site": "nyc"}
    assert api.request("POST", "/projects", body=body).status_code == 401
    assert api.events() == before
