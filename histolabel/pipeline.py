"""The slide pipeline, ingest -> segment -> embed: each step's job arguments from the project's
settings, and which step follows a finished one. One place for both, used by the API's start-job
route and by the job-events handler that chains the steps."""

from __future__ import annotations

from histolabel.commands import CommandRejected
from histolabel.config import get_settings
from histolabel.confinement import require_source
from histolabel.events.catalogue import JobKindName
from histolabel.projections.project import ProjectState

SLIDE_JOBS: tuple[JobKindName, ...] = ("ingest", "segment", "embed")


def slide_job_args(job: JobKindName, state: ProjectState, slide_id: str) -> list[str]:
    """`python -m gpu_jobs.<job>` arguments for a slide step; refused (409) before its input exists."""
    slide = state.slides.get(slide_id)
    if slide is None:
        raise CommandRejected("not_found", f"slide {slide_id!r} does not exist", "slide_id", 404)
    args = ["--project", state.project_id, "--slide", slide_id, "--progress", "off"]
    if job == "ingest":
        # Checked here too, for slides registered before registration checked their source.
        return [*args, "--source", require_source(slide.source_uri, state.project_id, get_settings())]
    if slide.ingest is None:
        raise CommandRejected("invalid", f"slide {slide_id!r} must be ingested before {job}", "job", 409)
    s = state.settings
    if job == "segment":
        return [
            *args, "--image", str(slide.ingest["zarr_uri"]), "--superpixel-size", str(s.superpixel_size),
            "--unit", "auto", "--magnification", str(s.magnification), "--compactness", str(s.compactness),
        ]  # fmt: skip
    if slide.segmentation is None:
        raise CommandRejected("invalid", f"slide {slide_id!r} must be segmented before {job}", "job", 409)
    if job == "embed":
        return [*args, "--kind", s.feature_kind]
    raise CommandRejected("invalid", f"{job!r} is not a slide job", "job")


def next_step(job: str, state: ProjectState, slide_id: str | None) -> JobKindName | None:
    """The step to run after `job` succeeded on the slide, if its output is recorded and the
    next one's is not (so a repeated or late success starts nothing twice)."""
    slide = state.slides.get(slide_id or "")
    if slide is None:
        return None
    if job == "ingest" and slide.ingest is not None and slide.segmentation is None:
        return "segment"
    if (
        job == "segment"
        and slide.segmentation is not None
        and state.settings.feature_kind not in slide.features
    ):
        return "embed"
    return None
