"""The `histolabel` console script against a running local stack, as a user types it after
`bash scripts/dev up`: no AWS or job-runner variables set (the stack's record tells the CLI where
the cloud is), and a missing acting member is named as a missing flag."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from histolabel.composition import service_from_env
from histolabel.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def _histolabel(args: list[str], local_dir: Path) -> subprocess.CompletedProcess[str]:
    # What a fresh shell has: no AWS_*, no HISTOLABEL_* but where the stack keeps its state.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "HISTOLABEL_"))}
    env["HISTOLABEL_LOCAL_DIR"] = str(local_dir)
    exe = shutil.which("histolabel")
    assert exe, "the histolabel console script is not installed"
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.mark.slow
def test_slides_add_segment_embed_against_the_local_stack(
    cloud: Settings, project_id: str, shared_data: Path, tmp_path: Path
) -> None:
    from histolabel.commands import CreateProject
    from histolabel.events.catalogue import Actor

    svc = service_from_env()
    svc.execute(CreateProject(project_id=project_id, name="cli"), Actor(user="owner1", site="a"))
    # The record `histolabel local up` writes; its processes are alive (this one stands in).
    record = {"pids": {"cloud": os.getpid()}, "endpoint": cloud.endpoint_url, "stage": cloud.stage}
    (tmp_path / "stack.json").write_text(json.dumps(record))
    image = str(shared_data / "slides" / "skimage_ihc.png")

    r = _histolabel(["slides", "add", image, "--project", project_id, "--progress", "off"], tmp_path)
    assert r.returncode == 2, r.stderr
    assert "--user is missing" in r.stderr and "owner1" in r.stderr and "Traceback" not in r.stderr
    assert svc.project_state(project_id).slides == {}

    r = _histolabel(["slides", "add", image, "--project", project_id, "--user", "owner1",
                     "--slide", "ihc", "--progress", "off"], tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    # Segmented in-process by the job's own entry point (`histolabel segment` is the same
    # runner path as embed, and each job process costs seconds on a busy machine).
    from gpu_jobs import segment as segment_job

    args = ["--project", project_id, "--slide", "ihc", "--workers", "1", "--progress", "off"]
    assert segment_job.main(args) == 0
    r = _histolabel(["embed", "--project", project_id], tmp_path)
    assert r.returncode == 0, r.stderr
    slide = svc.project_state(project_id).slides["ihc"]
    assert slide.segmentation is not None and slide.segmentation["count"] > 10
    assert "handcrafted" in slide.features
    # The embed job ran through the local job runner, its record beside the stack's state.
    assert len(list((tmp_path / "jobs").glob("*.json"))) == 1
