"""Label images from other tools: uint16/uint32 TIFF or OME-TIFF (any pyramid level), and
OME-Zarr / NGFF `labels/` images, and Histomics Label's pixelmap (an RGB TIFF whose colour is
the superpixel index). Read a window at a time, matched to a level of the slide."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from histolabel.imports.errors import ImportRefused
from histolabel.slides.ngff import Multiscale, NgffError, label_names, read_multiscale


@dataclass
class LabelSource:
    array: Any  # zarr-like, (..., h, w) with any leading singleton axes
    shape: tuple[int, int]
    dtype: np.dtype[Any]
    name: str

    id_offset: int = 0  # label - id_offset = the other tool's own id for the object

    def __call__(self, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        lead = (0,) * (len(self.array.shape) - 2)
        return np.asarray(self.array[(*lead, slice(y0, y1), slice(x0, x1))])


@dataclass
class PixelmapSource(LabelSource):
    """Histomics Label's superpixel image (HistomicsTK's SuperpixelSegmentation writes it): the
    0-based superpixel index is R + 256 G + 65536 B, doubled plus one on boundary pixels when
    written with boundaries. Every pixel belongs to a superpixel, so labels are index + 1."""

    boundaries: bool = False

    def __call__(self, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        rgb = np.asarray(self.array[y0:y1, x0:x1, :3]).astype(np.uint32)
        index = rgb[..., 0] + (rgb[..., 1] << 8) + (rgb[..., 2] << 16)
        return (index // 2 if self.boundaries else index) + 1


def _pixelmap(array: Any, name: str, description: str) -> PixelmapSource | None:
    """A pixelmap when the TIFF says it is one: RGB(A) uint8 whose ImageDescription is the
    JSON of the segmentation's parameters with its `indexCount`."""
    import json

    try:
        params = json.loads(description)
    except ValueError:
        return None
    shape = tuple(int(s) for s in array.shape)
    if not isinstance(params, dict) or "indexCount" not in params:
        return None
    if len(shape) != 3 or shape[-1] not in (3, 4):
        raise ImportRefused(f"is a pixelmap of shape {shape}; Histomics writes them as (y, x, RGB)", name)
    if np.dtype(array.dtype) != np.uint8:
        raise ImportRefused(f"is a pixelmap of {array.dtype}; Histomics writes them as 8-bit RGB", name)
    bounds = str(params.get("boundaries", False)).lower() in ("true", "1")
    return PixelmapSource(array, (shape[0], shape[1]), np.dtype(np.uint32), name, 1, bounds)


def _plane(array: Any, name: str, axes: str | None = None) -> LabelSource:
    shape = tuple(int(s) for s in array.shape)
    if (axes and axes.endswith("S")) or (len(shape) == 3 and shape[-1] in (3, 4) and shape[0] > 4):
        raise ImportRefused(f"is an RGB image {shape}, not a label image", name)
    if len(shape) < 2 or any(s != 1 for s in shape[:-2]):
        raise ImportRefused(f"has shape {shape}; a label image is one (y, x) plane", name)
    dtype = np.dtype(array.dtype)
    if dtype.kind not in "ui":
        raise ImportRefused(
            f"holds {dtype} values; label images are unsigned integers (uint16, uint32)", name
        )
    return LabelSource(array, (shape[-2], shape[-1]), dtype, name)


def open_tiff(fh: IO[bytes], name: str, level: int | None = None) -> list[LabelSource]:
    """The TIFF's label planes, finest first (every level of a pyramidal OME-TIFF, or just
    `level`)."""
    import tifffile
    import zarr

    try:
        tif = tifffile.TiffFile(fh)
        series = tif.series[0]
        levels = range(len(series.levels)) if level is None else [level]
        out = []
        for k in levels:
            if k >= len(series.levels):
                raise ImportRefused(f"has {len(series.levels)} pyramid level(s), not level {k}", name)
            store = series.aszarr(level=k)
            # tifffile's store of an uncompressed page says it is writable, and zarr then
            # refuses mode "r" (slides/readers.py does the same); nothing writes to it.
            arr = zarr.open(store, mode="r" if store.read_only else "r+")
            pixelmap = _pixelmap(arr, name, getattr(tif.pages[0], "description", "") or "")
            out.append(pixelmap or _plane(arr, name, series.levels[k].axes))
        return out
    except (tifffile.TiffFileError, ValueError, KeyError, IndexError) as exc:
        if isinstance(exc, ImportRefused):
            raise
        raise ImportRefused(f"is not a readable TIFF: {exc}", name) from None


def open_ngff(group: Any, name: str, level: int | None = None) -> list[LabelSource]:
    """An NGFF label image (a group with `multiscales` and `image-label`), or an image whose
    `labels/` holds exactly one, or the one named after '#' in `name`."""
    attrs = dict(group.attrs)
    try:
        multiscale: Multiscale | None = read_multiscale(attrs)
    except NgffError:
        multiscale = None
    if multiscale is None or not multiscale.is_label:
        labels = label_names(attrs)
        if not labels and "labels" in group:
            labels = label_names(dict(group["labels"].attrs))
        if not labels:
            raise ImportRefused("is neither an NGFF label image nor an image with labels/", name)
        if len(labels) > 1:
            raise ImportRefused(f"holds several label images {labels}; name one as PATH/labels/NAME", name)
        return open_ngff(group["labels"][labels[0]], name, level)
    picks = range(multiscale.levels) if level is None else [level]
    out = []
    for k in picks:
        if k >= multiscale.levels:
            raise ImportRefused(f"has {multiscale.levels} level(s), not level {k}", name)
        out.append(_plane(group[multiscale.paths[k]], name))
    return out


def match_level(
    candidates: Sequence[LabelSource], level_shapes: Sequence[tuple[int, int]], name: str
) -> tuple[LabelSource, int]:
    """The finest label plane that has the size of a slide level, and that level."""
    for source in candidates:
        for k, shape in enumerate(level_shapes):
            if source.shape == tuple(shape):
                return source, k
    sizes = ", ".join(f"{w}x{h}" for h, w in level_shapes)
    got = ", ".join(f"{s.shape[1]}x{s.shape[0]}" for s in candidates)
    raise ImportRefused(
        f"is {got} px, which is not the size of any level of the slide ({sizes}); "
        "export it at the slide's size or one of its downsamples",
        name,
    )
