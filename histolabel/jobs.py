"""The job submission port: how the API and the training trigger start batch work, whether on
AWS Batch or as local processes in the local cloud."""

from __future__ import annotations

import os
from typing import Any, Literal, Protocol

JobKind = Literal[
    "ingest", "segment", "embed", "train", "predict",
    "import_segmentation", "import_labels", "import_features",
]  # fmt: skip
JOB_KINDS: tuple[JobKind, ...] = (
    "ingest", "segment", "embed", "train", "predict",
    "import_segmentation", "import_labels", "import_features",
)  # fmt: skip


class JobSubmissionError(RuntimeError):
    """The job could not be submitted (queue missing, throttled, runner down)."""


class JobSubmitter(Protocol):
    def submit(self, job: JobKind, args: list[str], name: str) -> str:
        """Start `python -m gpu_jobs.<job> *args`; returns the job id."""
        ...

    def status(self, job_id: str) -> dict[str, Any]:
        """{"job_id", "status": SUBMITTED|RUNNABLE|RUNNING|SUCCEEDED|FAILED|..., "reason"?}."""
        ...


def job_name(job: str, project_id: str, slide_id: str | None = None) -> str:
    """Batch job names allow 128 of [A-Za-z0-9_-]."""
    raw = "-".join(p for p in ("histolabel", job, project_id, slide_id) if p)
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in raw)[:128]


def submitter_from_env() -> JobSubmitter:
    """The local job runner when HISTOLABEL_JOB_RUNNER=local, else AWS Batch."""
    if os.environ.get("HISTOLABEL_JOB_RUNNER") == "local":
        from histolabel.localcloud.jobs import LocalJobRunner  # type: ignore[import-not-found,unused-ignore]

        return LocalJobRunner()  # type: ignore[no-any-return,unused-ignore]
    from histolabel.adapters.batch import BatchSubmitter

    return BatchSubmitter()
