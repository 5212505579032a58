"""How a job ended, read from an AWS Batch "Batch Job State Change" event's detail.

Pure: the detail in, plain values out. AWS Batch (through EventBridge) and the local job runner
send the same shape, so one reading of exit codes, signals and status reasons serves both.
Which project, slide or training request a job belongs to is read from its command line
(`python -m gpu_jobs.<job> --project P [--slide S] [--request R] ...`), which is what the
submitter sends as the container's command.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any

from histolabel.events.catalogue import JobCause, JobKindName
from histolabel.jobs import JOB_KINDS

TERMINAL = ("SUCCEEDED", "FAILED")
# Every kind of the job table: each one's end becomes a JobEnded (the import kinds were missing).
KINDS: tuple[JobKindName, ...] = JOB_KINDS
DETAIL_TYPE = "Batch Job State Change"
MAX_REASON = 2000
# What AWS Batch writes in statusReason / container.reason for the ends it knows.
TIMEOUT_MARK = "Job attempt duration exceeded timeout"
HOST_MARK = "Host EC2"
OOM_MARKS = ("OutOfMemoryError", "MemoryError", "OOMKilled")
CANCEL_MARK = "cancelled by"


class NotOurJob(ValueError):
    """The event is not about a HistoLabel job (no gpu_jobs command, no project)."""


@dataclass(frozen=True)
class JobContext:
    job: JobKindName
    project_id: str
    slide_id: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class JobOutcome:
    job_id: str
    context: JobContext
    status: str  # SUCCEEDED | FAILED
    cause: JobCause
    reason: str
    exit_code: int | None

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"

    def event_data(self) -> dict[str, Any]:
        """The data of JobEnded."""
        return {
            "job": self.context.job,
            "job_id": self.job_id,
            "status": self.status,
            "cause": self.cause,
            "reason": self.reason,
            "exit_code": self.exit_code,
            "slide_id": self.context.slide_id,
            "request_id": self.context.request_id,
        }


def _option(command: list[str], name: str) -> str | None:
    for i, arg in enumerate(command):
        if arg == name and i + 1 < len(command):
            return command[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def job_context(command: list[str]) -> JobContext:
    """Which job of which project a container command runs."""
    kind = next((a.split(".", 1)[1] for a in command if a.startswith("gpu_jobs.")), None)
    if kind not in KINDS:
        raise NotOurJob(f"command {command[:4]!r} runs no gpu_jobs module")
    project = _option(command, "--project")
    if not project:
        raise NotOurJob(f"{kind} job command has no --project")
    return JobContext(kind, project, _option(command, "--slide"), _option(command, "--request"))


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _cause(status_reason: str, container_reason: str, exit_code: int | None) -> tuple[JobCause, str]:
    said = " ".join(p for p in (status_reason, container_reason) if p)
    if any(mark in said for mark in OOM_MARKS):
        return "oom", "out of memory"
    if TIMEOUT_MARK in status_reason:
        return "timeout", "timed out"
    if HOST_MARK in said:
        return "host", "its host was terminated (e.g. a Spot reclaim)"
    # A TerminateJob's reason (the cancel route's "cancelled by ...") is the statusReason of a
    # job it stopped, whatever signal ended the process.
    if CANCEL_MARK in status_reason.lower():
        return "cancelled", "cancelled"
    if exit_code is not None and exit_code > 128:
        number = exit_code - 128
        return "signal", f"killed by {signal_name(number)} (exit code {exit_code})"
    if exit_code is not None and exit_code != 0:
        return "exit", f"exit code {exit_code}"
    if "cancel" in said.lower() or "terminat" in said.lower():
        return "cancelled", "cancelled"
    return "unknown", "failed without an exit code"


def _exit_code(detail: dict[str, Any]) -> int | None:
    attempts = detail.get("attempts") or []
    last = (attempts[-1] if attempts else {}).get("container") or {}
    code = last.get("exitCode", (detail.get("container") or {}).get("exitCode"))
    return int(code) if code is not None else None


def describe(detail: dict[str, Any]) -> tuple[JobCause, str]:
    """Why a job failed, from its last attempt: the cause, and a sentence naming it with what
    Batch and the container said (exit code, signal, statusReason, container reason)."""
    attempts = detail.get("attempts") or []
    last = attempts[-1] if attempts else {}
    container = detail.get("container") or {}
    status_reason = str(detail.get("statusReason") or last.get("statusReason") or "")
    container_reason = str((last.get("container") or {}).get("reason") or container.get("reason") or "")
    exit_code = _exit_code(detail)
    cause, summary = _cause(status_reason, container_reason, exit_code)
    if cause == "cancelled" and CANCEL_MARK in status_reason.lower():
        return cause, status_reason[:MAX_REASON]  # "cancelled by olivia" says it all
    said = "; ".join(p for p in (status_reason, container_reason) if p)
    return cause, (f"{summary}: {said}" if said else summary)[:MAX_REASON]


def failure_reason(detail: dict[str, Any]) -> str:
    return describe(detail)[1]


def outcome_of(detail: dict[str, Any]) -> JobOutcome | None:
    """The outcome of a terminal state change; None for a state a job passes through."""
    status = str(detail.get("status", ""))
    if status not in TERMINAL:
        return None
    job_id = str(detail.get("jobId") or "")
    if not job_id:
        raise NotOurJob("state change without a jobId")
    context = job_context([str(a) for a in (detail.get("container") or {}).get("command") or []])
    exit_code = _exit_code(detail)
    if status == "SUCCEEDED":
        return JobOutcome(job_id, context, status, "succeeded", "succeeded", exit_code or 0)
    cause, reason = describe(detail)
    return JobOutcome(job_id, context, status, cause, f"{context.job} job {reason}"[:MAX_REASON], exit_code)


def state_change_detail(
    job_id: str,
    name: str,
    queue: str,
    command: list[str],
    status: str,
    exit_code: int | None = None,
    status_reason: str = "",
    container_reason: str = "",
    times: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A Batch job's state-change detail, as EventBridge delivers it (the fields we read)."""
    t = times or {}
    container: dict[str, Any] = {"command": command}
    attempt_container: dict[str, Any] = {}
    if exit_code is not None:
        container["exitCode"] = attempt_container["exitCode"] = exit_code
    if container_reason:
        container["reason"] = attempt_container["reason"] = container_reason
    detail: dict[str, Any] = {
        "jobName": name,
        "jobId": job_id,
        "jobQueue": queue,
        "status": status,
        "createdAt": t.get("createdAt", 0),
        "container": container,
        "attempts": [],
    }
    if status_reason:
        detail["statusReason"] = status_reason
    if status in TERMINAL:
        detail["startedAt"] = t.get("startedAt", 0)
        detail["stoppedAt"] = t.get("stoppedAt", 0)
        detail["attempts"] = [
            {
                "container": attempt_container,
                "startedAt": detail["startedAt"],
                "stoppedAt": detail["stoppedAt"],
                "statusReason": status_reason or "Essential container in task exited",
            }
        ]
    return detail
