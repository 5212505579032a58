"""`histolabel embed|train|predict` through the local job runner (child processes)."""

from __future__ import annotations

import pytest

from histolabel import cli
from tests.learning.helpers import OWNER, label, make_project

pytestmark = pytest.mark.slow


def test_cli_runs_the_jobs_through_the_local_runner(
    cloud, svc, project_id, monuseg_crop, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("HISTOLABEL_JOB_RUNNER", "local")
    monkeypatch.setenv("HISTOLABEL_LOCAL_DIR", str(tmp_path))
    make_project(svc, project_id, monuseg_crop)
    assert cli.main(["predict", "--project", project_id]) == 2
    assert "no trained model yet" in capsys.readouterr().err
    assert cli.main(["embed", "--project", project_id]) == 0
    assert "handcrafted" in svc.project_state(project_id).slides["s1"].features
    label(svc, project_id, monuseg_crop[2], 12)
    assert cli.main(["train", "--project", project_id, "--user", OWNER.user]) == 0
    state = svc.project_state(project_id)
    assert state.current_model["model_version"] == 1 and state.predictions["model_version"] == 1
    assert cli.main(["train", "--project", project_id, "--user", "stranger"]) == 2
    assert "stranger" in capsys.readouterr().err
    assert cli.main(["embed", "--project", project_id, "--slide", "zz"]) == 2
    assert "not registered" in capsys.readouterr().err


def test_cli_train_follows_a_request_the_trigger_claimed(
    cloud, svc, project_id, monuseg_crop, monkeypatch, capsys
):
    import histolabel.training_requests as trigger
    from gpu_jobs import embed, train

    make_project(svc, project_id, monuseg_crop)
    assert embed.main(["--project", project_id, "--slide", "s1", "--kind", "handcrafted"]) == 0
    label(svc, project_id, monuseg_crop[2], 10)
    real_claim = trigger.claim_request

    def trigger_first(svc_, project, request_id, job_id):
        # The training trigger wins the race: it claims the request and runs the job.
        real_claim(svc_, project, request_id, "trigger-job")
        assert train.main(["--project", project, "--request", request_id, "--no-predict"]) == 0
        return real_claim(svc_, project, request_id, job_id)

    monkeypatch.setattr(trigger, "claim_request", trigger_first)
    assert cli.main(["train", "--project", project_id, "--user", OWNER.user]) == 0
    out = capsys.readouterr()
    assert "runs through the training trigger" in out.err and "model v1" in out.out
    assert svc.project_state(project_id).current_model["model_version"] == 1
