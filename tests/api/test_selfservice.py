"""The owner's self-service routes on the local cloud: a slide uploaded as the browser does it
(presigned multipart straight to S3, resumed after a lost part, then completed), the expected
superpixel count against what the segment job makes, removal as an event, invitations that
create a Cognito user or add an existing one, the jobs list with Retry, and a model choice."""

from __future__ import annotations

import http.client
import urllib.parse
import urllib.request
import uuid

import pytest

from gpu_jobs import ingest as ingest_job
from gpu_jobs import segment as segment_job
from histolabel.adapters import cognito
from histolabel.composition import service_from_env
from tests.api.test_cloud import cloud_api, pool  # noqa: F401 - fixtures


def _put(url: str, body: bytes) -> int:
    """PUT as the browser sends a Blob slice: no Content-Type (urllib would add a form type)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=30)
    conn.request("PUT", f"{parts.path}?{parts.query}", body=body, headers={"Content-Length": str(len(body))})
    status = conn.getresponse().status
    conn.close()
    return status


@pytest.fixture
def project(cloud_api):  # noqa: F811
    pid = f"p{uuid.uuid4().hex[:10]}"
    r = cloud_api("POST", "/projects", "olivia", {"project_id": pid, "name": "x", "site": "nyc"})
    assert r.status_code == 201
    return pid


@pytest.mark.slow
def test_multipart_upload_resume_complete_estimate_remove(cloud_api, cloud, project, shared_data):  # noqa: F811
    pid, source = project, (shared_data / "slides" / "skimage_ihc.png").read_bytes()
    svc = service_from_env(cloud)
    bad = cloud_api("POST", f"/projects/{pid}/uploads", "olivia", {"filename": "../etc/x", "size": 10})
    assert bad.status_code == 422 and bad.json_body["field"] == "filename"
    assert (
        cloud_api("POST", f"/projects/{pid}/uploads", "ana", {"filename": "a.png", "size": 9}).status_code
        == 403
    )
    r = cloud_api("POST", f"/projects/{pid}/uploads", "olivia", {"filename": "ihc.png", "size": len(source)})
    assert r.status_code == 201, r.body
    up = r.json_body
    assert up["parts"] == 1 and up["part_size"] >= len(source)
    ref = {k: up[k] for k in ("upload_id", "slide_id", "filename")}
    before = len(list(svc.events.read(f"P#{pid}")))
    # Nothing is registered until the upload completes; completing with no part is refused.
    r = cloud_api("POST", f"/projects/{pid}/uploads/complete", "olivia", ref)
    assert r.status_code == 409 and r.json_body["field"] == "upload_id"
    urls = cloud_api(
        "POST", f"/projects/{pid}/uploads/parts", "olivia", {**ref, "part_numbers": [1]}
    ).json_body
    assert urls["done"] == []
    assert _put(urls["urls"]["1"], source) == 200
    # A reloaded page asks again and learns that part 1 has arrived.
    again = cloud_api("POST", f"/projects/{pid}/uploads/parts", "olivia", {**ref, "part_numbers": [1]})
    assert again.json_body["done"] == [1]
    assert len(list(svc.events.read(f"P#{pid}"))) == before
    r = cloud_api("POST", f"/projects/{pid}/uploads/complete", "olivia", {**ref, "name": "IHC"})
    assert r.status_code == 201, r.body
    sid = r.json_body["slide"]["slide_id"]
    assert r.json_body["slide"]["name"] == "IHC" and r.json_body["job_id"]
    state = svc.project_state(pid)
    assert state.jobs[r.json_body["job_id"]]["job"] == "ingest"
    # The object S3 assembled is the file.
    data = cloud_api("GET", f"/projects/{pid}/slides/{sid}/data?key=source/ihc.png", "olivia")
    with urllib.request.urlopen(data.headers["Location"], timeout=10) as resp:
        assert resp.read() == source
    # A finished upload cannot be completed again.
    assert cloud_api("POST", f"/projects/{pid}/uploads/complete", "olivia", ref).status_code in (404, 409)

    # The expected count for the project's settings, then the segment job's real count.
    estimate = f"/projects/{pid}/slides/{sid}/superpixel-estimate"
    est = cloud_api("GET", f"{estimate}?superpixel_size=32&magnification=20", "olivia")
    assert est.status_code == 409  # not ingested yet
    base = ["--project", pid, "--slide", sid, "--progress", "off"]
    assert ingest_job.main([*base, "--source", state.slides[sid].source_uri]) == 0
    est = cloud_api("GET", f"{estimate}?superpixel_size=32&magnification=20", "olivia")
    assert est.status_code == 200, est.body
    # Segmented as the pipeline segments (the project's size rule: --unit auto at its magnification).
    sized = ["--superpixel-size", "32", "--unit", "auto", "--magnification", "20", "--workers", "1"]
    assert segment_job.main([*base, *sized]) == 0
    made = svc.project_state(pid).slides[sid].segmentation["count"]
    assert abs(est.json_body["count"] - made) <= 0.15 * made, (est.json_body, made)
    assert est.json_body["superpixel_px"] == 11  # 32 px asked; 2,000 superpixels at least on 512 x 512
    bad = cloud_api("GET", f"{estimate}?superpixel_size=2&magnification=20", "olivia")
    assert bad.status_code == 422 and bad.json_body["field"] == "superpixel_size"

    # Jobs: listed with state; Retry starts the same job again.
    jobs = cloud_api("GET", f"/projects/{pid}/jobs", "olivia").json_body["jobs"]
    assert [j["job"] for j in jobs] == ["ingest"] and jobs[0]["status"] == "RUNNING"
    retried = cloud_api("POST", f"/projects/{pid}/jobs/{jobs[0]['job_id']}/retry", "olivia")
    assert retried.status_code == 202 and retried.json_body["job"] == "ingest"
    assert cloud_api("POST", f"/projects/{pid}/jobs/nope/retry", "olivia").status_code == 404

    # Removal: an event, the slide gone from the project, its id never reused.
    assert cloud_api("DELETE", f"/projects/{pid}/slides/{sid}", "ana").status_code == 403
    assert cloud_api("DELETE", f"/projects/{pid}/slides/{sid}", "olivia").json_body == {"removed": sid}
    assert sid not in {
        s["slide_id"] for s in cloud_api("GET", f"/projects/{pid}/slides", "olivia").json_body["slides"]
    }
    assert list(svc.events.read(f"P#{pid}"))[-1].type == "SlideRemoved"
    assert cloud_api("DELETE", f"/projects/{pid}/slides/{sid}", "olivia").status_code == 404
    r = cloud_api(
        "POST", f"/projects/{pid}/slides", "olivia", {"name": "again", "filename": "x.png", "slide_id": sid}
    )
    assert r.status_code == 409


def test_invite_creates_or_adds_and_models_choice(cloud_api, cloud, project, pool):  # noqa: F811
    pid = project
    email = f"new-{uuid.uuid4().hex[:6]}@example.org"
    r = cloud_api(
        "POST",
        f"/projects/{pid}/invitations",
        "olivia",
        {"email": email, "role": "annotator", "site": "rome"},
    )
    assert r.status_code == 201, r.body
    out = r.json_body
    assert out["created"] and out["temporary_password"] and out["role"] == "annotator"
    # The new user exists in the pool, must choose a password, and is a member.
    idp = cognito.client("cognito-idp", cloud)
    assert (
        idp.admin_get_user(UserPoolId=pool.user_pool_id, Username=out["user"])["UserStatus"]
        == "FORCE_CHANGE_PASSWORD"
    )
    assert (
        cloud_api("GET", f"/projects/{pid}", "olivia").json_body["members"][out["user"]]["role"]
        == "annotator"
    )
    # An existing user (by email) is added, with no password made.
    r = cloud_api("POST", f"/projects/{pid}/invitations", "olivia",
                  {"email": "ana@example.org", "role": "reviewer", "site": "rome"})  # fmt: skip
    assert r.status_code == 201 and r.json_body == {"user": "ana", "role": "reviewer", "created": False,
                                                    "temporary_password": None}  # fmt: skip
    again = cloud_api("POST", f"/projects/{pid}/invitations", "olivia",
                      {"email": "ana@example.org", "role": "annotator", "site": "rome"})  # fmt: skip
    assert again.status_code == 409 and again.json_body["field"] == "email"
    bad = cloud_api(
        "POST", f"/projects/{pid}/invitations", "olivia", {"email": "nope", "role": "annotator", "site": "x"}
    )
    assert bad.status_code == 422 and bad.json_body["field"] == "email"
    assert cloud_api("POST", f"/projects/{pid}/invitations", "ana",
                     {"email": "z@example.org", "role": "owner", "site": "x"}).status_code == 403  # fmt: skip
    # Choosing a model version that does not exist writes nothing.
    r = cloud_api("POST", f"/projects/{pid}/models/3/use", "olivia")
    assert r.status_code == 404 and r.json_body["field"] == "model_version"
    assert cloud_api("POST", f"/projects/{pid}/models/x/use", "olivia").status_code == 400
    # Two trained versions; going back to v1 is an event, and a predict job of v1 is started
    # (the queue and the overlay read the predictions it publishes).
    from chalicelib.context import SERVICES

    from tests.api.conftest import publish_predictions

    svc = service_from_env(cloud)
    for _ in range(2):
        publish_predictions(svc, cloud, {}, ["a", "b"], project_id=pid)
    assert (
        cloud_api("GET", f"/projects/{pid}/training", "olivia").json_body["current_model"]["model_version"]
        == 2
    )
    assert cloud_api("POST", f"/projects/{pid}/models/1/use", "ana").status_code == 403
    r = cloud_api("POST", f"/projects/{pid}/models/1/use", "olivia")
    assert r.status_code == 200 and r.json_body["model_version"] == 1 and r.json_body["job_id"]
    job, args, _ = SERVICES.submitter.jobs[-1]
    assert job == "predict" and args[args.index("--version") + 1] == "1"
    assert list(svc.events.read(f"P#{pid}"))[-2].type == "ModelSelected"
    assert (
        cloud_api("GET", f"/projects/{pid}/training", "olivia").json_body["current_model"]["model_version"]
        == 1
    )
