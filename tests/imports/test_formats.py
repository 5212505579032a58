"""The readers on their own (no cloud): Histomics annotation JSON, the streamed JSON window,
NGFF label images at a pyramid level, and a one-category mask's cover of superpixels."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from histolabel.imports import jsonstream, label_image
from histolabel.imports.errors import ImportRefused
from histolabel.imports.labels import mask_cover
from histolabel.imports.polygons import read_objects
from histolabel.slides.pyramid import blocks


def test_histomics_annotation_elements(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = {"annotation": {"name": "cells", "elements": [
        {"type": "polyline", "closed": True, "id": "5f1", "points": [[0, 0, 0], [10, 0, 0], [10, 10, 0]],
         "group": "Tumor", "lineColor": "rgb(255, 0, 0)"},
        {"type": "rectangle", "center": [50, 40, 0], "width": 20, "height": 10, "rotation": 0,
         "label": {"value": "Stroma"}, "fillColor": "#00ff00"},
        {"type": "point", "center": [1, 2, 0]},
    ]}}  # fmt: skip
    monkeypatch.setattr(jsonstream, "CHUNK", 7)  # a window far smaller than one element
    objs = list(read_objects(io.BytesIO(json.dumps(doc).encode()), "a.json"))
    assert [o.external_id for o in objs] == ["5f1", "#2", "#3"]
    assert (objs[0].category, objs[0].color) == ("Tumor", "#ff0000")
    assert objs[0].geometry == {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 0]]]}
    assert (objs[1].category, objs[1].color) == ("Stroma", "#00ff00")
    xs = [p[0] for p in objs[1].geometry["coordinates"][0]]  # type: ignore[index]
    assert (min(xs), max(xs)) == (40, 60)
    assert objs[2].geometry == {"type": "point"}


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (
            b'{"type": "FeatureCollection", "features": [{"type": "Feature"} {"type": "Feature"}]}',
            "character 63: expected ','",
        ),
        (b'{"features": [{"type": "Feature"}, {"type', "character 36 in feature 2: Unterminated string"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"features": []} trailing', "extra data"),
    ],
)
def test_invalid_json_names_the_position(raw: bytes, where: str) -> None:
    with pytest.raises(ImportRefused, match=where):
        list(read_objects(io.BytesIO(raw), "x.geojson"))


def test_ngff_label_image_at_a_pyramid_level(tmp_path: Path) -> None:
    root = zarr.open_group(zarr.storage.LocalStore(tmp_path / "img.zarr"), mode="w")
    labels = root.create_group("labels")
    labels.attrs["ome"] = {"version": "0.5", "labels": ["cells"]}
    cells = labels.create_group("cells")
    cells.create_array("0", data=np.ones((1, 100, 80), np.uint32))
    cells.create_array("1", data=np.ones((1, 50, 40), np.uint32))
    cells.attrs["ome"] = {"version": "0.5", "image-label": {}, "multiscales": [
        {"datasets": [{"path": "0"}, {"path": "1"}]}]}  # fmt: skip
    planes = label_image.open_ngff(
        zarr.open_group(zarr.storage.LocalStore(tmp_path / "img.zarr"), mode="r"), "x"
    )
    # the slide is 200x160 at level 0: the label's finest plane is its level 1
    source, level = label_image.match_level(planes, [(200, 160), (100, 80), (50, 40)], "x")
    assert (source.shape, level) == ((100, 80), 1)
    with pytest.raises(ImportRefused, match="not the size of any level"):
        label_image.match_level(planes, [(300, 300), (150, 150)], "x")
    rgb = label_image.LabelSource
    assert rgb is not None
    with pytest.raises(ImportRefused, match="float32"):
        label_image._plane(np.zeros((10, 10), np.float32), "f")


def test_mask_cover_at_another_level() -> None:
    ids = np.repeat(np.repeat(np.arange(1, 5, dtype=np.uint32).reshape(2, 2), 8, 0), 8, 1)  # 4 squares
    mask = np.zeros((8, 8), np.uint8)  # half resolution
    mask[:4, :4] = 1  # all of superpixel 1
    mask[4:, 4:6] = 1  # half of superpixel 4

    def read(arr: np.ndarray):  # type: ignore[no-untyped-def]
        return lambda y0, x0, y1, x1: arr[y0:y1, x0:x1]

    inside, area = mask_cover(read(ids), (16, 16), read(mask), (8, 8), 4, blocks(16, 16))
    assert area[1:].tolist() == [64, 64, 64, 64]
    assert (inside[1:] / area[1:]).tolist() == [1.0, 0.0, 0.0, 0.5]


def _pixelmap_tiff(index: np.ndarray, boundaries: bool) -> bytes:
    """`index` (0-based superpixels) encoded as HistomicsTK's SuperpixelSegmentation writes it:
    2i (+1 on edges) with boundaries, as R + 256 G + 65536 B, its parameters as the description."""
    import tifffile
    from scipy import ndimage

    v = index.astype(np.int64)
    if boundaries:
        edges = (ndimage.sobel(v, axis=0) != 0) | (ndimage.sobel(v, axis=1) != 0)
        v = v * 2 + edges
    rgb = np.dstack([v % 256, (v // 256) % 256, (v // 65536) % 256]).astype(np.uint8)
    out = io.BytesIO()
    desc = json.dumps({"boundaries": boundaries, "indexCount": int(v.max()) + 1, "superpixelSize": 8})
    # uncompressed (tifffile's store then says writable) when without boundaries, LZW as HistomicsTK
    compression = "lzw" if boundaries else None
    tifffile.imwrite(out, rgb, photometric="rgb", tile=(64, 64), description=desc, metadata=None,
                     compression=compression)  # fmt: skip
    return out.getvalue()


@pytest.mark.parametrize("boundaries", [True, False])
def test_histomics_pixelmap_and_its_labels(boundaries: bool) -> None:
    import pyarrow as pa

    from histolabel.imports.labels import IdIndex, LabelPlan, from_objects

    rng = np.random.default_rng(3)
    index = np.kron(rng.permutation(70_000)[:300].reshape(15, 20), np.ones((9, 7), np.int64))  # > 65536
    (source,) = label_image.open_tiff(io.BytesIO(_pixelmap_tiff(index, boundaries)), "sp.tif")
    assert isinstance(source, label_image.PixelmapSource) and source.boundaries == boundaries
    np.testing.assert_array_equal(source(0, 0, *index.shape), index + 1)  # every pixel is a superpixel
    # the labels, as Histomics Label saves them: values[i] = category of superpixel i
    values = [0] * 70_000
    tumor, stroma = [int(i) for i in np.unique(index)[:40]], [int(i) for i in np.unique(index)[40:50]]
    for i in tumor:
        values[i] = 1
    for i in stroma:
        values[i] = 2
    cats = [
        {"label": "default", "fillColor": "rgba(0,0,0,0)"},
        {"label": "Tumor", "fillColor": "rgb(255,0,0)"},
        {"label": "Stroma", "fillColor": "#00ff00"},
    ]
    element = {
        "type": "pixelmap",
        "girderId": "x",
        "boundaries": boundaries,
        "values": values,
        "categories": cats,
    }
    doc = {"annotation": {"name": "Superpixel Epoch 1", "elements": [element]}}
    ours = np.arange(1, 301)  # the import's dense ids, in order of the pixelmap's index
    table = pa.table({"id": ours, "external_id": [str(i) for i in np.unique(index)]})
    plan = LabelPlan()
    from_objects(read_objects(io.BytesIO(json.dumps(doc).encode()), "a.json"), IdIndex(table), plan)
    got = plan.finish(300)
    assert got["Tumor"].tolist() == list(range(1, 41)) and got["Stroma"].tolist() == list(range(41, 51))
    assert plan.colors == {"Tumor": "#ff0000", "Stroma": "#00ff00"}
    bad = {"annotation": {"elements": [{"type": "pixelmap", "values": [0, 7], "categories": cats}]}}
    with pytest.raises(ImportRefused, match=r"object 1: values\[1\] = 7 is not one of the 3 categories"):
        from_objects(
            read_objects(io.BytesIO(json.dumps(bad).encode()), "b.json"), IdIndex(table), LabelPlan()
        )
