"""GeoJSON outlines from one read per tile equal those from one crop per superpixel."""

from __future__ import annotations

import numpy as np
from skimage import io as skio
from skimage.measure import regionprops
from skimage.segmentation import slic

from histolabel.api.export import outline, outlines


def test_outlines_by_tile_equal_outlines_by_crop(shared_data) -> None:
    rgb = skio.imread(shared_data / "slides" / "skimage_ihc.png")[..., :3]
    labels = slic(rgb, n_segments=600, compactness=10, start_label=1)
    boxes = {p.label: p.bbox for p in regionprops(labels)}
    reads: list[tuple[int, int, int, int]] = []

    def window(y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        reads.append((y0, x0, y1, x1))
        return labels[y0:y1, x0:x1]

    got = outlines(window, boxes, scale=2.0, tile=128)
    assert set(got) == set(boxes)
    for sp, (y0, x0, y1, x1) in boxes.items():
        assert got[sp] == outline(labels[y0:y1, x0:x1] == sp, y0, x0, 2.0), sp
    # One read per 128 px tile of the 512 px image (16), not one per superpixel (~600).
    assert len(reads) <= 16 < len(boxes)
