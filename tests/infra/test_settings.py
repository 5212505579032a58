"""One settings object: every environment variable the code reads is a field of Settings, read
in histolabel/config.py only; and the GPU rule of the job-kinds table, through the job's door."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from histolabel import config
from histolabel.config import ENV, Settings, settings_from_env
from histolabel.jobs import JOB_SPECS, NoAcceleratorError, require_accelerator

ROOT = Path(__file__).parents[2]
CODE = ("histolabel", "functions", "gpu_jobs", "infra")


def _setting_name(node: ast.AST | None) -> bool:
    names = {*ENV.values(), config.DEFAULT_REGION}
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and (node.value in names or node.value.startswith("HISTOLABEL_"))
    )


def _environment_reads(tree: ast.AST) -> list[int]:
    """Lines that read one of our settings out of os.environ / os.getenv."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            target = node.func
            environ_get = (
                target.attr == "get"
                and isinstance(target.value, ast.Attribute)
                and target.value.attr == "environ"
            )
            if (target.attr == "getenv" or environ_get) and _setting_name(node.args[0]):
                lines.append(node.lineno)
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "environ"
            and isinstance(node.ctx, ast.Load)
            and _setting_name(node.slice)
        ):
            lines.append(node.lineno)
    return lines


def test_only_config_reads_settings_from_the_environment():
    allowed = {ROOT / "histolabel" / "config.py"}
    offenders = []
    for folder in CODE:
        for path in (ROOT / folder).rglob("*.py"):
            if path in allowed:
                continue
            offenders += [
                f"{path.relative_to(ROOT)}:{n}" for n in _environment_reads(ast.parse(path.read_text()))
            ]
    assert not offenders, f"read the setting from histolabel.config.Settings instead: {offenders}"


def test_every_variable_is_a_field_and_reads_back():
    env = {name: f"v-{field}" for field, name in ENV.items()}
    env.update({config.STAGE: "abc", config.INLINE_RESPONSE_BYTES: "123", config.ALLOW_CPU: "1",
                config.JOB_RUNNER: "local", config.ANCHOR_INTERVAL_S: "5", config.MAX_IMPORT_BYTES: "7",
                config.JOB_VCPUS: "3"})  # fmt: skip
    s = settings_from_env(env)
    assert set(ENV) <= set(Settings.model_fields)
    assert s.stage == "abc" and s.inline_response_bytes == 123 and s.allow_cpu and s.job_runner == "local"
    assert s.data_bucket == "v-data_bucket_name" and s.gpu_queue == "v-job_queue_gpu"
    assert s.anchor_interval_s == 5 and s.max_import_bytes == 7 and s.job_vcpus == 3
    assert s.source_prefixes == ("v-source_prefixes",)
    assert settings_from_env({config.DEFAULT_REGION: "eu-west-1"}).region == "eu-west-1"
    with pytest.raises(KeyError):
        config.environment(not_a_setting="x")


def test_gpu_kinds_need_cuda_unless_allowed():
    for kind, spec in JOB_SPECS.items():
        require_accelerator(kind, cuda_available=True, allow_cpu=False)
        require_accelerator(kind, cuda_available=False, allow_cpu=True)
        if spec.gpus and not spec.cpu_fallback:
            with pytest.raises(NoAcceleratorError, match="needs a CUDA GPU"):
                require_accelerator(kind, cuda_available=False, allow_cpu=False)
        else:
            require_accelerator(kind, cuda_available=False, allow_cpu=False)


@pytest.mark.slow
def test_a_gpu_job_without_cuda_fails_with_the_reason():
    """`python -m gpu_jobs.train` as Batch starts it, on this CUDA-less machine, with the
    environment its job definition sets (HISTOLABEL_ALLOW_CPU=false)."""
    env = {k: v for k, v in os.environ.items() if k != config.ALLOW_CPU}
    env[config.ALLOW_CPU] = "false"
    done = subprocess.run(
        [sys.executable, "-m", "gpu_jobs.train", "--project", "p1", "--request", "r1", "--no-events"],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "the train job needs a CUDA GPU and found none" in done.stderr and "Traceback" not in done.stderr


def test_missing_gpu_quota_is_a_clear_refusal():
    from infra.quotas import quota_problem

    message = quota_problem(0.0, 0.0, "eu-central-1")
    assert message and "GPU quota in eu-central-1 is 0 vCPUs" in message and "Service Quotas" in message
    assert quota_problem(0.0, 16.0, "eu-central-1") is None  # Spot capacity is enough to start
    assert quota_problem(None, None, "eu-central-1") is None  # unknown: deploy warns instead
