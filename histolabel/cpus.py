"""How many worker processes or threads a job may use: its own CPUs, not the host's.

A Batch job on a shared host sees every core of the host; its definition's vCPUs reach it as
`HISTOLABEL_JOB_VCPUS`. Otherwise a cgroup CPU quota (containers with a hard limit) or the
process's CPU affinity bounds it."""

from __future__ import annotations

import os
from pathlib import Path

from histolabel import config

JOB_VCPUS_ENV = config.JOB_VCPUS


def available_cpus() -> int:
    declared = config.settings_from_env().job_vcpus
    if declared:
        return max(1, int(declared))
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(affinity, _cgroup_quota() or affinity))


def _cgroup_quota() -> int | None:
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, int(int(quota) / int(period)))
