"""Every way a job ends reaches its project: jobs run by the local job runner as real processes,
which reports their end to the job-events handler (the deployed Lambda's body) with the same
"Batch Job State Change" event EventBridge sends; the API answers for the job ids it stores."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from histolabel.commands import ChangeSettings, RegisterSlide
from histolabel.events.catalogue import ProjectSettings
from histolabel.events.envelope import project_stream
from histolabel.localcloud.job_runner import LocalJobRunner
from histolabel.service import HistoLabel
from histolabel.training_requests import handle_training_requested
from tests.api.conftest import POOL, Signer
from tests.integration.conftest import OWNER, make_project

DEADLINE_S = 120


def wait_for(what: str, check: Callable[[], Any], deadline_s: float = DEADLINE_S) -> Any:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def runner(cloud: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalJobRunner:
    """The runner the local stack uses; jobs the handler chains go to the same place."""
    monkeypatch.setenv("HISTOLABEL_JOB_RUNNER", "local")
    monkeypatch.setenv("HISTOLABEL_LOCAL_DIR", str(tmp_path))
    from histolabel.composition import job_events_handler

    return LocalJobRunner(on_state_change=job_events_handler)


@pytest.fixture
def client(cloud: Any, svc: HistoLabel, runner: LocalJobRunner) -> Iterator[Callable[..., Any]]:
    """The API in-process over the local cloud, with the local runner as its submitter."""
    from app import app
    from chalice.test import Client
    from chalicelib.context import SERVICES

    signer = Signer("job-events-key")
    SERVICES.service, SERVICES.submitter, SERVICES.pool = svc, runner, POOL
    SERVICES.jwks = lambda kid: signer.jwk if kid == signer.kid else None
    http = Client(app).http

    def call(method: str, path: str, body: Any = None) -> Any:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {signer.token(OWNER.user)}"}
        return http.request(method, path, headers=headers, body=json.dumps(body) if body is not None else b"")

    yield call
    SERVICES.service = SERVICES.submitter = SERVICES.pool = SERVICES.jwks = None


def start_training(svc: HistoLabel, runner: LocalJobRunner, project_id: str) -> tuple[str, str]:
    """Retrain as the API asks for it, and the trigger's submission, as the runtime runs it."""
    svc.request_training(project_id, OWNER)
    requested = [e for e in svc.events.read(project_stream(project_id)) if e.type == "TrainingRequested"][-1]
    started = handle_training_requested(svc, runner, requested)
    assert started.submitted and started.job_id, started
    return str(requested.payload["request_id"]), started.job_id


def test_a_train_job_killed_with_sigkill_fails_its_run_and_retrain_starts_a_new_one(
    svc, runner, client, project_id
):
    make_project(svc, project_id)
    request_id, job_id = start_training(svc, runner, project_id)
    # The run answers for the id the runner returned, and so does the job-status route.
    assert svc.project_state(project_id).training[request_id].job_id == job_id
    pid = wait_for("the train process", lambda: runner.status(job_id).get("pid"))
    os.kill(pid, signal.SIGKILL)

    run = wait_for(
        "the run to fail",
        lambda: (r := svc.project_state(project_id).training[request_id]).status == "failed" and r,
    )
    assert "SIGKILL" in run.reason_failed and run.reason_failed.startswith("train job killed")
    job = svc.project_state(project_id).jobs[job_id]
    assert job["status"] == "FAILED" and job["cause"] == "signal" and job["exit_code"] == 137
    status = client("GET", f"/projects/{project_id}/jobs/{job_id}")
    assert status.status_code == 200, status.body
    body = json.loads(status.body)
    assert body["outcome"]["cause"] == "signal" and "SIGKILL" in body["outcome"]["reason"]

    again = client("POST", f"/projects/{project_id}/training")
    assert again.status_code in (200, 201, 202), again.body
    runs = svc.project_state(project_id).training
    assert len(runs) == 2 and [r.status for r in runs.values()].count("requested") == 1


