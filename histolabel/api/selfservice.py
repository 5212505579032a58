"""What the owner's self-service routes take and answer (browser upload by presigned multipart,
invitations, jobs, model choice, the expected superpixel count), and the pure rules behind them."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from histolabel.events.catalogue import Identifier, Role

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
    size: int = Field(gt=0, le=MAX_UPLOAD_BYTES, description="bytes")
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


class EstimateQuery(_In):
    superpixel_size: float = Field(ge=8, le=1024, description="SLIC region side, px at magnification")
    magnification: float = Field(gt=0, le=100)
    compactness: float | None = Field(default=None, gt=0, le=1000, description="default: the project's")


class EstimateOut(BaseModel):
    count: int
    method: Literal["sampled", "area"] = Field(
        description="sampled: the segment job's tile step on a coarse level; area: tissue area / size²"
    )
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


def coarse_level(level: int, levels: int, superpixel_px: float, min_px: float = 8.0) -> int:
    """The coarsest pyramid level at or below `level`'s resolution where a superpixel is still
    `min_px` wide: the estimate segments there instead of at full resolution, in seconds. On
    CMU-1 (H&E, 20x) it reads high by 38% (40 px) and 47% (32 px) at 4x coarser, 12-15% at 2x,
    and within 3% at full resolution: coarse tissue outlines make fewer slivers to merge."""
    coarse = level
    while coarse + 1 < levels and superpixel_px / 2 ** (coarse + 1 - level) >= min_px:
        coarse += 1
    return coarse


def sampled_superpixel_count(
    rgb: np.ndarray, tissue: np.ndarray, superpixel_px: float, compactness: float, factor: int
) -> int:
    """Superpixels the segment job makes, by running its own tile step (SLIC over the window,
    cut to tissue, slivers merged into neighbours) once over a copy of the slide `factor` times
    coarser, with the superpixel side scaled down alike. The plain area ratio overcounts about
    threefold on H&E: tissue edges turn many SLIC cells into slivers that are merged away."""
    from histolabel.segmentation.tiled import SlicParams, segment_tile

    h, w = tissue.shape
    edges = (np.zeros(w, bool), np.zeros(h, bool), np.zeros(w, bool), np.zeros(h, bool))
    params = SlicParams(max(2, round(superpixel_px / factor)), compactness)
    _, count = segment_tile(rgb, tissue, np.zeros((h, w), np.int64), edges, params, 0, keep_all=True)
    return count


def expected_superpixel_count(
    width: int, height: int, level_factor: int, tissue_fraction: float, superpixel_px: float
) -> int:
    """An upper bound when the slide's pixels cannot be read: the tissue's area at the
    segmentation level over one superpixel's area."""
    area = (width / level_factor) * (height / level_factor) * tissue_fraction
    return max(1, round(area / (superpixel_px * superpixel_px))) if tissue_fraction > 0 else 0


JobKind = Literal["ingest", "segment", "embed", "train", "predict"]


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
