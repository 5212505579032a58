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
from histolabel.commands import AddCategory, RegisterSlide
from histolabel.composition import job_events_handler, service_from_env
from histolabel.events.catalogue import Actor
from histolabel.localcloud.job_runner import LocalJobRunner
from tests.api.conftest import POOL, Signer, directory

OSCAR = Actor(user="oscar", site="oslo")


class CloudApi:
    def __init__(self, cloud: Any, signer: Signer, jobs: Path) -> None:
        from app import app
        from chalice.test import Client
        from chalicelib.context import SERVICES

        self.settings = cloud
        self.svc = service_from_env(cloud)
        self.runner = LocalJobRunner(jobs, wait=True, on_state_change=job_events_handler)
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
    assert (
        capi("POST", "/projects", "olivia", {"project_id": pid, "name": "A", "site": "nyc"}).status_code
        == 201
    )
    r = capi(
        "POST",
        f"/projects/{pid}/slides",
        "olivia",
        {"name": "secret", "filename": "secret.png", "slide_id": "cmu1"},
    )
    assert r.status_code == 201, r.body
    put = urllib.request.Request(
        r.json_body["upload"]["url"],
        data=(shared_data / "slides" / "skimage_ihc.png").read_bytes(),
        method="PUT",
        headers={"Content-Type": "image/png"},
    )
    with urllib.request.urlopen(put, timeout=30) as resp:
        assert resp.status == 200
    return {"project": pid, "slide": "cmu1", "source_uri": r.json_body["slide"]["source_uri"]}


@pytest.fixture
def attacker(capi: CloudApi) -> str:
    """Project B: any signed-in user may create one and is its owner."""
    pid = f"b{uuid.uuid4().hex[:10]}"
    assert (
        capi("POST", "/projects", "oscar", {"project_id": pid, "name": "B", "site": "oslo"}).status_code
        == 201
    )
    return pid


@pytest.mark.slow
def test_registering_another_projects_source_is_refused(capi, victim, attacker):
    before = capi.events(attacker)
    r = capi(
        "POST",
        f"/projects/{attacker}/slides",
        "oscar",
        {"name": "stolen", "source_uri": victim["source_uri"], "slide_id": "loot"},
    )
    assert r.status_code == 403, r.body
    assert r.json_body["field"] == "source_uri" and victim["project"] in r.json_body["detail"]
    assert capi.events(attacker) == before
    # Had it been registered, ingest would have copied A's slide into B's prefix for B to read.
    assert (
        capi("POST", f"/projects/{attacker}/slides/loot/jobs", "oscar", {"job": "ingest"}).status_code == 404
    )
    assert capi.keys(f"projects/{attacker}/") == []


def _legacy_registration(capi: CloudApi, project: str, source_uri: str, slide: str = "loot") -> None:
    """A slide registered before registration checked its source (the event log keeps it)."""
    cmd = RegisterSlide(project_id=project, name="stolen", source_uri=source_uri, slide_id=slide)
    capi.svc.execute(cmd, OSCAR)


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


@pytest.fixture
def victim_outputs(capi: CloudApi, victim: dict[str, str]) -> dict[str, str]:
    """A's segmentation and predictions where A's jobs write them (written here directly: the
    routes under test only read them)."""
    import numpy as np
    import pyarrow as pa

    from histolabel.adapters import pyramids

    base = f"s3://{capi.settings.data_bucket}/projects/{victim['project']}"
    slide = f"{base}/slides/cmu1"
    group = pyramids.open_group(f"{slide}/image.ome.zarr/labels/superpixels", "w")
    group.attrs.update(
        {"ome": {"multiscales": [{"datasets": [{"path": "0"}]}]}, "histolabel": {"image_level": 0}}
    )
    group.create_array("0", shape=(64, 64), dtype="uint32", chunks=(64, 64))[:] = np.ones((64, 64), np.uint32)
    one = {
        "id": [1],
        "y0": [0],
        "x0": [0],
        "y1": [64],
        "x1": [64],
        "cy": [32.0],
        "cx": [32.0],
        "area": [4096],
        "level": [0],
    }
    pyramids.write_table(pa.table(one), f"{slide}/superpixels.parquet")
    pred = {
        "id": np.array([1], np.int64),
        "prob_tumor": np.array([0.9], np.float32),
        "certainty": np.array([0.9], np.float32),
    }
    pyramids.write_table(pa.table(pred), f"{base}/predictions/v1/loot.parquet")
    return {"slide": slide, "predictions": f"{base}/predictions/v1"}


def _misdirected_jobs(capi: CloudApi, project: str, outputs: dict[str, str]) -> None:
    """B's state naming A's objects, as a misdirected (or forged) job report would record them."""
    _legacy_registration(
        capi, project, f"s3://{capi.settings.data_bucket}/projects/{project}/slides/loot/source/x"
    )
    capi.svc.execute(AddCategory(project_id=project, name="tumor"), OSCAR)
    slide = outputs["slide"]
    capi.svc.record_job_event(
        project,
        "SegmentationCompleted",
        {
            "slide_id": "loot",
            "count": 1,
            "labels_uri": f"{slide}/image.ome.zarr/labels/superpixels",
            "table_uri": f"{slide}/superpixels.parquet",
            "superpixel_size": 64,
            "compactness": 10,
        },
        job="segment",
    )
    capi.svc.request_training(project, OSCAR)
    request_id = next(iter(capi.svc.project_state(project).training))
    capi.svc.record_job_event(
        project, "TrainingStarted", {"request_id": request_id, "job_id": "j"}, job="train"
    )
    capi.svc.record_job_event(
        project,
        "TrainingCompleted",
        {
            "request_id": request_id,
            "model_version": 1,
            "model_uri": f"{outputs['predictions']}/m",
            "metrics": {},
        },
        job="train",
    )
    capi.svc.record_job_event(
        project,
        "PredictionsPublished",
        {
            "model_version": 1,
            "uri_prefix": outputs["predictions"],
            "slides": ["loot"],
            "metric": "confidence",
        },
        job="predict",
    )


