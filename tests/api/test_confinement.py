"""Every object stays in its project: a signed-in user of project B cannot reach project A's
slides through slide registration, a job, or any route that serves data (issue 17, item 1).

Against the local cloud: the API in-process over the DynamoDB/S3 service, jobs started by the
local job runner as real processes, data fetched through the presigned URLs the routes hand out.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from histolabel.adapters.aws import client
from histolabel.localcloud.jobs import LocalJobRunner
from histolabel.service import HistoLabel
from tests.api.conftest import POOL, Signer, directory


class CloudApi:
    def __init__(self, cloud: Any, signer: Signer, jobs: Path) -> None:
        from app import app
        from chalice.test import Client
        from chalicelib.context import SERVICES

        self.settings = cloud
        self.svc = HistoLabel.from_env(cloud)
        self.runner = LocalJobRunner(jobs, wait=True)
        SERVICES.service = self.svc
        SERVICES.submitter = self.runner
        SERVICES.pool = POOL
        SERVICES.jwks = lambda kid: signer.jwk if kid == signer.kid else None
        SERVICES.directory = directory
        self.signer = signer
        self.client = Client(app)

    def __call__(self, method: str, path: str, user: str, body: Any = None) -> Any:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.signer.token(user)}"}
        raw = json.dumps(body) if body is not None else b""
        return self.client.http.request(method, path, headers=headers, body=raw)

    def keys(self, prefix: str) -> list[str]:
        listed = client("s3", self.settings).list_objects_v2(Bucket=self.settings.data_bucket, Prefix=prefix)
        return [o["Key"] for o in listed.get("Contents", [])]

    def events(self, project_id: str) -> int:
        return len(list(self.svc.events.read(f"P#{project_id}")))


@pytest.fixture
def capi(cloud: Any, signer: Signer, tmp_path: Path) -> Iterator[CloudApi]:
    from chalicelib.context import SERVICES

    yield CloudApi(cloud, signer, tmp_path)
    SERVICES.service = SERVICES.submitter = SERVICES.pool = SERVICES.jwks = SERVICES.directory = None


@pytest.fixture
def victim(capi: CloudApi, shared_data: Path) -> dict[str, str]:
    """Project A (olivia's) with an uploaded slide, as the web app uploads one."""
    pid = f"a{uuid.uuid4().hex[:10]}"
    assert capi("POST", "/projects", "olivia", {"project_id": pid, "name": "A", "site": "nyc"}).status_code == 201
    r = capi("POST", f"/projects/{pid}/slides", "olivia", {"name": "secret", "filename": "secret.png",
                                                            "slide_id": "cmu1"})  # fmt: skip
    assert r.status_code == 201, r.body
    put = urllib.request.Request(
        r.json_body["upload"]["url"], data=(shared_data / "slides" / "skimage_ihc.png").read_bytes(), method="PUT",
        headers={"Content-Type": "image/png"},
    )
    with urllib.request.urlopen(put, timeout=30) as resp:
        assert resp.status == 200
    return {"project": pid, "slide": "cmu1", "source_uri": r.json_body["slide"]["source_uri"]}


@pytest.fixture
def attacker(capi: CloudApi) -> str:
    """Project B: any signed-in user may create one and is its owner."""
    pid = f"b{uuid.uuid4().hex[:10]}"
    assert capi("POST", "/projects", "oscar", {"project_id": pid, "name": "B", "site": "oslo"}).status_code == 201
    return pid


@pytest.mark.slow
def test_registering_another_projects_source_is_refused(capi, victim, attacker):
    before = capi.events(attacker)
    r = capi("POST", f"/projects/{attacker}/slides", "oscar",
             {"name": "stolen", "source_uri": victim["source_uri"], "slide_id": "loot"})  # fmt: skip
    assert r.status_code == 403, r.body
    assert r.json_body["field"] == "source_uri" and victim["project"] in r.json_body["detail"]
    assert capi.events(attacker) == before
    # Had it been registered, ingest would have copied A's slide into B's prefix for B to read.
    assert capi("POST", f"/projects/{attacker}/slides/loot/jobs", "oscar", {"job": "ingest"}).status_code == 404
    assert capi.keys(f"projects/{attacker}/") == []


def _legacy_registration(capi: CloudApi, project: str, source_uri: str, slide: str = "loot") -> None:
    """A slide registered before registration checked its source (the event log keeps it)."""
    from histolabel.commands import RegisterSlide
    from histolabel.events.catalogue import Actor

    cmd = RegisterSlide(project_id=project, name="stolen", source_uri=source_uri, slide_id=slide)
    capi.svc.execute(cmd, Actor(user="oscar", site="oslo"))


@pytest.mark.slow
def test_ingest_of_another_projects_source_is_refused_by_the_route_and_the_job(capi, victim, attacker):
    _legacy_registration(capi, attacker, victim["source_uri"])
    before = capi.events(attacker)
    r = capi("POST", f"/projects/{attacker}/slides/loot/jobs", "oscar", {"job": "ingest"})
    assert r.status_code == 403, r.body
    assert r.json_body["field"] == "source_uri" and capi.runner.list() == []
    assert capi.events(attacker) == before
    # The job itself, started by the runner as the route would start it, refuses too.
    job_id = capi.runner.submit(
        "ingest", ["--project", attacker, "--slide", "loot", "--source", victim["source_uri"]], "attack"
    )
    status = capi.runner.status(job_id)
    assert status["status"] == "FAILED" and status["exit_code"] == 2, status
    assert "outside project" in status["reason"], status["reason"]
    assert capi.keys(f"projects/{attacker}/") == []
    slide = capi.svc.project_state(attacker).slides["loot"]
    assert slide.ingest is None and "outside project" in slide.failures[-1]["reason"]
    # Nor may it write into another project's prefix.
    dest = f"s3://{capi.settings.data_bucket}/projects/{victim['project']}/slides/cmu1/image.ome.zarr"
    own = f"s3://{capi.settings.data_bucket}/projects/{attacker}/slides/loot/source/x.png"
    job_id = capi.runner.submit(
        "ingest", ["--project", attacker, "--slide", "loot", "--source", own, "--dest", dest], "attack"
    )
    assert capi.runner.status(job_id)["exit_code"] == 2
    assert capi.keys(f"projects/{victim['project']}/slides/cmu1/image.ome.zarr") == []