def test_a_job_past_its_timeout_is_killed_and_fails_its_run(svc, runner, project_id):
    make_project(svc, project_id)
    runner.timeout_s = 0.3  # far less than the interpreter needs to load the job
    request_id, job_id = start_training(svc, runner, project_id)
    run = wait_for(
        "the run to fail",
        lambda: (r := svc.project_state(project_id).training[request_id]).status == "failed" and r,
    )
    assert run.reason_failed.startswith("train job timed out")
    assert svc.project_state(project_id).jobs[job_id]["cause"] == "timeout"


def test_a_job_that_exits_non_zero_leaves_one_failure_on_its_slide(svc, runner, project_id):
    make_project(svc, project_id)
    image = f"s3://{svc.settings.data_bucket}/projects/{project_id}/slides/s1/nothing.ome.zarr"
    args = ["--project", project_id, "--slide", "s1", "--image", image, "--progress", "off"]
    job_id = runner.submit("segment", args, "segment-missing")
    slide = wait_for(
        "the failure on the slide",
        lambda: (
            (s := svc.project_state(project_id).slides["s1"]).failures
            and svc.project_state(project_id).jobs.get(job_id, {}).get("status")
            and s
        ),
    )
    # The job said why (JobFailed) and its runner said how it ended (JobEnded): one failure.
    assert len(slide.failures) == 1 and slide.failures[0]["job_id"] == job_id
    job = svc.project_state(project_id).jobs[job_id]
    assert job["cause"] == "exit" and job["exit_code"] == 2 and "exit code 2" in job["reason"]
    assert runner.status(job_id)["status"] == "FAILED"


def test_a_repeated_state_change_records_nothing_twice(svc, runner, project_id):
    from histolabel.composition import job_events_handler as handler
    from histolabel.job_outcomes import state_change_detail
    from histolabel.localcloud.job_runner import state_change_event

    make_project(svc, project_id)
    command = ["python", "-m", "gpu_jobs.embed", "--project", project_id, "--slide", "s1"]
    event = state_change_event(state_change_detail("aws-1", "n", "q", command, "FAILED", exit_code=137))
    before = svc.events.head(project_stream(project_id))[0]
    first, second = handler(event, None), handler(event, None)
    assert first["recorded"] and not second["recorded"]
    assert svc.events.head(project_stream(project_id))[0] == before + 1
    assert svc.project_state(project_id).slides["s1"].failures[0]["cause"] == "signal"


@pytest.mark.slow
def test_ingest_chains_segment_and_embed_with_the_projects_settings(
    svc, runner, client, project_id, shared_data
):
    make_project(svc, project_id, slides=())
    settings = ProjectSettings(superpixel_size=24, compactness=12.0, magnification=5.0)
    svc.execute(ChangeSettings(project_id=project_id, settings=settings), OWNER)
    from histolabel.adapters.s3 import filesystem

    source = f"{svc.settings.data_bucket}/projects/{project_id}/slides/cmu1/source/CMU-1-Small-Region.svs"
    filesystem(svc.settings).put_file(str(shared_data / "slides" / "CMU-1-Small-Region.svs"), source)
    svc.execute(
        RegisterSlide(project_id=project_id, slide_id="cmu1", name="CMU-1", source_uri=f"s3://{source}"),
        OWNER,
    )

    started = client("POST", f"/projects/{project_id}/slides/cmu1/jobs", {"job": "ingest"})
    assert started.status_code == 202, started.body
    slide = wait_for(
        "features",
        lambda: (s := svc.project_state(project_id).slides["cmu1"]).features.get("handcrafted") and s,
        300,
    )
    assert slide.segmentation["superpixel_size"] == 24 and slide.segmentation["compactness"] == 12.0
    events = list(svc.events.read(project_stream(project_id)))
    chained = [e.payload["job"] for e in events if e.type == "JobSubmitted" and e.actor_user == "job:events"]
    assert chained == ["segment", "embed"]  # each step once, by the handler, none by a client
    ended = wait_for("three ends", lambda: len([e for e in svc.events.read(project_stream(project_id))
                                                if e.type == "JobEnded"]) == 3)  # fmt: skip
    assert ended
    jobs = svc.project_state(project_id).jobs
    assert sorted(j["job"] for j in jobs.values() if j.get("status") == "SUCCEEDED") == [
        "embed",
        "ingest",
        "segment",
    ]
