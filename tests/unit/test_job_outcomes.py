"""How a job ended, read from Batch "Job State Change" details as AWS Batch sends them."""

from __future__ import annotations

from pathlib import Path

import pytest

from histolabel.job_outcomes import NotOurJob, job_context, outcome_of, state_change_detail
from histolabel.jobs import JOB_KINDS

TRAIN = ["python", "-m", "gpu_jobs.train", "--project", "p1", "--request", "t1"]
SEGMENT = ["python", "-m", "gpu_jobs.segment", "--project", "p1", "--slide", "s1", "--superpixel-size", "64"]


def aws_detail(command: list[str], status: str = "FAILED", **attempt: object) -> dict:
    """The shape EventBridge delivers (trimmed to what a handler may read), e.g. from
    https://docs.aws.amazon.com/batch/latest/userguide/batch_job_events.html"""
    container = {k: v for k, v in attempt.items() if k in ("exitCode", "reason")}
    return {
        "jobName": "histolabel-x", "jobId": "4c7599ae-0a82-49aa-ba5a-4727fcce14a8",
        "jobQueue": "arn:aws:batch:us-east-1:123456789012:job-queue/histolabel-dev-gpu",
        "status": status, "statusReason": attempt.get("statusReason", "Essential container in task exited"),
        "attempts": [{"container": container, "statusReason": attempt.get("statusReason", "")}],
        "container": {"command": command, **container},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("attempt", "cause", "words"),
    [
        ({"exitCode": 2}, "exit", "exit code 2"),
        ({"exitCode": 137}, "signal", "SIGKILL"),
        ({"exitCode": 143}, "signal", "SIGTERM"),
        ({"exitCode": 137, "reason": "OutOfMemoryError: Container killed due to memory usage"}, "oom",
         "OutOfMemoryError"),
        ({"statusReason": "Job attempt duration exceeded timeout"}, "timeout", "timed out"),
        ({"statusReason": "Host EC2 (instance i-0a1b2c3d4e5f6) terminated."}, "host", "i-0a1b2c3d4e5f6"),
        ({"exitCode": 1, "reason": "MemoryError"}, "oom", "out of memory"),
    ],
)  # fmt: skip
def test_each_way_a_job_fails_is_named_with_its_reason(attempt, cause, words):
    outcome = outcome_of(aws_detail(TRAIN, **attempt))
    assert outcome is not None and outcome.status == "FAILED"
    assert outcome.cause == cause
    assert words in outcome.reason and outcome.reason.startswith("train job ")
    assert outcome.context.project_id == "p1" and outcome.context.request_id == "t1"
    data = outcome.event_data()
    assert data["job"] == "train" and data["request_id"] == "t1" and data["slide_id"] is None


def test_success_and_passing_states():
    ok = outcome_of(aws_detail(SEGMENT, status="SUCCEEDED", exitCode=0))
    assert ok is not None and ok.succeeded and ok.cause == "succeeded" and ok.exit_code == 0
    assert ok.context.slide_id == "s1" and ok.context.job == "segment"
    for passing in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"):
        assert outcome_of(aws_detail(SEGMENT, status=passing)) is None


def test_a_job_that_is_not_ours_is_refused_by_name():
    with pytest.raises(NotOurJob, match="gpu_jobs"):
        outcome_of(aws_detail(["sh", "-c", "echo hi"]))
    with pytest.raises(NotOurJob, match="--project"):
        job_context(["python", "-m", "gpu_jobs.ingest", "--slide", "s1"])


def test_the_local_runners_detail_reads_like_batchs():
    detail = state_change_detail("local-1", "n", "local", SEGMENT, "FAILED", exit_code=137)
    outcome = outcome_of(detail)
    assert outcome is not None and outcome.cause == "signal" and "SIGKILL" in outcome.reason


def test_the_job_events_lambda_loads_no_heavy_module():
    """The handler's module imports what a light Lambda zip can hold: no numpy, torch, pyarrow..."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    heavy = ("numpy", "torch", "pyarrow", "skimage", "scipy", "zarr", "s3fs", "shapely")
    code = (
        "import sys, handlers.job_events as h, histolabel.composition as c\n"
        f"print(h.handler is c.job_events_handler, sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "functions")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["True", "[]"], out.stdout + out.stderr


@pytest.mark.parametrize("kind", JOB_KINDS)
def test_every_kind_of_the_job_table_is_ours(kind):
    """The job table is the one list of kinds: each one's end is recorded (the import kinds'
    ends were once dropped as "not ours": job_outcomes kept its own shorter list)."""
    command = ["python", "-m", f"gpu_jobs.{kind}", "--project", "p1", "--slide", "s1"]
    ended = outcome_of(aws_detail(command, exitCode=1))
    assert ended is not None and ended.context.job == kind and ended.context.slide_id == "s1"
    assert ended.reason.startswith(f"{kind} job ")
    assert (Path(__file__).parents[2] / "gpu_jobs" / f"{kind}.py").is_file()
