"""The local stand-in for AWS Batch: runs `python -m gpu_jobs.<job> ...` as local processes.

Job records are files (one JSON per job, beside its log) so that every local process — the API
server, the stream runtime, the CLI — sees the same statuses, as they would through Batch.
When a job's process ends, however it ended (exit, signal, SIGKILL from outside, its timeout),
the runner sends the job-events handler the "Batch Job State Change" event EventBridge would,
so the outcome reaches the project and the slide pipeline moves on exactly as on AWS.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from histolabel.config import ALLOW_CPU, settings_from_env
from histolabel.job_outcomes import DETAIL_TYPE, TIMEOUT_MARK, failure_reason, state_change_detail
from histolabel.jobs import JOB_KINDS, JobKind, JobSubmissionError
from histolabel.localcloud.warm import Spares

MAX_PARALLEL = max(1, (os.cpu_count() or 2) // 2)
LOCAL_QUEUE = "local"
logger = logging.getLogger(__name__)

# One warm spare interpreter per process, shared by its runners.
SPARES = Spares()

StateChangeHandler = Callable[[dict[str, Any], Any], Any]


def jobs_dir() -> Path:
    root = Path(settings_from_env().local_dir or Path.cwd() / ".histolabel")
    path = root / "jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def state_change_event(detail: dict[str, Any], region: str | None = None) -> dict[str, Any]:
    """The EventBridge envelope around a Batch job's state-change detail."""
    region = region or settings_from_env().region
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": DETAIL_TYPE,
        "source": "aws.batch",
        "account": "000000000000",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:batch:{region}:000000000000:job/{detail['jobId']}"],
        "detail": detail,
    }


def _terminate(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)


def _exit_code(returncode: int) -> int:
    """A container's exit code: a process killed by signal N reports 128 + N, as Docker does."""
    return 128 - returncode if returncode < 0 else returncode


