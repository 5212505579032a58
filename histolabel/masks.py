"""Label masks per slide: every labeled superpixel painted with its category's value (0 where
unlabeled), at the superpixels' resolution, as an NGFF label image (OME-Zarr) or a tiled TIFF.

Values are the project's live categories in order, 1..k; the mapping (value, category id,
name, colour) travels with the mask: NGFF `image-label.colors/properties`, and the TIFF's
ImageDescription as JSON. Written a shard-aligned block at a time, so a slide never sits in
memory whole.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from histolabel import commands
from histolabel.slides.ngff import NGFF_VERSION, multiscales
from histolabel.slides.pyramid import SHARD, blocks, create_level, level_shapes

Reader = Callable[[int, int, int, int], np.ndarray]
# who may export a mask: as any export
EXPORT_ROLES = commands.EXPORT_ROLES


@dataclass(frozen=True)
class MaskValue:
    value: int
    category_id: str
    name: str
    color: str


def mask_values(categories: list[Any]) -> list[MaskValue]:
    """The live categories (objects with id, name, color) as values 1..k."""
    return [MaskValue(k, c.id, c.name, c.color) for k, c in enumerate(categories, start=1)]


def lookup(labels: Mapping[int, str], values: list[MaskValue], count: int) -> np.ndarray:
    """superpixel id -> mask value (uint8 below 256 categories, else uint16)."""
    dtype = np.uint8 if len(values) < 256 else np.uint16
    by_cat = {v.category_id: v.value for v in values}
    lut = np.zeros(count + 1, dtype)
    for sp, cat in labels.items():
        if 0 < sp <= count and cat in by_cat:
            lut[sp] = by_cat[cat]
    return lut


@dataclass(frozen=True)
class SlideMask:
    """What a slide's mask is made of: the superpixel level's shape, id -> value, the values
    and the level's pixel size."""

    shape: tuple[int, int]
    lut: np.ndarray
    values: list[MaskValue]
    mpp: float | None

    @property
    def painted(self) -> int:
        return int((self.lut > 0).sum())

    def summary(self) -> str:
        return (f"{self.shape[1]}x{self.shape[0]} px mask of {self.painted} labeled superpixels, values "
                + (", ".join(f"{v.value}={v.name}" for v in self.values) or "none"))  # fmt: skip


def slide_mask(state: Any, slide_id: str, current: Mapping[int, str], labels_attrs: Mapping[str, Any],
               shape: tuple[int, int]) -> SlideMask:  # fmt: skip
    """The mask of `slide_id` (segmented) from its current labels (superpixel -> category id,
    merged categories resolved here) and its label pyramid's attributes and level-0 shape: the
    one rule the CLI and the API share."""
    slide = state.slides[slide_id]
    image_level = int(labels_attrs.get("histolabel", {}).get("image_level", 0))
    labels = {sp: state.resolve(c) for sp, c in current.items()}
    values = mask_values(state.live_categories())
    lut = lookup({sp: c for sp, c in labels.items() if c}, values, int(slide.segmentation["count"]))
    mpp = (slide.ingest or {}).get("mpp")
    return SlideMask(shape, lut, values, mpp * 2**image_level if mpp else None)


def mask_blocks(
    read: Reader, shape: tuple[int, int], lut: np.ndarray
) -> Iterator[tuple[int, int, np.ndarray]]:
    for y, x, h, w in blocks(*shape):
        ids = np.asarray(read(y, x, y + h, x + w)).reshape(h, w)
        yield y, x, lut[np.minimum(ids, len(lut) - 1)]


def legend(values: list[MaskValue]) -> list[dict[str, Any]]:
    return [
        {"value": v.value, "category_id": v.category_id, "name": v.name, "color": v.color} for v in values
    ]


def write_tiff(path: Path, read: Reader, shape: tuple[int, int], lut: np.ndarray, values: list[MaskValue],
               mpp: float | None = None) -> None:  # fmt: skip
    """A tiled, zlib-compressed TIFF, written tile by tile (256 px tiles of 2048 px blocks)."""
    import tifffile

    h, w = shape
    tile = 256
    rows_of_blocks: dict[int, list[tuple[int, np.ndarray]]] = {}

    def tiles() -> Iterator[np.ndarray]:
        # tifffile wants tiles in raster order: cut each band of blocks into 256 px tiles.
        for y, x, block in mask_blocks(read, shape, lut):
            rows_of_blocks.setdefault(y, []).append((x, block))
            if x + block.shape[1] < w:
                continue
            band = rows_of_blocks.pop(y)
            bh = band[0][1].shape[0]
            for ty in range(0, bh, tile):
                for _, b in band:
                    for tx in range(0, b.shape[1], tile):
                        t = np.zeros((tile, tile), lut.dtype)
                        part = b[ty : ty + tile, tx : tx + tile]
                        t[: part.shape[0], : part.shape[1]] = part
                        yield t

    extra: dict[str, Any] = {}
    if mpp:
        extra = {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"}
    tifffile.imwrite(path, tiles(), shape=(h, w), dtype=lut.dtype, tile=(tile, tile), compression="zlib",
                     description=json.dumps({"histolabel_mask": legend(values)}), metadata=None,
                     **extra)  # fmt: skip


def write_ngff(group: Any, read: Reader, shape: tuple[int, int], lut: np.ndarray, values: list[MaskValue],
               mpp: float | None, factor: int, name: str = "categories") -> None:  # fmt: skip
    """An NGFF 0.5 label image in `group` (a zarr group), levels halved like the image's; the
    `ome` attributes are written last."""
    shapes = level_shapes(*shape)
    arrays = [create_level(group, str(k), (1, hh, ww), lut.dtype) for k, (hh, ww) in enumerate(shapes)]
    for y, x, block in mask_blocks(read, shape, lut):
        arrays[0][0, y : y + block.shape[0], x : x + block.shape[1]] = block
    for k in range(1, len(shapes)):
        hh, ww = shapes[k]
        for y, x, bh, bw in blocks(hh, ww, SHARD):
            src = np.asarray(arrays[k - 1][0, 2 * y : 2 * (y + bh), 2 * x : 2 * (x + bw)])
            arrays[k][0, y : y + bh, x : x + bw] = src[::2, ::2]
    ms = multiscales(name, len(shapes), mpp, channel=False, first_factor=factor)
    rgba = [{"label-value": v.value, "rgba": [int(v.color[i : i + 2], 16) for i in (1, 3, 5)] + [255]}
            for v in values]  # fmt: skip
    props = [{"label-value": v.value, "name": v.name, "category_id": v.category_id} for v in values]
    group.attrs.update(
        {"ome": {"version": NGFF_VERSION, "multiscales": [ms],
                 "image-label": {"version": NGFF_VERSION, "colors": rgba, "properties": props}}}
    )  # fmt: skip