@pytest.mark.slow
def test_no_route_serves_another_projects_object(capi, victim, victim_outputs, attacker):
    _misdirected_jobs(capi, attacker, victim_outputs)
    b = f"/projects/{attacker}"
    for path in (
        f"{b}/slides/loot/predictions",
        f"{b}/review",
        f"{b}/export?format=geojson",
        f"{b}/export?format=csv",
        f"{b}/agreement",
    ):
        r = capi("GET", path, "oscar")
        assert r.status_code == 403, (path, r.status_code, r.body[:300])
        assert r.json_body["error"] == "forbidden" and attacker in r.json_body["detail"], path
    # The brush reads the superpixel table; the queue leaves out the geometry it cannot read.
    square = {"category_id": "tumor", "polygon": [[0, 0], [64, 0], [64, 64], [0, 64]]}
    r = capi("POST", f"{b}/slides/loot/labels", "oscar", square)
    assert r.status_code == 403 and r.json_body["field"] == "slide_id", r.body
    # The data routes join the key to the slide's own prefix and refuse any way out of it.
    escape = f"../../../../{victim['project']}/slides/cmu1/source/secret.png"
    for key in (escape, f"/projects/{victim['project']}/slides/cmu1/source/secret.png", "source//../x"):
        r = capi("GET", f"{b}/slides/loot/data?key={key}", "oscar")
        assert r.status_code in (400, 422) and r.json_body["field"] == "key", (key, r.body)
        r = capi("POST", f"{b}/slides/loot/data/urls", "oscar", {"keys": [key]})
        assert r.status_code in (400, 422) and "Location" not in r.headers, (key, r.body)
    # And a member of A is not a member of B: A's own routes refuse oscar outright.
    assert (
        capi(
            "GET", f"/projects/{victim['project']}/slides/cmu1/data?key=source/secret.png", "oscar"
        ).status_code
        == 403
    )
    assert capi.keys(f"projects/{attacker}/") == []


@pytest.mark.slow
def test_an_allow_listed_bucket_admits_each_project_its_own_prefix_only(
    capi, attacker, victim, shared_data, monkeypatch
):
    from histolabel.config import get_settings

    s3 = client("s3", capi.settings)
    bucket = f"scans-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    png = (shared_data / "slides" / "skimage_ihc.png").read_bytes()
    for project in (attacker, victim["project"]):
        s3.put_object(Bucket=bucket, Key=f"lab/{project}/ihc.png", Body=png)
    monkeypatch.setenv("HISTOLABEL_SOURCE_PREFIXES", f"s3://{bucket}/lab/{{project}}/")
    get_settings.cache_clear()
    try:
        theirs = capi(
            "POST",
            f"/projects/{attacker}/slides",
            "oscar",
            {"name": "x", "source_uri": f"s3://{bucket}/lab/{victim['project']}/ihc.png"},
        )
        assert theirs.status_code == 403 and theirs.json_body["field"] == "source_uri", theirs.body
        mine = capi(
            "POST",
            f"/projects/{attacker}/slides",
            "oscar",
            {"name": "x", "source_uri": f"s3://{bucket}/lab/{attacker}/ihc.png", "slide_id": "ihc"},
        )
        assert mine.status_code == 201, mine.body
        job = capi("POST", f"/projects/{attacker}/slides/ihc/jobs", "oscar", {"job": "ingest"})
        assert job.status_code == 202, job.body
        assert capi.runner.status(job.json_body["job_id"])["status"] == "SUCCEEDED"
        assert capi.svc.project_state(attacker).slides["ihc"].ingest["width"] == 512
    finally:
        monkeypatch.delenv("HISTOLABEL_SOURCE_PREFIXES")
        get_settings.cache_clear()


@pytest.mark.slow
def test_segment_and_embed_jobs_refuse_another_projects_objects(capi, victim, victim_outputs, attacker):
    _misdirected_jobs(capi, attacker, victim_outputs)
    theirs = f"{victim_outputs['slide']}/image.ome.zarr"
    capi.svc.record_job_event(attacker, "SlideIngested", {"slide_id": "loot", "zarr_uri": theirs, "width": 64,
                              "height": 64, "levels": 1}, job="ingest")  # fmt: skip
    before = capi.keys(f"projects/{victim['project']}/")
    # The jobs' entry points in this process (the runner's processes are tested above for ingest).
    from gpu_jobs import embed, segment
    from gpu_jobs.common import run

    for job, main, args in [("segment", segment.main, ["--image", theirs]),
                            ("embed", embed.main, ["--kind", "handcrafted"])]:  # fmt: skip
        assert run(main, ["--project", attacker, "--slide", "loot", *args]) == 2, job
        failure = capi.svc.project_state(attacker).slides["loot"].failures[-1]
        assert failure["job"] == job and "outside project" in failure["reason"], failure
    assert capi.keys(f"projects/{victim['project']}/") == before
    assert capi.keys(f"projects/{attacker}/") == []
