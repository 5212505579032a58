"""`histolabel export masks --project P --slide S OUT`: a slide's labels as a mask image (OME-Zarr
labels or TIFF), the same file as `GET .../slides/{id}/mask`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from histolabel.cli.errors import CliError
from histolabel.composition import service_from_env
from histolabel.config import settings_from_env


def add_commands(sub: Any) -> None:
    exp = sub.add_parser("export", help="export what the project holds, in other tools' formats")
    kinds = exp.add_subparsers(dest="export_kind", required=True)
    p = kinds.add_parser("masks", help="a slide's labels as a mask image (OME-Zarr labels or TIFF)")
    p.add_argument("out", type=Path, help="output: a .tif/.tiff file or a .zarr folder")
    p.add_argument("--project", required=True)
    p.add_argument("--slide", required=True)
    p.add_argument("--user", default=settings_from_env().cli_user or "admin", help="exporting member")
    p.set_defaults(func=export_masks)


def export_masks(args: argparse.Namespace) -> int:
    import numpy as np
    import zarr

    from histolabel import masks
    from histolabel.adapters import pyramids

    svc = service_from_env()
    state = svc.require_project(args.project)
    if state.role_of(args.user) not in masks.EXPORT_ROLES:
        raise CliError(f"{args.user} may not export from {args.project}")
    slide = state.slides.get(args.slide)
    if slide is None or slide.segmentation is None:
        raise CliError(f"slide {args.slide!r} has no superpixels in {args.project}")
    out: Path = args.out
    if out.suffix.lower() not in (".tif", ".tiff", ".zarr"):
        raise CliError(f"{out}: the mask is written as .tif/.tiff or .zarr")
    group: Any = pyramids.open_group(slide.segmentation["labels_uri"], "r")
    level0: Any = group["0"]
    current = svc.slide_labels_fresh(args.project, args.slide).current()
    mask = masks.slide_mask(state, args.slide, current, dict(group.attrs), tuple(level0.shape[-2:]))

    def read(y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        return np.asarray(level0[0, y0:y1, x0:x1])

    if out.suffix.lower() == ".zarr":
        root = zarr.open_group(zarr.storage.LocalStore(out), mode="w")
        masks.write_ngff(root, read, mask.shape, mask.lut, mask.values, mask.mpp, 1)
    else:
        masks.write_tiff(out, read, mask.shape, mask.lut, mask.values, mask.mpp)
    print(f"{out}: {mask.summary()}")
    return 0
