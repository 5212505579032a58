"""`histolabel slides add PATH --project P`: upload, register and ingest a local slide file."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from histolabel.cli.errors import CliError
from histolabel.composition import service_from_env
from histolabel.config import settings_from_env
from histolabel.slides.readers import SlideError, open_slide


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of `histolabel slides add`."""
    p.add_argument("path", type=Path, help="slide file: SVS, OME-TIFF, TIFF, DICOM WSI, PNG or JPEG")
    p.add_argument("--project", required=True)
    p.add_argument("--slide", help="slide id (default: from the file name)")
    p.add_argument("--name", help="display name (default: the file name)")
    p.add_argument("--user", default=settings_from_env().cli_user,
                   help="the project owner who adds the slide (default: $HISTOLABEL_USER)")  # fmt: skip
    p.add_argument("--site", default=settings_from_env().cli_site or "local")
    p.add_argument("--progress", choices=["auto", "on", "off"], default="auto")


def slide_id_for(path: Path) -> str:
    stem = path.name.split(".")[0]
    sid = re.sub(r"[^A-Za-z0-9_.-]", "-", stem).strip("-.")[:64]
    return sid if sid and sid[0].isalnum() else f"s-{sid}"[:64]


def add_slide(args: argparse.Namespace) -> int:
    """Check the file, upload it, ingest it, and only then register the slide.

    A file that fails to ingest leaves nothing behind: its upload is removed and no event
    is written (the event log cannot forget a registration, so it comes last).
    """
    from gpu_jobs.ingest import ingest_uri, ingested_event
    from histolabel.adapters.pyramids import remove_prefix
    from histolabel.adapters.s3 import filesystem
    from histolabel.commands import CommandRejected, RegisterSlide
    from histolabel.config import get_settings
    from histolabel.events.catalogue import Actor

    path: Path = args.path
    try:
        if not path.is_file():
            raise CliError(f"{path}: no such file")
        with path.open("rb") as fh:
            open_slide(fh)  # refuse a corrupt or unsupported file before anything is written
    except SlideError as exc:
        raise CliError(f"{path}: {exc}") from exc
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror}") from exc
    settings = get_settings()
    svc = service_from_env(settings)
    slide = args.slide or slide_id_for(path)
    prefix = f"s3://{settings.data_bucket}/projects/{args.project}/slides/{slide}"
    source, dest = f"{prefix}/source/{path.name}", f"{prefix}/image.ome.zarr"
    command = RegisterSlide(project_id=args.project, name=args.name or path.name, source_uri=source,
                            slide_id=slide)  # fmt: skip
    state = svc.require_project(args.project)
    if not args.user:
        owners = sorted(u for u, m in state.members.items() if m.role == "owner")
        raise CliError(
            f"--user is missing: name the owner of {args.project} who adds the slide "
            f"(owners: {', '.join(owners) or 'none'}), or set HISTOLABEL_USER"
        )
    actor = Actor(user=args.user, site=args.site)
    command.authorize(state, actor.user)
    if slide in state.slides:
        raise CommandRejected("conflict", f"slide {slide!r} exists in {args.project}", "slide_id", 409)
    filesystem(settings).put_file(str(path), source[len("s3://") :])
    try:
        result, source_bytes, pyramid_bytes = ingest_uri(source, dest, slide, args.progress)
    except BaseException:
        remove_prefix(prefix)
        raise
    svc.execute(command, actor)
    svc.record_job_event(
        args.project,
        "SlideIngested",
        ingested_event(slide, dest, result, source_bytes, pyramid_bytes),
        "ingest",
    )
    print(slide)
    return 0


def add_commands(sub: Any) -> None:
    slides = sub.add_parser("slides", help="register and ingest slides").add_subparsers(
        dest="slides_command", required=True
    )
    add = slides.add_parser("add", help="upload, register and ingest a slide")
    add_arguments(add)
    add.set_defaults(func=add_slide)
