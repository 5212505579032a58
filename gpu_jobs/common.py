"""What every Batch job shares: argument parsing, progress, clean failure, event emission."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm

from histolabel.composition import service_from_env


class JobError(Exception):
    """A refusal the job reports as one line and exit status 2 (bad input, not a crash)."""


class JobParser(argparse.ArgumentParser):
    """Parses a job's arguments, then checks the job has the device its kind needs (after
    parsing, so --help works anywhere)."""

    def __init__(self, job: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job = job

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        parsed = super().parse_args(args, namespace)
        check_device(self.job)
        return parsed


def check_device(job: str) -> None:
    """A GPU job without CUDA ends with a clear reason, unless its definition allows CPU."""
    from histolabel.config import settings_from_env
    from histolabel.jobs import JOB_SPECS, NoAcceleratorError, require_accelerator

    spec = JOB_SPECS.get(job)  # type: ignore[call-overload]
    if spec is None or spec.gpus == 0:
        return
    import torch

    try:
        require_accelerator(
            job, cuda_available=torch.cuda.is_available(), allow_cpu=settings_from_env().allow_cpu
        )
    except NoAcceleratorError as exc:
        raise JobError(str(exc)) from None


def parser(job: str, description: str) -> argparse.ArgumentParser:
    p = JobParser(job, prog=f"python -m gpu_jobs.{job}", description=description)
    p.add_argument("--project", required=True, help="project id")
    p.add_argument("--slide", help="slide id")
    p.add_argument("--no-events", action="store_true", help="do not record the job's result event")
    p.add_argument(
        "--progress",
        choices=["auto", "on", "off"],
        default="auto",
        help="progress bar (auto: only on a terminal)",
    )
    return p


@contextmanager
def progress_bar(
    total: int, desc: str, mode: str = "auto", unit: str = "px"
) -> Iterator[Callable[[int], None]]:
    """A tqdm bar (shown on a terminal, or always with mode 'on'); yields its update function."""
    disable = {"on": False, "off": True}.get(mode, not sys.stderr.isatty())
    with tqdm(total=total, desc=desc, unit=unit, unit_scale=True, disable=disable, leave=False) as bar:
        yield bar.update


class Timings:
    """Seconds per phase of a job, printed as one `timings:` line of its log (CloudWatch on AWS),
    so where a job's time goes can be read from any run, not only a profiled one."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self._mark = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - self._mark
        self._mark = now

    def line(self) -> str:
        return "timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in self.phases.items())


def record(project_id: str, event_type: str, data: dict[str, Any], job: str) -> None:

    service_from_env().record_job_event(project_id, event_type, data, job=job)


def record_failure(project_id: str, job: str, slide_id: str | None, reason: str) -> None:
    """Best effort: the failure is also reported on stderr and by the exit status."""
    # The runner's id (AWS Batch sets it; so does the local runner), so that the runner's own
    # report of this job's end does not add the same failure twice.
    job_id = os.environ.get("AWS_BATCH_JOB_ID") or None
    data = {"job": job, "slide_id": slide_id, "reason": reason[:2000], "job_id": job_id}
    try:
        record(project_id, "JobFailed", data, job)
    except Exception as exc:  # the event store may be what failed
        print(f"warning: could not record JobFailed: {exc}", file=sys.stderr)


def exit_now(code: int) -> None:
    """End a finished job at once: its outputs and events are written, and the interpreter's
    teardown with torch, s3fs and zarr loaded took 6-12 s on loaded cores (measured), time in
    which the job still held its runner slot and its container."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a job's main; a JobError (or a ValueError from validation) ends as one line, exit 2."""
    try:
        return main(argv)
    except (JobError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
