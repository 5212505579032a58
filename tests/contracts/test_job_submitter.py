"""The job submitter contract against the local runner (real processes, as `scripts/dev up`
starts jobs) and broken submitters that it must catch. The Batch adapter runs the same checks
against the deployed stack's queues in tests/infra/test_deploy.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from histolabel.jobs import JOB_KINDS, JobKind
from histolabel.localcloud.job_runner import LocalJobRunner
from tests.contracts.job_submitter import CHECKS, Harness


def local(directory: Path) -> Any:
    return lambda: Harness(LocalJobRunner(directory=directory), deadline_s=180, kinds=("ingest", "train"))


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_contract(tmp_path: Path, name: str) -> None:
    CHECKS[name](local(tmp_path)())


class SameId(LocalJobRunner):
    """Names its jobs after their name: a second export of the same slide overwrites the first."""

    def submit(self, job: JobKind, args: list[str], name: str) -> str:
        job_id = super().submit(job, args, name)
        (self.directory / f"{job_id}.json").replace(self.directory / f"{name}.json")
        return name


class AnyKind(LocalJobRunner):
    """Starts whatever kind it is given: a typo becomes a job that fails after minutes in a queue."""

    def submit(self, job: JobKind, args: list[str], name: str) -> str:
        return super().submit(JOB_KINDS[0] if job not in JOB_KINDS else job, args, name)


class DeafToCancel(LocalJobRunner):
    """Accepts a cancel and lets the job run on."""

    def cancel(self, job_id: str, reason: str) -> None:
        return None


@pytest.mark.parametrize(
    ("broken", "caught_by"),
    [
        (SameId, "a_submission_answers_a_fresh_id_that_status_knows"),
        (AnyKind, "an_unknown_kind_is_refused"),
        (DeafToCancel, "a_cancel_ends_a_job_failed_with_the_reason_unless_it_had_ended"),
    ],
)
def test_a_broken_submitter_fails_the_contract(tmp_path: Path, broken: type, caught_by: str) -> None:
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        CHECKS[caught_by](Harness(broken(directory=tmp_path), deadline_s=30))
