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
from histolabel.slides.pyramid import (
    Progress,
    blocks,
    create_level,
    label_attributes,
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


def write_label_pyramid(
    result: TiledResult,
    image: zarr.Group,
    level: int,
    mpp: float | None,
    meta: dict[str, Any],
    progress: Progress | None = None,
) -> pa.Table:
    """Write labels/superpixels (uint32, (1, y, x), level 0 = image level `level`) and
    return the superpixel table. The group's `ome` attribute is written last."""
    labels_root = image.require_group("labels")
    group = labels_root.require_group("superpixels")
    shapes = level_shapes(result.height, result.width)
    arrays = [create_level(group, str(k), (1, h, w), np.uint32) for k, (h, w) in enumerate(shapes)]
    builder = TableBuilder(result.count, level)
    for y, x, h, w in blocks(result.height, result.width):
        ids = result.block(y, x, y + h, x + w)
        arrays[0][0, y : y + h, x : x + w] = ids
        builder.add(ids, y, x)
        if progress:
            progress(h * w)
    for k in range(1, len(shapes)):
        write_downsampled(arrays[k - 1], arrays[k], labels=True)
    table = builder.table()
    attrs = label_attributes("superpixels", len(shapes), mpp, 2**level, level)  # mpp of level 0
    attrs["histolabel"].update(meta, count=result.count)
    group.attrs.update(attrs)
    add_label_name(labels_root, "superpixels")
    return table
