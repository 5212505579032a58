"""Warm job interpreters for the local job runner.

A job process spends its first seconds starting Python and importing torch, the service, zarr
and s3fs (on this project's loaded 2-core machine 15-23 s of a retrain's 50-60 s, measured by the
train job's `timings:` line). The local runner therefore keeps one spare interpreter that has
imported them and waits for a job on its stdin; a job given to it runs `python -m
gpu_jobs.<job>` exactly as a fresh process would (same module run as __main__, same argv, the
job's whole environment, its log on stdout and stderr), and the spare is the runner's own child,
so waiting, exit codes, timeouts and kills are unchanged. A spare is used only where a fresh
process would be the same one (same interpreter, working directory and environment apart from
the job's own id); otherwise the job starts cold. On AWS each Batch job is its own container and
pays these imports itself.

    python -m histolabel.localcloud.warm      (started by the runner, not by hand)
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import runpy
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

# What the learning jobs import (the slide jobs share most of it): imported before the job
# arrives. Only imports: no client, file system or thread is made before the job's environment.
PRELOAD = (
    "numpy",
    "torch",
    "zarr",
    "s3fs",
    "pyarrow.parquet",
    "histolabel.service",
    "histolabel.composition",
    "histolabel.adapters.artifacts",
    "histolabel.learning.training",
    "histolabel.learning.acquisition",
    "histolabel.learning.features",
    "gpu_jobs.common",
)
# Set per job by the runner; a spare made before the job cannot have it.
PER_JOB_ENV = ("AWS_BATCH_JOB_ID",)


def _same_env(a: dict[str, str], b: dict[str, str]) -> bool:
    strip = set(PER_JOB_ENV)
    return {k: v for k, v in a.items() if k not in strip} == {k: v for k, v in b.items() if k not in strip}


class Spare:
    """One warm interpreter, started with `env` in `cwd`; `run` hands it one job."""

    def __init__(self, env: dict[str, str], cwd: str) -> None:
        self.env, self.cwd = dict(env), cwd
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "histolabel.localcloud.warm"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=self.env,
            cwd=cwd,
            start_new_session=True,  # a job's own process group, so a cancel stops its workers too
        )

    def fits(self, env: dict[str, str], cwd: str) -> bool:
        return self.proc.poll() is None and self.cwd == cwd and _same_env(self.env, env)

    def wait_ready(self) -> bool:
        """Block until the spare has done its imports (False if it ended instead)."""
        assert self.proc.stdout is not None
        return self.proc.stdout.readline() == b"ready\n"

    def run(self, module: str, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        """The job, started in this interpreter; raises OSError if the spare is gone."""
        stdin: IO[bytes] | None = self.proc.stdin
        assert stdin is not None
        spec = {"module": module, "args": args, "env": env, "log": str(log)}
        stdin.write(json.dumps(spec).encode() + b"\n")
        stdin.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()  # the job's stdout is its log
        return self.proc

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # a spare that reads no job exits
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)


class Spares:
    """At most one spare per process, made when a job starts (`refill`), so that its imports
    overlap the running job, and a process that never runs jobs holds none."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spare: Spare | None = None

    def start(self, command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        """`command` ([python, -m, module, args...]) in the spare if it fits, else a fresh process."""
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None and command[:2] == [sys.executable, "-m"] and spare.fits(env, os.getcwd()):
            with contextlib.suppress(OSError):
                return spare.run(command[2], command[3:], env, log)
        elif spare is not None:
            threading.Thread(target=spare.close, daemon=True).start()
        with open(log, "wb") as out:
            return subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def refill(self, env: dict[str, str]) -> None:
        """A spare for the next job with this environment, unless one is there."""
        fresh = {k: v for k, v in env.items() if k not in PER_JOB_ENV}
        with self._lock:
            if self._spare is None:
                self._spare = Spare(fresh, os.getcwd())


def _serve() -> None:
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    with contextlib.suppress(OSError):  # unbuffered: nothing of it can reach the job's log
        os.write(1, b"ready\n")
    line = sys.stdin.readline()
    if not line:
        os._exit(0)  # the runner went away or dropped this spare
    spec: dict[str, Any] = json.loads(line)
    os.environ.clear()
    os.environ.update(spec["env"])
    from histolabel.config import get_settings

    get_settings.cache_clear()
    fd = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.argv = [spec["module"], *spec["args"]]
    runpy.run_module(spec["module"], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _serve()
