"""The local runner's warm spare interpreters: a job started in one runs as a fresh
`python -m` process would (its module as __main__, its argv, its whole environment, its log,
its exit status), only without waiting for the imports; a spare made for another environment
is not used."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from histolabel.localcloud.job_runner import SPARES, LocalJobRunner
from histolabel.localcloud.warm import Spares

pytestmark = pytest.mark.slow  # four interpreters importing torch

PROBE = """
import os, sys
print("argv", sys.argv[1:])
print("job", os.environ.get("AWS_BATCH_JOB_ID"), os.environ.get("PROBE_MARK"))
print("torch already imported", "torch" in sys.modules, flush=True)
sys.exit(3)
"""


def _wait_ready(spares: Spares) -> int:
    """The spare's pid, once it has done its imports."""
    spare = spares._spare
    assert spare is not None and spare.wait_ready()
    return spare.proc.pid


def test_a_job_in_a_spare_runs_as_a_fresh_process_would(tmp_path: Path) -> None:
    (tmp_path / "probe_job.py").write_text(PROBE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]), "PROBE_MARK": "one"}
    spares = Spares()
    cmd = [sys.executable, "-m", "probe_job", "--flag", "x y"]

    cold = spares.start(cmd, {**env, "AWS_BATCH_JOB_ID": "j1"}, tmp_path / "1.log")
    assert cold.wait(timeout=300) == 3
    assert "torch already imported False" in (tmp_path / "1.log").read_text()
    spares.refill(env)  # as the runner does when it starts a job
    spare_pid = _wait_ready(spares)

    warm = spares.start(cmd, {**env, "AWS_BATCH_JOB_ID": "j2"}, tmp_path / "2.log")
    assert warm.pid == spare_pid  # the job ran in the spare made after the first job
    assert warm.wait(timeout=300) == 3
    log = (tmp_path / "2.log").read_text()
    assert "argv ['--flag', 'x y']" in log
    assert "job j2 one" in log
    assert "torch already imported True" in log
    spares.refill(env)

    # Another environment: the spare made for the old one is not used.
    next_spare = _wait_ready(spares)
    other = spares.start(cmd, {**env, "PROBE_MARK": "two"}, tmp_path / "3.log")
    assert other.pid != next_spare
    assert other.wait(timeout=300) == 3
    assert "torch already imported False" in (tmp_path / "3.log").read_text()
    assert "job None two" in (tmp_path / "3.log").read_text()
    assert spares._spare is None  # dropped (it exits once its stdin closes)


def test_the_runner_reports_a_warm_jobs_outcome_like_a_cold_ones(tmp_path: Path) -> None:
    """Through the runner: the train job's argument error ends FAILED with exit 2 either way."""
    runner = LocalJobRunner(tmp_path, wait=True, on_state_change=None)
    first = runner.status(runner.submit("train", ["--bogus"], "cold"))
    spare_pid = _wait_ready(SPARES)
    second = runner.status(runner.submit("train", ["--bogus"], "warm"))
    assert second["pid"] == spare_pid
    for rec in (first, second):
        assert (rec["status"], rec["exit_code"]) == ("FAILED", 2)
        assert "--project" in Path(rec["log"]).read_text()  # argparse's usage, in the job's log
    assert SPARES._spare is not None
    SPARES._spare.close()
