"""Import through the API as the browser would: ask for an upload, PUT the file to the
presigned URL, start the import job, poll the job; refusals name the field."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from histolabel.composition import service_from_env
from tests.imports.conftest import IMAGE, OWNER, SLIDE, monuseg_polygons, qupath_geojson

pytestmark = pytest.mark.slow


@pytest.fixture
def http(cloud: Any, jobs: Path) -> Any:
    from chalicelib.context import SERVICES

    from histolabel.composition import job_events_handler, service_from_env
    from histolabel.localcloud.job_runner import LocalJobRunner
    from tests.api.conftest import Api, Signer

    api = Api(Signer("import-api-test"))
    SERVICES.service = service_from_env()
    (jobs / "runner").mkdir()
    SERVICES.submitter = LocalJobRunner(jobs / "runner", on_state_change=job_events_handler)
    yield api
    SERVICES.service = SERVICES.submitter = SERVICES.pool = SERVICES.jwks = SERVICES.directory = None


def _put(url: str, raw: bytes) -> None:
    req = urllib.request.Request(
        url, data=raw, method="PUT", headers={"Content-Type": "application/octet-stream"}
    )
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 200


def test_upload_and_import_job_through_the_api(project: str, shared_data: Path, http: Any) -> None:
    from histolabel.commands import AddMember

    svc = service_from_env()
    svc.execute(AddMember(project_id=project, user="ana", role="annotator", site="nyc"), OWNER)
    base = f"/projects/{project}/slides/{SLIDE}/imports"
    rings = monuseg_polygons(shared_data / "labeled" / "monuseg" / f"{IMAGE}.xml")[:40]
    raw = json.dumps(qupath_geojson(rings, [None] * len(rings))).encode()

    refused = http.request("POST", base, "ana", {"kind": "segmentation", "filename": "n.geojson", "size": 10})
    assert refused.status_code == 403 and json.loads(refused.body)["field"] == "kind"
    big = http.request(
        "POST", base, OWNER.user, {"kind": "segmentation", "filename": "n.geojson", "size": 2 << 30}
    )
    assert big.status_code == 422 and json.loads(big.body)["field"] == "size"
    bad_name = http.request("POST", base, OWNER.user, {"kind": "segmentation", "filename": "../x", "size": 9})
    assert bad_name.status_code == 422 and "filename" in bad_name.body.decode()

    up = http.request(
        "POST", base, OWNER.user, {"kind": "segmentation", "filename": "n.geojson", "size": len(raw)}
    )
    assert up.status_code == 201, up.body
    ticket = json.loads(up.body)
    start = f"{base}/{ticket['import_id']}/start"
    missing = http.request("POST", start, OWNER.user, {"kind": "segmentation", "filename": "n.geojson"})
    assert missing.status_code == 404 and json.loads(missing.body)["field"] == "filename"
    _put(ticket["upload_url"], raw)
    started = http.request("POST", start, OWNER.user, {"kind": "segmentation", "filename": "n.geojson",
                                                         "options": {"lenient": True}})  # fmt: skip
    assert started.status_code == 202, started.body
    job_id = json.loads(started.body)["job_id"]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        status = json.loads(http.request("GET", f"/projects/{project}/jobs/{job_id}", OWNER.user).body)
        if status["status"] in ("SUCCEEDED", "FAILED"):
            break
        time.sleep(0.5)
    assert status["status"] == "SUCCEEDED", status
    seg = svc.project_state(project).slides[SLIDE].segmentation
    assert seg["source"] == "import" and seg["objects_read"] == 40 and 0 < seg["count"] <= 40
