"""Ingest: a slide file becomes an OME-Zarr pyramid plus a tissue mask, in one zarr group."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import IO, Any

import numpy as np
import zarr

from histolabel.slides.ngff import image_attributes, label_attributes, label_names, labels_attributes
from histolabel.slides.pyramid import (
    Progress,
    create_level,
    level_shapes,
    write_pyramid,
)
from histolabel.slides.readers import open_slide
from histolabel.slides.tissue import tissue_mask

TISSUE_PATH = "labels/tissue"
SUPERPIXELS_PATH = "labels/superpixels"


@dataclass(frozen=True)
class IngestResult:
    width: int
    height: int
    levels: int
    mpp: float | None
    magnification: float | None
    format: str
    tissue_level: int
    tissue_fraction: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def total_work(height: int, width: int) -> int:
    """Pixels the writer reports to its progress callback (all levels)."""
    return sum(h * w for h, w in level_shapes(height, width))


def ingest(fh: IO[bytes], group: zarr.Group, name: str, progress: Progress | None = None) -> IngestResult:
    """Write the pyramid of the slide in `fh` and its tissue mask into an empty `group`."""
    source = open_slide(fh)
    info = write_pyramid(source, group, name=name, progress=progress)
    low_level = info.levels - 1
    low_array = group[str(low_level)]
    assert isinstance(low_array, zarr.Array)
    low = np.moveaxis(np.asarray(low_array[:]), 0, -1)
    mask = tissue_mask(low)
    write_tissue(group, mask, info.mpp, low_level)
    group.attrs.update(image_attributes(info, name, source.format))
    return IngestResult(
        info.width,
        info.height,
        info.levels,
        info.mpp,
        info.magnification,
        source.format,
        low_level,
        float(mask.mean()),
    )


def write_tissue(group: zarr.Group, mask: np.ndarray, mpp: float | None, level: int) -> None:
    labels = group.require_group("labels")
    tissue = labels.require_group("tissue")
    array = create_level(tissue, "0", (1, *mask.shape), np.uint8)
    array[0] = mask.astype(np.uint8)
    tissue.attrs.update(label_attributes("tissue", 1, mpp, 2**level, level))
    add_label_name(labels, "tissue")


def add_label_name(labels: zarr.Group, name: str) -> None:
    labels.attrs.update(labels_attributes(set(label_names(dict(labels.attrs))) | {name}))


def remove_label_name(image: zarr.Group, name: str) -> None:
    """Stop listing a label image (before it is rewritten, so a failure leaves no dangling name)."""
    if "labels" not in image:
        return
    labels = image["labels"]
    assert isinstance(labels, zarr.Group)
    labels.attrs.update(labels_attributes(set(label_names(dict(labels.attrs))) - {name}))


def read_tissue(group: zarr.Group) -> tuple[np.ndarray, int]:
    """The tissue mask (bool, h, w) and the image level it was computed at."""
    tissue = group[TISSUE_PATH]
    assert isinstance(tissue, zarr.Group)
    meta: dict[str, Any] = dict(tissue.attrs["histolabel"])  # type: ignore[arg-type]
    array = tissue["0"]
    assert isinstance(array, zarr.Array)
    return np.asarray(array[0]).astype(bool), int(meta["image_level"])
