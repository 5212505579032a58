"""What the owner's self-service routes take and answer (browser upload by presigned multipart,
invitations, jobs, model choice, the expected superpixel count), and the pure rules behind them."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, StringConstraints

from histolabel.api.schemas import whole_number
from histolabel.events.catalogue import Identifier, JobKindName, Role

# S3: parts of 5 MiB to 5 GiB, at most 10,000 of them; 16 MiB keeps a part retry cheap.
MIN_PART = 5 * 2**20
PART = 16 * 2**20
MAX_PARTS = 10_000
MAX_UPLOAD_BYTES = 5 * 2**40  # S3's largest object
Filename = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,199}$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateUploadIn(_In):
    filename: Filename = Field(description="the file's name: letters, digits, '_', '.', '-', spaces")
    # A JSON integer (6878.0 is 6878 bytes); "5" and true are not sizes.
    size: Annotated[
        int, Strict(), Field(gt=0, le=MAX_UPLOAD_BYTES, description="bytes"), BeforeValidator(whole_number)
    ]
    name: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None


class UploadOut(BaseModel):
    upload_id: str
    slide_id: str
    filename: str
    part_size: int
    parts: int


class UploadRef(_In):
    upload_id: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    slide_id: Identifier
    filename: Filename


class UploadPartsIn(UploadRef):
    part_numbers: list[Annotated[int, Field(ge=1, le=MAX_PARTS)]] = Field(min_length=1, max_length=100)


class UploadPartsOut(BaseModel):
    urls: dict[str, str]
    done: list[int] = Field(description="parts S3 already holds (a resumed upload skips them)")
    expires_in: int


class CompleteUploadIn(UploadRef):
    name: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None


class CompleteUploadOut(BaseModel):
    slide: dict[str, Any]
    job_id: str


class InviteIn(_In):
    # The address becomes the member's user id, so it takes what a user id may hold.
    email: Annotated[
        str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}@[A-Za-z0-9][A-Za-z0-9.-]{0,62}$")
    ]
    role: Role
    site: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class InviteOut(BaseModel):
    user: str
    role: str
    created: bool = Field(description="a new user was made in the pool")
    temporary_password: str | None = Field(
        default=None, description="for a new user: to pass on; they choose their own at first sign-in"
    )


class JobRow(BaseModel):
    job_id: str
    job: str
    slide_id: str | None = None
    status: str
    submitted_at: str | None = None
    duration_s: float | None = None
    reason: str | None = None
    log: str | None = None


class JobsOut(BaseModel):
    jobs: list[JobRow]


class CancelOut(BaseModel):
    job_id: str
    job: str
    status: Literal["FAILED"]
    cause: Literal["cancelled"]
    reason: str


class JobLogOut(BaseModel):
    job_id: str
    text: str | None = Field(description="the end of the log (the local runner); None where it is elsewhere")
    truncated: bool = Field(description="the log is longer than the text shown")
    url: str | None = Field(description="where the whole log is (AWS Batch: its CloudWatch log stream)")


class EstimateQuery(_In):
    superpixel_size: float = Field(ge=8, le=1024, description="SLIC region side, px at magnification")
    magnification: float = Field(gt=0, le=100)
    compactness: float | None = Field(default=None, gt=0, le=1000, description="default: the project's")


class EstimateOut(BaseModel):
    count: int
    method: Literal["sampled", "area"] = Field(
        description="sampled: the segment job's tile step on windows of the tissue at its resolution"
        " (histolabel/segmentation/estimate.py); area: slide area / size² (the pyramid unreadable)"
    )
    superpixel_px: int = Field(description="the superpixel side the segment job will use, px at `level`")
    level: int
    magnification: float | None
    tissue_fraction: float
    width: int
    height: int


class RemovedSlideOut(BaseModel):
    removed: str


class SelectModelOut(BaseModel):
    model_version: int
    job_id: str | None


def part_plan(size: int) -> tuple[int, int]:
    """(part size, number of parts) for an upload of `size` bytes within S3's limits."""
    part = max(PART, MIN_PART, math.ceil(size / MAX_PARTS))
    return part, max(1, math.ceil(size / part))


def expected_superpixel_count(
    width: int, height: int, level_factor: int, tissue_fraction: float, superpixel_px: float
) -> int:
    """An upper bound when the slide's pixels cannot be read: the tissue's area at the
    segmentation level over one superpixel's area."""
    area = (width / level_factor) * (height / level_factor) * tissue_fraction
    return max(1, round(area / (superpixel_px * superpixel_px))) if tissue_fraction > 0 else 0


TERMINAL = ("SUCCEEDED", "FAILED")


def cancel_outcome(state: Any, job_id: str, runner_status: str, user: str) -> Any:
    """The outcome a cancel records for job `job_id` of the project `state`: FAILED, cause
    "cancelled", naming who cancelled. Refused for a job that is not the project's or has
    already ended (by the project's record or the runner's)."""
    from histolabel.commands import CommandRejected
    from histolabel.job_outcomes import JobContext, JobOutcome

    job = state.jobs.get(job_id)
    run = next((r for r in state.training.values() if r.job_id == job_id), None)
    if job is None and run is None:
        raise CommandRejected("not_found", f"job {job_id!r} is not a job of this project", "job_id", 404)
    ended = (job or {}).get("status")
    if ended in TERMINAL or runner_status in TERMINAL:
        said = (ended or runner_status).lower()
        raise CommandRejected("conflict", f"job {job_id!r} has already ended ({said})", "job_id", 409)
    kind = (job or {}).get("job") or "train"
    request = (job or {}).get("request_id") or (run.request_id if run else None)
    context = JobContext(cast(JobKindName, kind), state.project_id, (job or {}).get("slide_id"), request)
    return JobOutcome(job_id, context, "FAILED", "cancelled", f"{kind} job cancelled by {user}", None)


def job_row(submitted: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """One job as the panel shows it, from its JobSubmitted record and the runner's status."""
    # The local runner's final record keeps no start time: then from submission, queue included.
    started = status.get("started_at", status.get("submitted_at"))
    stopped = status.get("stopped_at")
    duration = None
    if isinstance(started, (int, float)):
        end = stopped if isinstance(stopped, (int, float)) else None
        duration = round((end - started), 1) if end is not None else None
    return {
        "job_id": submitted["job_id"],
        "job": submitted["job"],
        "slide_id": submitted.get("slide_id"),
        "status": status.get("status", "UNKNOWN"),
        "submitted_at": submitted.get("at"),
        "duration_s": duration,
        "reason": status.get("reason"),
        "log": status.get("log"),
    }


TRAINING_STATUS = {
    "requested": "SUBMITTED",
    "started": "RUNNING",
    "completed": "SUCCEEDED",
    "failed": "FAILED",
}


def training_row(run: dict[str, Any], completed_at: str | None) -> dict[str, Any]:
    """A training run as a job row: its state and reason from the events, its duration from the
    request to the model it made."""
    from datetime import datetime

    duration = None
    if completed_at:
        start, end = (
            datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (run["requested_at"], completed_at)
        )
        duration = round((end - start).total_seconds(), 1)
    return {
        "job_id": run.get("job_id") or run["request_id"],
        "job": "train",
        "slide_id": None,
        "status": TRAINING_STATUS.get(run["status"], "UNKNOWN"),
        "submitted_at": run["requested_at"],
        "duration_s": duration,
        "reason": run.get("reason_failed"),
        "log": None,
    }
