"""The CLI's one error path: every refusal, the CLI's own or a layer's below, ends as one
`error: ...` line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gpu_jobs.common import JobError
from histolabel.cli import main
from histolabel.cli.errors import CliError, as_cli_error
from histolabel.commands import CommandRejected
from histolabel.localcloud.up import LocalStackError

ROOT = Path(__file__).resolve().parents[2]


def test_a_refusal_is_one_line_and_exit_2_as_a_user_runs_it():
    proc = subprocess.run(
        [sys.executable, "-m", "histolabel.cli", "audit", "replay", "--project", "p", "--seq", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == "error: --seq needs --slide: sequence numbers are per slide's label stream\n"
    assert proc.stdout == ""


def test_main_reports_a_bad_time_without_touching_a_store(capsys):
    assert main(["audit", "replay", "--project", "p", "--as-of", "yesterday"]) == 2
    assert capsys.readouterr().err == "error: --as-of 'yesterday' is not an ISO-8601 time\n"


@pytest.mark.parametrize(
    ("raised", "said"),
    [
        (CommandRejected("not_found", "project 'x' does not exist", "project_id", 404),
         "project 'x' does not exist (field: project_id)"),
        (JobError("the file cannot be decoded"), "the file cannot be decoded"),
        (LocalStackError("the demo slide did not ingest"), "the demo slide did not ingest"),
        (FileNotFoundError("no such file: a.svs"), "no such file: a.svs"),
    ],
)  # fmt: skip
def test_the_layers_refusals_become_cli_errors(raised, said):
    err = as_cli_error(raised)
    assert err is not None and str(err) == said and err.exit_code == 2


def test_a_bug_is_not_a_refusal():
    assert as_cli_error(KeyError("x")) is None
    own = CliError("stopped", exit_code=3)
    assert as_cli_error(own) is own and own.exit_code == 3
