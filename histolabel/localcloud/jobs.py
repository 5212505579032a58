"""The local stand-in for AWS Batch: runs `python -m gpu_jobs.<job> ...` as local processes.

Job records are files (one JSON per job, beside its log) so that every local process — the API
server, the stream runtime, the CLI — sees the same statuses, as they would through Batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from histolabel.config import ALLOW_CPU, settings_from_env
from histolabel.jobs import JOB_KINDS, JobKind, JobSubmissionError

MAX_PARALLEL = max(1, (os.cpu_count() or 2) // 2)


def jobs_dir() -> Path:
    root = Path(settings_from_env().local_dir or Path.cwd() / ".histolabel")
    path = root / "jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


class LocalJobRunner:
    def __init__(self, directory: Path | None = None, wait: bool = False) -> None:
        self.directory = directory or jobs_dir()
        self.wait = wait
        self._slots = threading.BoundedSemaphore(MAX_PARALLEL)

    def _write(self, job_id: str, record: dict[str, Any]) -> None:
        tmp = self.directory / f"{job_id}.json.tmp"
        tmp.write_text(json.dumps(record))
        tmp.replace(self.directory / f"{job_id}.json")  # atomic, so readers never see half a record

    def submit(self, job: JobKind, args: list[str], name: str) -> str:
        if job not in JOB_KINDS:
            raise JobSubmissionError(f"unknown job {job!r}")
        job_id = f"local-{uuid.uuid4().hex[:12]}"
        command = [sys.executable, "-m", f"gpu_jobs.{job}", *args]
        record = {"job_id": job_id, "name": name, "job": job, "command": command, "status": "SUBMITTED",
                  "submitted_at": time.time()}  # fmt: skip
        self._write(job_id, record)
        thread = threading.Thread(target=self._run, args=(job_id, record), daemon=not self.wait)
        thread.start()
        if self.wait:
            thread.join()
        return job_id

    def _run(self, job_id: str, record: dict[str, Any]) -> None:
        log_path = self.directory / f"{job_id}.log"
        with self._slots:
            self._write(job_id, {**record, "status": "RUNNING", "started_at": time.time()})
            with open(log_path, "wb") as log:
                # Local jobs run where there may be no GPU: they may use the CPU.
                env = {**os.environ, ALLOW_CPU: "1"}
                proc = subprocess.run(record["command"], stdout=log, stderr=subprocess.STDOUT, env=env)
        done = {
            **record,
            "status": "SUCCEEDED" if proc.returncode == 0 else "FAILED",
            "stopped_at": time.time(),
            "exit_code": proc.returncode,
            "log": str(log_path),
        }
        if proc.returncode != 0:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            done["reason"] = f"exit code {proc.returncode}: {tail[0][:500]}"
        self._write(job_id, done)

    def status(self, job_id: str) -> dict[str, Any]:
        path = self.directory / f"{job_id}.json"
        if not path.exists():
            return {"job_id": job_id, "status": "UNKNOWN", "reason": "no such local job"}
        record: dict[str, Any] = json.loads(path.read_text())
        return record

    def list(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.directory.glob("*.json"))]
