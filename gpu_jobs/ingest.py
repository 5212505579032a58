"""Ingest job: an uploaded slide on S3 becomes an OME-Zarr pyramid with a tissue mask.

    python -m gpu_jobs.ingest --project P --slide S --source s3://bucket/.../slide.svs
        [--dest s3://bucket/.../image.ome.zarr]

Idempotent: the destination is cleared first, so a rerun rewrites the same result. On any
failure the destination is removed, so nothing partial stays on S3.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from gpu_jobs.common import JobError, parser, progress_bar, record, record_failure, run
from histolabel.adapters import pyramids
from histolabel.adapters.s3 import S3PathError, require_in_bucket, require_readable_source
from histolabel.confinement import OutsideProject, require_in_project, require_source
from histolabel.slides.ingest import TISSUE_PATH, IngestResult, ingest, total_work
from histolabel.slides.readers import SlideError, open_slide


def slide_prefix(project: str, slide: str, bucket: str) -> str:
    return f"s3://{bucket}/projects/{project}/slides/{slide}"


def ingest_uri(
    source_uri: str, dest_uri: str, name: str, progress: str = "auto"
) -> tuple[IngestResult, int, int]:
    """Ingest one slide; returns the result, source bytes and pyramid bytes."""
    try:
        require_readable_source(source_uri)
        require_in_bucket(dest_uri)
    except S3PathError as exc:
        raise JobError(str(exc)) from exc
    try:
        fh = pyramids.open_source(source_uri)
    except FileNotFoundError as exc:
        raise JobError(str(exc)) from exc
    with fh:
        try:
            probe = open_slide(fh)  # refuse unreadable input before touching the destination
            fh.seek(0)
        except SlideError as exc:
            raise JobError(f"{source_uri}: {exc}") from exc
        pyramids.remove_prefix(dest_uri)
        try:
            group = pyramids.open_group(dest_uri, "w")
            with progress_bar(total_work(probe.height, probe.width), f"ingest {name}", progress) as update:
                result = ingest(fh, group, name, progress=update)
        except BaseException as exc:
            pyramids.remove_prefix(dest_uri)
            if isinstance(exc, SlideError):
                raise JobError(f"{source_uri}: {exc}") from exc
            raise
    return result, pyramids.object_size(source_uri), pyramids.prefix_size(dest_uri)


def ingested_event(
    slide: str, dest: str, result: IngestResult, source_bytes: int, pyramid_bytes: int
) -> dict[str, Any]:
    """The data of SlideIngested."""
    return {
        "slide_id": slide,
        "zarr_uri": dest,
        "width": result.width,
        "height": result.height,
        "levels": result.levels,
        "mpp": result.mpp,
        "magnification": result.magnification,
        "tissue_mask_uri": f"{dest}/{TISSUE_PATH}",
        "source_bytes": source_bytes,
        "pyramid_bytes": pyramid_bytes,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = parser("ingest", "Convert a slide on S3 into a multiscale OME-Zarr with a tissue mask.")
    p.add_argument("--source", required=True, help="s3:// URI of the slide file")
    p.add_argument("--dest", help="s3:// URI of the pyramid (default: the slide's image.ome.zarr)")
    args = p.parse_args(argv)
    if not args.slide:
        p.error("--slide is required")
    from histolabel.config import get_settings

    settings = get_settings()
    dest = args.dest or f"{slide_prefix(args.project, args.slide, settings.data_bucket)}/image.ome.zarr"
    try:
        # The job reads and writes for one project only, whatever it is asked (defense in depth
        # beside the API's check at registration, and the role's grants).
        try:
            require_source(args.source, args.project, settings)
            require_in_project(dest, args.project, settings, "dest")
        except OutsideProject as exc:
            raise JobError(exc.detail) from exc
        result, source_bytes, pyramid_bytes = ingest_uri(args.source, dest, args.slide, args.progress)
    except JobError as exc:
        if not args.no_events:
            record_failure(args.project, "ingest", args.slide, str(exc))
        raise
    data = ingested_event(args.slide, dest, result, source_bytes, pyramid_bytes)
    if not args.no_events:
        record(args.project, "SlideIngested", data, "ingest")
    ratio = pyramid_bytes / source_bytes if source_bytes else float("nan")
    print(
        f"ingested {args.slide}: {result.width}x{result.height} {result.format}, {result.levels} levels, "
        f"mpp={result.mpp}, tissue {result.tissue_fraction:.0%}, pyramid/source size {ratio:.2f}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
