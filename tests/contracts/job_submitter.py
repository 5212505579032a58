"""The job submitter contract (`histolabel.jobs.CancellableSubmitter`): a submission answers a
fresh id that `status` knows, an unknown kind is refused before anything starts, an unknown id
reads as UNKNOWN, every job reaches an end, a cancel of a job that has not ended ends it FAILED
with the reason, and the log answers its documented shape.

A harness is the submitter plus how long its jobs may take to end (Batch on the emulator ends
them at once, local processes take seconds on a busy machine)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest

from histolabel.job_outcomes import TERMINAL
from histolabel.jobs import JOB_KINDS, CancellableSubmitter, JobKind, JobSubmissionError, job_name
from tests.contracts.checks import Checks

CHECKS = Checks()
check = CHECKS.check

# AWS Batch's job states, and the one a submitter answers for an id it never made.
STATES = {"SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED", "UNKNOWN"}
# A real job's own argument parser answers --help and exits 0 without touching the cloud.
QUICK = ["--help"]


@dataclass
class Harness:
    submitter: CancellableSubmitter
    deadline_s: float = 120.0
    # Kinds to start whole: every kind where a job is cheap (Batch on the emulator), a CPU and a
    # GPU kind where each is a process importing torch (about 10 s each on a busy machine).
    kinds: tuple[JobKind, ...] = JOB_KINDS

    def wait_end(self, job_id: str) -> dict[str, Any]:
        end = time.monotonic() + self.deadline_s
        while True:
            status = self.submitter.status(job_id)
            if status["status"] in TERMINAL or time.monotonic() > end:
                return status
            time.sleep(0.2)


@check
def a_submission_answers_a_fresh_id_that_status_knows(h: Harness) -> None:
    first = h.submitter.submit("ingest", QUICK, job_name("ingest", "contract", "s1"))
    second = h.submitter.submit("ingest", QUICK, job_name("ingest", "contract", "s2"))
    assert first and second and first != second
    for job_id in (first, second):
        status = h.submitter.status(job_id)
        assert status["job_id"] == job_id
        assert status["status"] in STATES - {"UNKNOWN"}, status


@check
def an_unknown_kind_is_refused(h: Harness) -> None:
    with pytest.raises(JobSubmissionError, match="nope"):
        h.submitter.submit("nope", QUICK, "histolabel-nope")  # type: ignore[arg-type]


@check
def an_unknown_id_reads_as_unknown(h: Harness) -> None:
    status = h.submitter.status("no-such-job-0000")
    assert status["status"] == "UNKNOWN" and status["job_id"] == "no-such-job-0000"


@check
def each_kind_can_be_submitted_and_ends(h: Harness) -> None:
    ids = {kind: h.submitter.submit(kind, QUICK, job_name(kind, "contract")) for kind in h.kinds}
    for kind, job_id in ids.items():
        assert h.wait_end(job_id)["status"] in TERMINAL, kind


@check
def a_cancel_ends_a_job_failed_with_the_reason_unless_it_had_ended(h: Harness) -> None:
    job_id = h.submitter.submit("segment", QUICK, job_name("segment", "contract"))
    before = h.submitter.status(job_id)["status"]
    h.submitter.cancel(job_id, "cancelled by the contract")
    ended = h.wait_end(job_id)
    assert ended["status"] in TERMINAL, ended
    if before not in TERMINAL:
        assert ended["status"] == "FAILED", ended
        assert "cancelled by the contract" in str(ended.get("reason", "")), ended


@check
def cancelling_an_ended_job_is_harmless(h: Harness) -> None:
    job_id = h.submitter.submit("embed", QUICK, job_name("embed", "contract"))
    ended = h.wait_end(job_id)["status"]
    h.submitter.cancel(job_id, "too late")
    assert h.submitter.status(job_id)["status"] == ended


@check
def the_log_answers_its_shape(h: Harness) -> None:
    job_id = h.submitter.submit("train", QUICK, job_name("train", "contract"))
    h.wait_end(job_id)
    log = h.submitter.log(job_id)
    assert set(log) >= {"text", "truncated", "url"}
    assert log["text"] is None or isinstance(log["text"], str)
    assert isinstance(log["truncated"], bool)
    assert log["text"] is not None or log["url"], "a log says its text or where it is"
