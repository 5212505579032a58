"""`histolabel segment --project P --slide S`: run the segment job through the job runner."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from histolabel.cli.errors import CliError
from histolabel.composition import service_from_env


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of `histolabel segment`."""
    p.add_argument("--project", required=True)
    p.add_argument("--slide", required=True)
    p.add_argument("--superpixel-size", type=float, help="default: the project's setting (px)")
    p.add_argument("--unit", choices=["px", "um"], default="px")
    p.add_argument("--magnification", type=float, help="default: the project's setting")
    p.add_argument("--compactness", type=float, help="default: the project's setting")
    p.add_argument("--workers", type=int, default=0, help="processes (0: all cores)")
    p.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="wait for the job to finish (default) or return its id at once",
    )


def job_args(args: argparse.Namespace) -> list[str]:
    """The segment job's arguments from the CLI's and the project's settings."""

    state = service_from_env().require_project(args.project)
    slide = state.slides.get(args.slide)
    if slide is None:
        raise CliError(f"slide {args.slide!r} is not registered in {args.project}")
    if slide.ingest is None:
        raise CliError(f"slide {args.slide!r} is not ingested yet")
    settings = state.settings
    size = args.superpixel_size if args.superpixel_size is not None else settings.superpixel_size
    # The project's size is applied by the segmentation.sizing rule (µm where the slide has a
    # pixel size, at least MIN_SUPERPIXELS); an explicit --superpixel-size is taken as given.
    unit = args.unit if args.superpixel_size is not None else "auto"
    mag = args.magnification if args.magnification is not None else settings.magnification
    compactness = args.compactness if args.compactness is not None else settings.compactness
    if size <= 0 or mag <= 0 or compactness <= 0 or args.workers < 0:
        raise CliError("superpixel size, magnification and compactness must be positive")
    return [
        "--project", args.project, "--slide", args.slide, "--image", slide.ingest["zarr_uri"],
        "--superpixel-size", str(size), "--unit", unit, "--magnification", str(mag),
        "--compactness", str(compactness), "--workers", str(args.workers), "--progress", "off",
    ]  # fmt: skip


def segment_slide(args: argparse.Namespace) -> int:
    """Submit the segment job (the local runner in the local cloud, AWS Batch otherwise)."""
    import time

    from histolabel.composition import submitter_from_env
    from histolabel.jobs import job_name

    submitter = submitter_from_env()
    job_id = submitter.submit("segment", job_args(args), job_name("segment", args.project, args.slide))
    if not args.wait:
        print(job_id)
        return 0
    while True:
        status = submitter.status(job_id)
        if status["status"] in ("SUCCEEDED", "FAILED"):
            break
        time.sleep(0.5)
    if status["status"] == "FAILED":
        print(
            f"error: segment job {job_id} failed: {status.get('reason', 'unknown reason')}", file=sys.stderr
        )
        return 1
    print(job_id)
    return 0


def add_commands(sub: Any) -> None:
    seg = sub.add_parser("segment", help="run tiled SLIC on a slide through the job runner")
    add_arguments(seg)
    seg.set_defaults(func=segment_slide)
