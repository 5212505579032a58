"""Cancel and log of a job, through the API as deployed and the local job runner as it runs jobs:
an owner cancels a running ingest (the runner stops its process; the project records it ended,
cancelled, by whom, once), a job cancelled while it waits for a slot never starts, and the
log route shows the job's own output. The Batch adapter's half (TerminateJob, a console link)
is exercised by the same route on AWS; here its link is checked as a pure function."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from histolabel.adapters.batch import log_console_url
from histolabel.composition import service_from_env
from histolabel.localcloud.job_runner import LocalJobRunner
from tests.api.test_cloud import cloud_api, pool  # noqa: F401 - fixtures


def _wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def runner(cloud_api, tmp_path, monkeypatch) -> LocalJobRunner:  # noqa: F811
    """The API's submitter is the local job runner, reporting ends to the job-events handler."""
    from chalicelib.context import SERVICES

    from histolabel import composition

    monkeypatch.setenv("HISTOLABEL_JOB_RUNNER", "local")
    monkeypatch.setenv("HISTOLABEL_LOCAL_DIR", str(tmp_path))
    monkeypatch.setattr(composition, "_job_events_service", None)
    local = LocalJobRunner(directory=tmp_path / "jobs", on_state_change=composition.job_events_handler)
    local.directory.mkdir()
    SERVICES.submitter = local
    return local


@pytest.mark.slow
def test_owner_cancels_a_running_job_and_reads_its_log(cloud_api, cloud, runner, shared_data: Path):  # noqa: F811
    pid = f"p{uuid.uuid4().hex[:10]}"
    assert (
        cloud_api("POST", "/projects", "olivia", {"project_id": pid, "name": "x", "site": "nyc"}).status_code
        == 201
    )
    svc = service_from_env(cloud)
    source = (shared_data / "slides" / "CMU-1-Small-Region.svs").read_bytes()
    up = cloud_api("POST", f"/projects/{pid}/uploads", "olivia", {"filename": "cmu.svs", "size": len(source)})
    ref = {k: up.json_body[k] for k in ("upload_id", "slide_id", "filename")}
    urls = cloud_api(
        "POST", f"/projects/{pid}/uploads/parts", "olivia", {**ref, "part_numbers": [1]}
    ).json_body
    import urllib.request

    put = urllib.request.Request(urls["urls"]["1"], data=source, method="PUT")
    put.add_header("Content-Type", "")
    with urllib.request.urlopen(put, timeout=60) as res:
        assert res.status == 200
    done = cloud_api("POST", f"/projects/{pid}/uploads/complete", "olivia", ref)
    assert done.status_code == 201, done.body
    job_id, sid = done.json_body["job_id"], ref["slide_id"]

    # The ingest runs (its process is up); an annotator may not cancel it, the owner may.
    record = _wait(lambda: (r := runner.status(job_id))["status"] == "RUNNING" and r, 120, "ingest running")
    pid_of_job = int(record["pid"])
    assert cloud_api("POST", f"/projects/{pid}/jobs/{job_id}/cancel", "ana").status_code == 403
    r = cloud_api("POST", f"/projects/{pid}/jobs/{job_id}/cancel", "olivia")
    assert r.status_code == 200, r.body
    assert r.json_body == {"job_id": job_id, "job": "ingest", "status": "FAILED", "cause": "cancelled",
                           "reason": "ingest job cancelled by olivia"}  # fmt: skip
    # Recorded at once, by the owner: the slide shows why its pipeline stopped.
    ended = [e for e in svc.events.read(f"P#{pid}") if e.type == "JobEnded"]
    assert len(ended) == 1 and ended[0].actor_user == "olivia" and ended[0].payload["cause"] == "cancelled"
    slide = cloud_api("GET", f"/projects/{pid}/slides/{sid}", "olivia").json_body
    assert slide["failures"][-1]["reason"] == "ingest job cancelled by olivia", slide
    # The runner stopped the process; its record says how the job ended.
    final = _wait(lambda: (r := runner.status(job_id))["status"] == "FAILED" and r, 60, "the runner's end")
    assert "cancelled by olivia" in final["reason"] and final["exit_code"] == 128 + 15, final
    with pytest.raises(ProcessLookupError):
        os.kill(pid_of_job, 0)
    # The runner's own report of the end added no twin, and started no next step.
    state = svc.project_state(pid)
    assert [e.type for e in svc.events.read(f"P#{pid}")].count("JobEnded") == 1
    assert [j["job"] for j in state.jobs.values()] == ["ingest"]
    assert state.jobs[job_id]["cause"] == "cancelled"
    jobs = cloud_api("GET", f"/projects/{pid}/jobs", "olivia").json_body["jobs"]
    assert jobs[0]["status"] == "FAILED" and "cancelled by olivia" in jobs[0]["reason"]

    # Cancelling it again, or another project's job, is refused in words, writing nothing.
    before = len(list(svc.events.read(f"P#{pid}")))
    again = cloud_api("POST", f"/projects/{pid}/jobs/{job_id}/cancel", "olivia")
    assert again.status_code == 409 and "already ended" in again.json_body["detail"], again.body
    missing = cloud_api("POST", f"/projects/{pid}/jobs/local-nope/cancel", "olivia")
    assert missing.status_code == 404 and missing.json_body["field"] == "job_id"
    assert len(list(svc.events.read(f"P#{pid}"))) == before

    # The log: what the job wrote before it was stopped (no console link locally).
    log = cloud_api("GET", f"/projects/{pid}/jobs/{job_id}/log", "olivia")
    assert log.status_code == 200 and log.json_body["url"] is None
    assert log.json_body["text"] == (runner.directory / f"{job_id}.log").read_text()
    assert cloud_api("GET", f"/projects/{pid}/jobs/{job_id}/log", "ana").status_code == 403
    assert cloud_api("GET", f"/projects/{pid}/jobs/local-nope/log", "olivia").status_code == 404