class LocalJobRunner:
    def __init__(
        self,
        directory: Path | None = None,
        wait: bool = False,
        # The job-events handler the composition root wires in (histolabel.composition), as
        # EventBridge delivers a Batch job's state change to the deployed one.
        on_state_change: StateChangeHandler | None = None,
        timeout_s: float | None = None,
        warm: bool = True,
    ) -> None:
        """`warm`: start jobs in a spare interpreter that has imported the heavy modules while
        the previous job ran (histolabel.localcloud.warm), when it fits the job."""
        self.directory = directory or jobs_dir()
        self.warm = warm
        self.wait = wait
        self.on_state_change = on_state_change
        self.timeout_s = timeout_s
        self._slots = threading.BoundedSemaphore(MAX_PARALLEL)

    def _write(self, job_id: str, record: dict[str, Any]) -> None:
        self._replace(self.directory / f"{job_id}.json", json.dumps(record))

    def _replace(self, path: Path, text: str) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)  # atomic, so a reader never sees a file created and not yet written

    def submit(self, job: JobKind, args: list[str], name: str) -> str:
        if job not in JOB_KINDS:
            raise JobSubmissionError(f"unknown job {job!r}")
        job_id = f"local-{uuid.uuid4().hex[:12]}"
        command = [sys.executable, "-m", f"gpu_jobs.{job}", *args]
        record = {"job_id": job_id, "name": name, "job": job, "command": command, "status": "SUBMITTED",
                  "submitted_at": time.time()}  # fmt: skip
        self._write(job_id, record)
        # Not a daemon: a process that started jobs lives until they end and are reported.
        thread = threading.Thread(target=self._run, args=(job_id, record))
        thread.start()
        if self.wait:
            thread.join()
        return job_id

    def _cancel_path(self, job_id: str) -> Path:
        return self.directory / f"{job_id}.cancel"

    def _cancelled(self, job_id: str) -> str | None:
        path = self._cancel_path(job_id)
        return path.read_text() if path.exists() else None

    def _run(self, job_id: str, record: dict[str, Any]) -> None:
        log_path = self.directory / f"{job_id}.log"
        timed_out = False
        code: int | None = None
        with self._slots:
            started = time.time()
            # AWS Batch tells a container its job id the same way; local jobs run where
            # there may be no GPU: they may use the CPU.
            env = {**os.environ, "AWS_BATCH_JOB_ID": job_id, ALLOW_CPU: "1"}
            log_path.touch()
            # A job cancelled while it waited for a slot never starts, as Batch's RUNNABLE.
            if self._cancelled(job_id) is None:
                if self.warm:
                    proc = SPARES.start(record["command"], env, log_path)
                    # The next job's spare imports while this job runs: made after this job ended,
                    # it was still importing when the next retrain came (the loop labels on at once),
                    # and the retrain waited 25-30 s for it on loaded cores (measured).
                    SPARES.refill(env)
                else:
                    with open(log_path, "wb") as log:
                        # Its own process group, so a cancel stops the workers it forks too.
                        proc = subprocess.Popen(record["command"], stdout=log, stderr=subprocess.STDOUT,
                                                env=env, start_new_session=True)  # fmt: skip
                record = {**record, "started_at": started, "pid": proc.pid}
                self._write(job_id, {**record, "status": "RUNNING"})
                if self._cancelled(job_id) is not None:  # cancelled while it was starting
                    _terminate(proc.pid)
                try:
                    proc.wait(timeout=self.timeout_s)
                except subprocess.TimeoutExpired:
                    timed_out = True
                    proc.kill()
                    proc.wait()
                code = _exit_code(proc.returncode)
        cancelled = self._cancelled(job_id)
        status = "SUCCEEDED" if code == 0 and not timed_out and cancelled is None else "FAILED"
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        detail = state_change_detail(
            job_id, record["name"], LOCAL_QUEUE, record["command"], status, exit_code=code,
            status_reason=cancelled if cancelled is not None else TIMEOUT_MARK if timed_out else "",
            container_reason=tail[0][:500] if status == "FAILED" else "",
            times={"createdAt": int(record["submitted_at"] * 1000), "startedAt": int(started * 1000),
                   "stoppedAt": int(time.time() * 1000)},
        )  # fmt: skip
        done = {
            **record,
            "status": status,
            "stopped_at": time.time(),
            "exit_code": code,
            "log": str(log_path),
        }
        if status == "FAILED":
            done["reason"] = failure_reason(detail)
        # Reported before the record says it ended, so a caller polling the record (the CLI's
        # --wait) sees the job done only once its outcome and the next step are recorded.
        self._report(detail)
        self._write(job_id, done)

    def _report(self, detail: dict[str, Any]) -> None:
        if self.on_state_change is None:
            return
        try:
            self.on_state_change(state_change_event(detail), None)
        except Exception:  # EventBridge would retry; here the record on file still says how it ended
            logger.exception("job-events handler failed for %s", detail["jobId"])

    def cancel(self, job_id: str, reason: str) -> None:
        """Stop a job as Batch's TerminateJob does: one not yet started never starts, a running
        one is sent SIGTERM (its process group); it then ends FAILED with `reason`, reported
        like any other end by the thread that runs it (in whichever process submitted it)."""
        record = self.status(job_id)
        if record["status"] in ("SUCCEEDED", "FAILED", "UNKNOWN"):
            return
        # Atomic, as the record is: the thread that runs the job, reading a file just created
        # and not yet written, took the cancel for one without a reason (seen under load).
        self._replace(self._cancel_path(job_id), reason)
        record = self.status(job_id)
        if record["status"] == "RUNNING" and record.get("pid"):
            _terminate(int(record["pid"]))

    def log(self, job_id: str, max_bytes: int = 64_000) -> dict[str, Any]:
        """The end of a job's log: {"text", "truncated"} (a local file; no console to link)."""
        path = self.directory / f"{job_id}.log"
        if not path.exists():
            return {"text": "", "truncated": False, "url": None}
        size = path.stat().st_size
        with open(path, "rb") as fh:
            fh.seek(max(0, size - max_bytes))
            text = fh.read().decode(errors="replace")
        return {"text": text, "truncated": size > max_bytes, "url": None}

    def status(self, job_id: str) -> dict[str, Any]:
        path = self.directory / f"{job_id}.json"
        if not path.exists():
            return {"job_id": job_id, "status": "UNKNOWN", "reason": "no such local job"}
        record: dict[str, Any] = json.loads(path.read_text())
        return record

    def list(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.directory.glob("*.json"))]
