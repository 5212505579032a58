"""A real slide crop turned into the project's NGFF pyramid plus a superpixel label pyramid.

The label pyramid is written here with scikit-image SLIC (not the segmentation job) so the
browser tests depend only on the layout in docs/architecture.md, not on another job's code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr
from skimage.segmentation import slic

from histolabel.slides.ingest import SUPERPIXELS_PATH, add_label_name, ingest
from histolabel.slides.ngff import label_attributes
from histolabel.slides.pyramid import create_level, level_shapes, write_downsampled


def write_superpixels(group: zarr.Group, n_segments: int = 400) -> int:
    """SLIC over level 0 written as labels/superpixels (1, y, x) uint32; returns the id count."""
    rgb = np.moveaxis(np.asarray(group["0"][:]), 0, -1)
    seg = slic(rgb, n_segments=n_segments, compactness=10, start_label=1).astype(np.uint32)
    h, w = seg.shape
    labels = group.require_group("labels")
    sp = labels.require_group("superpixels")
    shapes = level_shapes(h, w)
    arrays = [create_level(sp, str(k), (1, sh, sw), np.uint32) for k, (sh, sw) in enumerate(shapes)]
    arrays[0][0] = seg
    for k in range(1, len(shapes)):
        write_downsampled(arrays[k - 1], arrays[k], labels=True)
    mpp = group.attrs["histolabel"]["mpp"]  # type: ignore[index, call-overload]
    sp.attrs.update(label_attributes("superpixels", len(shapes), mpp, 1, 0))
    add_label_name(labels, "superpixels")
    return int(seg.max())


def superpixel_rows(group: zarr.Group) -> list[dict[str, int]]:
    """id, bbox and centroid of every superpixel (the superpixels.parquet columns)."""
    from skimage.measure import regionprops

    seg = np.asarray(group[SUPERPIXELS_PATH + "/0"][0])
    rows = []
    for r in regionprops(seg):
        y0, x0, y1, x1 = r.bbox
        cy, cx = r.centroid
        rows.append(
            {
                "id": r.label,
                "y0": y0,
                "x0": x0,
                "y1": y1,
                "x1": x1,
                "cy": int(cy),
                "cx": int(cx),
                "area": int(r.area),
                "level": 0,
            }
        )
    return rows


def make_local_slide(slide: Path, out: Path, n_segments: int = 400) -> tuple[zarr.Group, int]:
    """Ingest `slide` into out/image.ome.zarr on local disk and add superpixels."""
    group = zarr.open_group(zarr.storage.LocalStore(out / "image.ome.zarr"), mode="w", zarr_format=3)
    with open(slide, "rb") as fh:
        ingest(fh, group, slide.stem)
    count = write_superpixels(group, n_segments)
    return group, count
