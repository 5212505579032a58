"""Segment job: tiled SLIC superpixels over tissue, as a label pyramid and a table on S3.

    python -m gpu_jobs.segment --project P --slide S [--image s3://.../image.ome.zarr]
        [--superpixel-size 64 --unit px|um|auto] [--magnification 20] [--compactness 10]
        [--tile 0] [--halo 0] [--workers 0] [--kernel numba|skimage]

Writes image.ome.zarr/labels/superpixels (uint32 ids, dense 1..count) and
superpixels.parquet beside the image; a rerun replaces both with the same result, and a
failure removes both.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gpu_jobs.common import JobError, parser, progress_bar, record, record_failure, run
from histolabel.adapters import pyramids
from histolabel.adapters.s3 import S3PathError, require_in_bucket
from histolabel.composition import service_from_env
from histolabel.confinement import OutsideProject, require_in_project
from histolabel.events.catalogue import ProjectSettings
from histolabel.segmentation import sizing
from histolabel.segmentation.kernel import DEFAULT_KERNEL, KERNELS, Kernel
from histolabel.segmentation.output import (
    choose_level,
    create_label_pyramid,
    finish_label_pyramid,
    superpixel_px,
)
from histolabel.segmentation.tiled import ScaledMask, SlicParams, segment
from histolabel.slides.ingest import SUPERPIXELS_PATH, read_tissue, remove_label_name
from histolabel.slides.ngff import read_multiscale
from histolabel.slides.pyramid import SHARD


def segment_uri(
    image_uri: str,
    table_uri: str,
    superpixel_size: float,
    unit: str = "px",
    magnification: float | None = None,
    compactness: float = 10.0,
    tile: int = 0,
    halo: int = 0,
    workers: int = 0,
    progress: str = "auto",
    kernel: Kernel = DEFAULT_KERNEL,
) -> dict[str, Any]:
    """Segment the image at `image_uri`; returns the facts for SegmentationCompleted."""
    try:
        require_in_bucket(image_uri)
        require_in_bucket(table_uri)
    except S3PathError as exc:
        raise JobError(str(exc)) from exc
    try:
        group: Any = pyramids.open_group(image_uri, "r")
        attrs: dict[str, Any] = dict(group.attrs)
        n_levels = read_multiscale(attrs).levels
    except Exception as exc:
        raise JobError(f"{image_uri} is not an ingested OME-Zarr image: {exc}") from exc
    level = choose_level(attrs, n_levels, magnification)
    shape = tuple(group[str(level.index)].shape[1:])
    if unit == "auto":  # the project's setting: physical where the slide has a pixel size
        rule = sizing.Size(superpixel_size, magnification or ProjectSettings().magnification)
        size_px = sizing.superpixel_px(int(shape[1]), int(shape[0]), level.mpp, rule)
    else:
        size_px = superpixel_px(superpixel_size, unit, level)
    params = SlicParams(size_px, compactness, tile, halo, kernel)
    try:
        tissue, tissue_level = read_tissue(group)
        mask: ScaledMask | None = ScaledMask(tissue, 2.0 ** (tissue_level - level.index))
    except KeyError:
        mask = None
    labels_uri = f"{image_uri.rstrip('/')}/{SUPERPIXELS_PATH}"
    image = pyramids.open_group(image_uri, "a")
    remove_label_name(image, "superpixels")
    pyramids.remove_prefix(labels_uri)
    pyramids.remove_prefix(table_uri)
    workdir = Path(tempfile.mkdtemp(prefix="histolabel-segment-"))
    try:
        window = pyramids.S3LevelWindow(image_uri, level.index)
        create_label_pyramid(image, shape[0], shape[1])
        sink = pyramids.S3LabelSink(labels_uri)
        with progress_bar(2 * shape[0] * shape[1], "segment", progress) as update:
            result = segment(
                window, (shape[0], shape[1]), params, mask, workers or None, workdir, update,
                sink=sink, stats=True, block=SHARD,
            )  # fmt: skip
        meta = {
            "superpixel_size_px": size_px,
            "compactness": compactness,
            "tile": params.tile_px,
            "halo": params.halo_px,
            "slic_kernel": params.kernel,
            "magnification": level.magnification,
        }
        table = finish_label_pyramid(image, result, level.index, attrs["histolabel"].get("mpp"), meta)
        pyramids.write_table(table, table_uri)
    except BaseException:
        pyramids.remove_prefix(labels_uri)
        pyramids.remove_prefix(table_uri)
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "count": result.count,
        "labels_uri": labels_uri,
        "table_uri": table_uri,
        "superpixel_size": float(superpixel_size),
        "magnification": level.magnification,
        "compactness": float(compactness),
        "tile_size": params.tile_px,
        "level": level.index,
        "superpixel_px": size_px,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = parser("segment", "Tiled SLIC superpixels over the tissue of an ingested slide.")
    p.add_argument("--image", help="s3:// URI of image.ome.zarr (default: the slide's)")
    p.add_argument("--table", help="s3:// URI of the table (default: superpixels.parquet beside it)")
    p.add_argument(
        "--superpixel-size", type=float, help="superpixel side (default: the project's, with --unit auto)"
    )
    p.add_argument(
        "--unit",
        choices=["px", "um", "auto"],
        default="px",
        help="unit of --superpixel-size; auto: px at --magnification as a project setting"
        " (histolabel.segmentation.sizing: µm where the slide has a pixel size, at least 2,000 superpixels)",
    )
    p.add_argument("--magnification", type=float, help="objective power to segment at (default: level 0)")
    p.add_argument("--compactness", type=float, help="default: the project's")
    p.add_argument("--tile", type=int, default=0, help="tile core side in px (0: 24 superpixels)")
    p.add_argument("--halo", type=int, default=0, help="halo in px (0: 2 superpixels)")
    p.add_argument("--workers", type=int, default=0, help="processes (0: all cores)")
    p.add_argument(
        "--kernel",
        choices=KERNELS,
        default=DEFAULT_KERNEL,
        help="SLIC implementation (see bench/slic_quality.py)",
    )
    args = p.parse_args(argv)
    if not args.slide:
        p.error("--slide is required")
    for name in ("superpixel_size", "compactness"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    for name in ("tile", "halo", "workers"):
        if getattr(args, name) < 0:
            p.error(f"--{name} must not be negative")
    if args.magnification is not None and args.magnification <= 0:
        p.error("--magnification must be positive")
    from histolabel.config import get_settings

    if args.superpixel_size is None or args.compactness is None:
        # Started with only --project/--slide (the API's start-job route, the pipeline): the
        # project's settings, sized by histolabel.segmentation.sizing.

        state = service_from_env().project_state(args.project)
        project = state.settings if state.exists else ProjectSettings()  # a run outside any project
        if args.superpixel_size is None:
            args.superpixel_size, args.unit = float(project.superpixel_size), "auto"
            args.magnification = args.magnification or project.magnification
        if args.compactness is None:
            args.compactness = project.compactness
    prefix = f"s3://{get_settings().data_bucket}/projects/{args.project}/slides/{args.slide}"
    image = args.image or f"{prefix}/image.ome.zarr"
    table = args.table or f"{image.rstrip('/').rsplit('/', 1)[0]}/superpixels.parquet"
    try:
        try:  # one project's job reads and writes that project's objects only
            for uri, field in ((image, "image"), (table, "table")):
                require_in_project(uri, args.project, get_settings(), field)
        except OutsideProject as exc:
            raise JobError(exc.detail) from exc
        facts = segment_uri(
            image,
            table,
            args.superpixel_size,
            args.unit,
            args.magnification,
            args.compactness,
            args.tile,
            args.halo,
            args.workers,
            args.progress,
            args.kernel,
        )
    except (JobError, ValueError) as exc:
        if not args.no_events:
            record_failure(args.project, "segment", args.slide, str(exc))
        raise
    data = {
        k: facts[k]
        for k in (
            "count",
            "labels_uri",
            "table_uri",
            "superpixel_size",
            "magnification",
            "compactness",
            "tile_size",
        )
    }
    if not args.no_events:
        record(args.project, "SegmentationCompleted", {"slide_id": args.slide, **data}, "segment")
    print(
        f"segmented {args.slide}: {facts['count']} superpixels of {facts['superpixel_px']} px "
        f"at level {facts['level']}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
