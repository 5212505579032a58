"""The batch jobs: what each kind needs to run (the one table infra builds queues and job
definitions from and the submitter reads), and the submission port through which the API, the
trigger and the CLIs start them, on AWS Batch or as local processes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

JobKind = Literal[
    "ingest", "segment", "embed", "train", "predict",
    "import_segmentation", "import_labels", "import_features", "export",
]  # fmt: skip
Queue = Literal["cpu", "gpu"]


# Where a job's S3 keys lie in the data bucket (the layout in docs/architecture.md).
SLIDE = "projects/*/slides/*"


@dataclass(frozen=True)
class JobSpec:
    """Everything about a kind of job but its code (gpu_jobs/<kind>.py): infra builds its queue,
    job definition and role from this row, the submitters and the events take the kind from it,
    and the job-events handler records the end of every kind listed here."""

    kind: JobKind
    queue: Queue
    vcpus: int
    memory_mib: int
    gpus: int
    timeout_s: int
    # Whether the job may run without CUDA where its definition asks for a GPU.
    cpu_fallback: bool
    # The data bucket's keys it reads and writes (its IAM role grants these and no others;
    # tests/infra/test_permissions.py checks them against the job's call sites).
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    # Whether it deletes what it writes (a rerun replaces its outputs); jobs that only add
    # (models, predictions, exports) are not granted s3:DeleteObject.
    deletes: bool = True
    # Whether it may run on Spot capacity: it restarts from scratch if the host goes away.
    interruptible: bool = True


JOB_SPECS: dict[JobKind, JobSpec] = {
    spec.kind: spec
    for spec in (
        JobSpec("ingest", "cpu", vcpus=4, memory_mib=15000, gpus=0, timeout_s=4 * 3600, cpu_fallback=True,
                reads=(f"{SLIDE}/source/*",), writes=(f"{SLIDE}/image.ome.zarr/*",)),
        # Segment runs tiled SLIC on every vCPU of the instance it gets.
        JobSpec("segment", "cpu", vcpus=16, memory_mib=30000, gpus=0, timeout_s=4 * 3600, cpu_fallback=True,
                reads=(f"{SLIDE}/image.ome.zarr/*",),
                writes=(f"{SLIDE}/image.ome.zarr/labels/*", f"{SLIDE}/superpixels.parquet")),
        JobSpec("embed", "gpu", vcpus=4, memory_mib=15000, gpus=1, timeout_s=4 * 3600, cpu_fallback=False,
                reads=(f"{SLIDE}/image.ome.zarr/*", f"{SLIDE}/superpixels.parquet", "weights/*"),
                writes=(f"{SLIDE}/features/*",)),
        JobSpec("train", "gpu", vcpus=4, memory_mib=15000, gpus=1, timeout_s=2 * 3600, cpu_fallback=False,
                reads=(f"{SLIDE}/features/*", f"{SLIDE}/superpixels.parquet", f"{SLIDE}/image.ome.zarr/*",
                       "projects/*/models/*"),
                writes=("projects/*/models/*", "projects/*/predictions/*"), deletes=False),
        JobSpec("predict", "gpu", vcpus=4, memory_mib=15000, gpus=1, timeout_s=2 * 3600, cpu_fallback=False,
                reads=(f"{SLIDE}/features/*", f"{SLIDE}/superpixels.parquet", "projects/*/models/*"),
                writes=("projects/*/predictions/*",), deletes=False),
        # Imports of other tools' segmentations, labels and features: streamed, CPU only.
        JobSpec("import_segmentation", "cpu", vcpus=4, memory_mib=15000, gpus=0, timeout_s=4 * 3600,
                cpu_fallback=True, reads=(f"{SLIDE}/imports/*", f"{SLIDE}/image.ome.zarr/*"),
                writes=(f"{SLIDE}/image.ome.zarr/labels/*", f"{SLIDE}/superpixels.parquet",
                        f"{SLIDE}/objects.parquet")),
        JobSpec("import_labels", "cpu", vcpus=2, memory_mib=4000, gpus=0, timeout_s=2 * 3600,
                cpu_fallback=True,
                reads=(f"{SLIDE}/imports/*", f"{SLIDE}/image.ome.zarr/*", f"{SLIDE}/superpixels.parquet"),
                writes=(f"{SLIDE}/imports/*",)),
        JobSpec("import_features", "cpu", vcpus=2, memory_mib=8000, gpus=0, timeout_s=2 * 3600,
                cpu_fallback=True, reads=(f"{SLIDE}/imports/*", f"{SLIDE}/superpixels.parquet"),
                writes=(f"{SLIDE}/features/*",)),
        # Exports too large for an API request (GeoJSON of 10^6 outlines): a process per vCPU.
        JobSpec("export", "cpu", vcpus=8, memory_mib=15000, gpus=0, timeout_s=2 * 3600, cpu_fallback=True,
                reads=(f"{SLIDE}/superpixels.parquet", f"{SLIDE}/objects.parquet",
                       f"{SLIDE}/image.ome.zarr/*", "projects/*/predictions/*"),
                writes=("projects/*/exports/*",), deletes=False),
    )
}  # fmt: skip
JOB_KINDS: tuple[JobKind, ...] = tuple(JOB_SPECS)


class JobSubmissionError(RuntimeError):
    """The job could not be submitted (queue missing, throttled, runner down)."""


class NoAcceleratorError(RuntimeError):
    """A GPU job found no CUDA device and its definition does not allow CPU."""


def require_accelerator(kind: str, *, cuda_available: bool, allow_cpu: bool) -> None:
    """Refuse to run a GPU job on CPU unless allowed (silently slow by 50x is a failure)."""
    spec = JOB_SPECS.get(kind)  # type: ignore[call-overload]
    if spec is None or spec.gpus == 0 or cuda_available or allow_cpu or spec.cpu_fallback:
        return
    raise NoAcceleratorError(
        f"the {kind} job needs a CUDA GPU and found none (torch.cuda.is_available() is False: "
        "check the instance type, the NVIDIA driver of the AMI and the image's torch build); "
        "set HISTOLABEL_ALLOW_CPU=1 to run it on CPU"
    )


class JobSubmitter(Protocol):
    def submit(self, job: JobKind, args: list[str], name: str) -> str:
        """Start `python -m gpu_jobs.<job> *args`; returns the job id."""
        ...

    def status(self, job_id: str) -> dict[str, Any]:
        """{"job_id", "status": SUBMITTED|RUNNABLE|RUNNING|SUCCEEDED|FAILED|..., "reason"?}."""
        ...


class CancellableSubmitter(JobSubmitter, Protocol):
    """A runner that can stop a job and say where its log is (AWS Batch, the local runner)."""

    def cancel(self, job_id: str, reason: str) -> None:
        """Stop the job (not yet started: never starts); it ends FAILED with `reason`."""
        ...

    def log(self, job_id: str) -> dict[str, Any]:
        """{"text": the log's end or None, "truncated": bool, "url": a console link or None}."""
        ...


def job_name(job: str, project_id: str, slide_id: str | None = None) -> str:
    """Batch job names allow 128 of [A-Za-z0-9_-]."""
    raw = "-".join(p for p in ("histolabel", job, project_id, slide_id) if p)
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in raw)[:128]