def test_a_job_cancelled_while_it_waits_never_starts(tmp_path: Path) -> None:
    reports: list[dict[str, Any]] = []
    runner = LocalJobRunner(directory=tmp_path, on_state_change=lambda e, _: reports.append(e["detail"]))
    slots = [runner._slots.acquire(blocking=False) for _ in range(64)]  # every slot taken
    job_id = runner.submit("ingest", ["--project", "p1", "--slide", "s1"], "histolabel-ingest-p1-s1")
    assert runner.status(job_id)["status"] == "SUBMITTED"
    runner.cancel(job_id, "cancelled by olivia")
    for taken in slots:
        if taken:
            runner._slots.release()
    _wait(lambda: runner.status(job_id)["status"] == "FAILED", 30, "the cancelled job's end")
    record = runner.status(job_id)
    assert "pid" not in record and record["exit_code"] is None and "cancelled by olivia" in record["reason"]
    assert len(reports) == 1 and reports[0]["statusReason"] == "cancelled by olivia"
    from histolabel.job_outcomes import outcome_of

    outcome = outcome_of(reports[0])
    assert outcome is not None and outcome.cause == "cancelled" and outcome.context.slide_id == "s1"
    # A job that has ended is left as it ended.
    runner.cancel(job_id, "cancelled by ben")
    assert "olivia" in runner.status(job_id)["reason"]


def test_batch_log_link_is_the_console_page_of_the_stream() -> None:
    url = log_console_url("eu-central-1", "histolabel-prod-ingest/default/0123abcd")
    assert url.startswith("https://eu-central-1.console.aws.amazon.com/cloudwatch/home?region=eu-central-1#")
    assert url.endswith(
        "log-group/$252Faws$252Fbatch$252Fjob/log-events/histolabel-prod-ingest$252Fdefault$252F0123abcd"
    )


def test_a_terminated_batch_job_reads_as_cancelled_not_as_its_signal() -> None:
    from histolabel.job_outcomes import outcome_of, state_change_detail

    command = ["python", "-m", "gpu_jobs.segment", "--project", "p1", "--slide", "s1"]
    # What Batch reports after TerminateJob(reason=...) of a running job: SIGTERM's exit code.
    detail = state_change_detail(
        "j1", "n", "q", command, "FAILED", exit_code=143, status_reason="cancelled by olivia"
    )
    outcome = outcome_of(detail)
    assert outcome is not None and outcome.cause == "cancelled"
    assert outcome.reason == "segment job cancelled by olivia"
    # A job killed by SIGTERM for another reason still says so.
    other = outcome_of(state_change_detail("j2", "n", "q", command, "FAILED", exit_code=143))
    assert other is not None and other.cause == "signal" and "SIGTERM" in other.reason
