"""`histolabel import segmentation|labels|features --project P --slide S FILE`: upload the file
beside the slide and run its import job through the job runner (local processes in the local
cloud, AWS Batch otherwise), waiting for it by default."""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

from histolabel.cli.errors import CliError
from histolabel.config import settings_from_env
from histolabel.imports.errors import ImportRefused, check_size

KINDS = ("segmentation", "labels", "features")


def add_commands(sub: Any) -> None:
    imp = sub.add_parser("import", help="import a segmentation, labels or features made elsewhere")
    kinds = imp.add_subparsers(dest="import_kind", required=True)
    for kind, text in (
        (
            "segmentation",
            "objects (GeoJSON, Histomics JSON) or a label image (TIFF, OME-Zarr) as superpixels",
        ),
        ("labels", "classified objects (GeoJSON), a per-category mask or a CSV of id,category as labels"),
        ("features", "a per-object feature table (Parquet, CSV, HDF5) as the slide's vector features"),
    ):
        p = kinds.add_parser(kind, help=text)
        p.add_argument("file", type=Path)
        p.add_argument("--project", required=True)
        p.add_argument("--slide", required=True)
        p.add_argument("--user", default=settings_from_env().cli_user or "admin", help="importing member")
        p.add_argument("--site", default=settings_from_env().cli_site or "local")
        p.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                       help="wait for the job (default) or print its id at once")  # fmt: skip
        if kind == "segmentation":
            p.add_argument(
                "--format", choices=["auto", "geojson", "histomics", "tiff", "ngff"], default="auto"
            )
            p.add_argument("--level", type=int, help="slide level to draw at / of the label image")
            p.add_argument("--lenient", action="store_true", help="repair, clip or drop bad objects")
            p.add_argument("--replace-labels", action="store_true", help="even if the slide has labels")
        elif kind == "labels":
            p.add_argument("--category", help="for a mask image: the category its pixels mean")
            p.add_argument("--color", help="for a mask image: the category's colour (#rrggbb)")
            p.add_argument("--min-cover", type=float, default=0.5,
                           help="mask, overlap: label superpixels this much inside (0.5)")  # fmt: skip
            p.add_argument("--match", choices=["auto", "id", "overlap"], default="auto",
                           help="objects to superpixels by id, by overlap, or auto (by id where the "
                           "superpixels were imported)")  # fmt: skip
        else:
            p.add_argument("--kind", choices=["imported", "handcrafted", "foundation"], default="imported",
                           help="the feature kind to store them as (default: imported)")  # fmt: skip
        p.set_defaults(func=import_file)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def upload(path: Path, project: str, slide: str) -> tuple[str, str]:
    """Put the file (or OME-Zarr folder) under the slide's imports/, keyed by its content."""
    from histolabel.adapters.s3 import filesystem
    from histolabel.config import get_settings

    settings = get_settings()
    digest = sha256_of(path) if path.is_file() else hashlib.sha256(path.name.encode()).hexdigest()
    key = f"{settings.data_bucket}/projects/{project}/slides/{slide}/imports/{digest[:16]}/{path.name}"
    fs = filesystem(settings)
    if path.is_dir():
        fs.put(str(path), key, recursive=True)
    else:
        fs.put_file(str(path), key)
    return f"s3://{key}", digest


def job_args(kind: str, args: argparse.Namespace, source: str, digest: str) -> list[str]:
    out = ["--project", args.project, "--slide", args.slide, "--source", source, "--progress", "off"]
    if kind == "segmentation":
        out += ["--format", args.format]
        if args.level is not None:
            out += ["--level", str(args.level)]
        out += ["--lenient"] * args.lenient + ["--replace-labels"] * args.replace_labels
    elif kind == "labels":
        out += ["--user", args.user, "--site", args.site, "--sha256", digest,
                "--min-cover", str(args.min_cover), "--match", args.match]  # fmt: skip
        if args.category:
            out += ["--category", args.category]
        if args.color:
            out += ["--color", args.color]
    else:
        out += ["--kind", args.kind]
    return out


def import_file(args: argparse.Namespace) -> int:
    from histolabel.composition import service_from_env, submitter_from_env
    from histolabel.events.catalogue import Actor
    from histolabel.jobs import job_name

    kind = args.import_kind
    path: Path = args.file
    if not path.exists():
        raise CliError(f"{path}: no such file")
    try:
        check_size(_size(path), path.name)
    except ImportRefused as exc:
        raise CliError(str(exc)) from None
    svc = service_from_env()
    state = svc.require_project(args.project)
    actor = Actor(user=args.user, site=args.site)
    role = state.role_of(actor.user)
    allowed = ("owner",) if kind == "segmentation" else ("owner", "annotator")
    if role not in allowed:
        raise CliError(f"{actor.user} ({role or 'not a member'}) may not import {kind}; needs {allowed}")
    if args.slide not in state.slides:
        raise CliError(f"slide {args.slide!r} is not registered in {args.project}")
    source, digest = upload(path, args.project, args.slide)
    job = f"import_{kind}"
    submitter = submitter_from_env()
    job_id = submitter.submit(job, job_args(kind, args, source, digest),  # type: ignore[arg-type]
                              job_name(job, args.project, args.slide))  # fmt: skip
    if not args.wait:
        print(job_id)
        return 0
    while (status := submitter.status(job_id))["status"] not in ("SUCCEEDED", "FAILED"):
        time.sleep(0.5)
    log = status.get("log")
    summary = Path(log).read_text(errors="replace").strip().splitlines()[-1:] if log else []
    if status["status"] == "FAILED":
        reason = summary[0] if summary else status.get("reason", "unknown reason")
        print(f"error: import {kind} job {job_id} failed: {reason.removeprefix('error: ')}", file=sys.stderr)
        return 1
    if summary:
        print(summary[0], file=sys.stderr)
    print(job_id)
    return 0
