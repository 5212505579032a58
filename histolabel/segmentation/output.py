"""Write a tiled segmentation as an NGFF label pyramid beside the image, and build its table."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import zarr

from histolabel.segmentation.table import TableBuilder
from histolabel.segmentation.tiled import TiledResult
from histolabel.slides.ingest import add_label_name
from histolabel.slides.ngff import label_attributes
from histolabel.slides.pyramid import (
    Progress,
    create_level,
    level_shapes,
    write_downsampled,
)


@dataclass(frozen=True)
class Level:
    """The image level a segmentation runs at, and what that means physically."""

    index: int
    magnification: float | None  # objective power at this level, when known
    mpp: float | None  # microns per px at this level, when known


def choose_level(attrs: dict[str, Any], n_levels: int, magnification: float | None) -> Level:
    """The pyramid level closest to `magnification` (never upsampling).

    Uses the slide's objective power when recorded, else its pixel size (10 µm / power),
    else level 0 with no physical meaning.
    """
    meta = attrs.get("histolabel", {})
    native_mag, mpp = meta.get("magnification"), meta.get("mpp")
    if native_mag is None and mpp:
        native_mag = 10.0 / mpp
    index = 0
    if magnification and native_mag:
        factor = native_mag / magnification
        index = int(min(max(round(math.log2(factor)) if factor > 0 else 0, 0), n_levels - 1))
    return Level(
        index,
        native_mag / 2**index if native_mag else None,
        mpp * 2**index if mpp else None,
    )


def superpixel_px(size: float, unit: str, level: Level) -> int:
    """A superpixel side in px at `level` from a size in px (at that level) or microns."""
    if unit == "um":
        if not level.mpp:
            raise ValueError("the slide has no physical pixel size: give --superpixel-size in px")
        px = size / level.mpp
    elif unit == "px":
        px = size
    else:
        raise ValueError(f"unit must be 'px' or 'um', not {unit!r}")
    if px < 4:
        raise ValueError(f"superpixel size {size} {unit} is {px:.1f} px at level {level.index}; need >= 4 px")
    return round(px)


def create_label_pyramid(image: zarr.Group, height: int, width: int) -> zarr.Group:
    """Create labels/superpixels with empty uint32 (1, y, x) levels; level 0 is filled by
    the segmentation's block sink, the rest by `finish_label_pyramid`."""
    group = image.require_group("labels").require_group("superpixels")
    for k, (h, w) in enumerate(level_shapes(height, width)):
        create_level(group, str(k), (1, h, w), np.uint32)
    return group


def finish_label_pyramid(
    image: zarr.Group,
    result: TiledResult,
    level: int,
    mpp: float | None,
    meta: dict[str, Any],
    progress: Progress | None = None,
) -> pa.Table:
    """Downsample level 0 of labels/superpixels, write its NGFF attributes (last, so an
    incomplete pyramid is never advertised) and return the superpixel table."""
    builder = TableBuilder(result.count, level)
    for stats in result.stats:
        builder.merge(stats)
    return publish_label_pyramid(image, result.height, result.width, builder, mpp, meta, progress)


def publish_label_pyramid(
    image: zarr.Group,
    height: int,
    width: int,
    builder: TableBuilder,
    mpp: float | None,
    meta: dict[str, Any],
    progress: Progress | None = None,
) -> pa.Table:
    """The tail every segmentation shares (SLIC or imported): level 0 is written, so downsample
    it, advertise the pyramid and return the table `builder` accumulated over level 0."""
    table = builder.table()
    publish_pyramid(image, height, width, builder.count, builder.level, mpp, meta, progress)
    return table


def publish_pyramid(
    image: zarr.Group,
    height: int,
    width: int,
    count: int,
    level: int,
    mpp: float | None,
    meta: dict[str, Any],
    progress: Progress | None = None,
) -> None:
    """Downsample level 0 of labels/superpixels (`count` ids, drawn at slide `level`) and
    advertise the pyramid, last, so an incomplete one is never listed."""
    group = image["labels/superpixels"]
    assert isinstance(group, zarr.Group)
    shapes = level_shapes(height, width)
    arrays = [group[str(k)] for k in range(len(shapes))]
    for k in range(1, len(shapes)):
        src, dst = arrays[k - 1], arrays[k]
        assert isinstance(src, zarr.Array) and isinstance(dst, zarr.Array)
        write_downsampled(src, dst, progress, labels=True)
    attrs = label_attributes("superpixels", len(shapes), mpp, 2**level, level)  # mpp of level 0
    attrs["histolabel"].update(meta, count=count)
    group.attrs.update(attrs)
    labels_root = image["labels"]
    assert isinstance(labels_root, zarr.Group)
    add_label_name(labels_root, "superpixels")
