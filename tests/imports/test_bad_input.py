"""Bad import input is refused with an error that names the object, row or field, and writes
nothing; then a label image from the product's own tiled SLIC imports as the same superpixels."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import zarr

from gpu_jobs.import_labels import _has_external_ids, import_labels
from gpu_jobs.import_segmentation import import_uri
from histolabel.adapters import pyramids
from histolabel.adapters.s3 import filesystem, zarr_store
from histolabel.composition import service_from_env
from histolabel.config import Settings
from histolabel.events.streams import slide_events
from histolabel.imports.errors import ImportRefused
from tests.imports.conftest import IMAGE, OWNER

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def slide(cloud: Settings, shared_data: Path) -> dict[str, str]:
    """One ingested MoNuSeg slide (1000x1000) for the module, and where its outputs would go."""
    from histolabel.cli.slides import add_arguments, add_slide
    from histolabel.commands import CreateProject

    project = f"p{uuid.uuid4().hex[:12]}"
    service_from_env().execute(CreateProject(project_id=project, name="bad input"), OWNER)
    p = argparse.ArgumentParser()
    add_arguments(p)
    path = shared_data / "labeled" / "monuseg" / f"{IMAGE}.tif"
    assert add_slide(p.parse_args([str(path), "--project", project, "--slide", "s", "--user", OWNER.user,
                                   "--progress", "off"])) == 0  # fmt: skip
    prefix = f"s3://{cloud.data_bucket}/projects/{project}/slides/s"
    return {"project": project, "prefix": prefix, "image": f"{prefix}/image.ome.zarr"}


def _put(slide: dict[str, str], name: str, raw: bytes) -> str:
    uri = f"{slide['prefix']}/imports/{uuid.uuid4().hex[:8]}/{name}"
    filesystem().pipe_file(uri[5:], raw)
    return uri


def _import(slide: dict[str, str], uri: str, **kw: Any) -> dict[str, Any]:
    p = slide["prefix"]
    return import_uri(uri, slide["image"], f"{p}/superpixels.parquet", f"{p}/objects.parquet",
                      progress="off", **kw)  # fmt: skip


def _nothing_written(slide: dict[str, str]) -> None:
    fs = filesystem()
    fs.invalidate_cache()
    assert not fs.exists(f"{slide['image'][5:]}/labels/superpixels/zarr.json")
    assert not fs.exists(f"{slide['prefix'][5:]}/superpixels.parquet")


def _fc(*geometries: Any, ids: list[str] | None = None) -> bytes:
    feats = [{"type": "Feature", "id": (ids or [f"n{i}" for i in range(len(geometries))])[i], "geometry": g,
              "properties": {}} for i, g in enumerate(geometries)]  # fmt: skip
    return json.dumps({"type": "FeatureCollection", "features": feats}).encode()


SQUARE = {"type": "Polygon", "coordinates": [[[10, 10], [30, 10], [30, 30], [10, 30], [10, 10]]]}
BOWTIE = {"type": "Polygon", "coordinates": [[[50, 50], [80, 80], [80, 50], [50, 80], [50, 50]]]}
FLAT = {"type": "Polygon", "coordinates": [[[5, 5], [9, 5], [5, 5]]]}
OUTSIDE = {
    "type": "Polygon",
    "coordinates": [[[990, 990], [1010, 990], [1010, 1010], [990, 1010], [990, 990]]],
}
TRUNCATED = b'{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": '


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (TRUNCATED, "invalid JSON at character"),
        (_fc(SQUARE, BOWTIE, ids=["a", "b"]), "object 2 (id 'b'): is not a valid polygon: Self-intersection"),
        (_fc(FLAT), "object 1 (id 'n0'): is an empty polygon"),
        (_fc(SQUARE, OUTSIDE), "object 2 (id 'n1'): has coordinates outside the 1000x1000 px slide"),
        (_fc(SQUARE, SQUARE, ids=["a", "a"]), "object 2: has the same id 'a' as object 1"),
        (_fc({"type": "Point", "coordinates": [3, 4]}), "object 1 (id 'n0'): is a Point"),
    ],
)
def test_bad_polygons_are_refused_by_name(slide: dict[str, str], raw: bytes, message: str) -> None:
    with pytest.raises(ImportRefused, match=message.replace("(", r"\(").replace(")", r"\)")):
        _import(slide, _put(slide, "objects.geojson", raw))
    _nothing_written(slide)


def test_lenient_repairs_clips_and_counts(slide: dict[str, str], tmp_path: Path) -> None:
    point = {"type": "Point", "coordinates": [1, 1]}
    facts = _import(slide, _put(slide, "o.geojson", _fc(SQUARE, BOWTIE, FLAT, OUTSIDE, point)), lenient=True)
    assert facts["count"] == 3 and facts["objects_read"] == 5  # square, repaired bowtie, clipped corner
    assert facts["dropped"] == {"not_polygon": 1, "empty": 1, "outside": 0, "invalid_repaired": 1,
                                "clipped": 1, "covered": 0}  # fmt: skip
    for key in ("labels/superpixels", "superpixels.parquet", "objects.parquet"):
        pyramids.remove_prefix(f"{slide['prefix']}/{key}" if "/" not in key else f"{slide['image']}/{key}")
    image = pyramids.open_group(slide["image"], "a")
    from histolabel.slides.ingest import remove_label_name

    remove_label_name(image, "superpixels")


def _tiff(labels: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    tifffile.imwrite(buf, labels, tile=(256, 256), compression="zlib")
    return buf.getvalue()


def test_bad_label_images_and_sizes(slide: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    big = np.zeros((1000, 1000), np.uint64)
    big[100:110, 100:110] = 2**32 + 5
    with pytest.raises(ImportRefused, match=r"label 4294967301 at y=0, x=0 overflows uint32"):
        _import(slide, _put(slide, "big.tif", _tiff(big)))
    with pytest.raises(ImportRefused, match=r"is 400x500 px, which is not the size of any level"):
        _import(slide, _put(slide, "small.tif", _tiff(np.ones((500, 400), np.uint16))))
    monkeypatch.setenv("HISTOLABEL_MAX_IMPORT_BYTES", "1000")
    with pytest.raises(ImportRefused, match=r"imports are limited to"):
        _import(slide, _put(slide, "many.geojson", _fc(*[SQUARE] * 30, ids=[str(i) for i in range(30)])))
    _nothing_written(slide)


def test_a_2gb_file_is_refused_before_upload(slide: dict[str, str], tmp_path: Path) -> None:
    huge = tmp_path / "huge.geojson"
    with huge.open("wb") as fh:  # sparse: 2 GiB on paper, nothing on disk
        fh.truncate(2 << 30)
    proc = subprocess.run(
        [sys.executable, "-m", "histolabel.cli", "import", "segmentation", str(huge), "--project",
         slide["project"], "--slide", "s", "--user", OWNER.user],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "huge.geojson: the file is 2048 MiB; imports are limited to 1024 MiB" in proc.stderr
    assert not filesystem().exists(f"{slide['prefix'][5:]}/imports/") or not any(
        "huge" in k for k in filesystem().find(f"{slide['prefix'][5:]}/imports/")
    )


def test_product_slic_label_image_round_trips_and_labels_refuse_clashes(slide: dict[str, str]) -> None:
    from gpu_jobs.segment import segment_uri

    p = slide["prefix"]
    facts = segment_uri(slide["image"], f"{p}/superpixels.parquet", 32, tile=512, workers=1, progress="off")
    assert not _has_external_ids(facts["table_uri"])  # labels by "auto" match these by overlap
    slic = np.asarray(zarr.open_group(zarr_store(slide["image"]), mode="r")["labels/superpixels/0"][0])
    shuffled = np.zeros(facts["count"] + 1, np.uint32)  # another tool's ids: sparse, unordered
    shuffled[1:] = np.random.default_rng(1).choice(10**9, facts["count"], replace=False) + 1
    tiff = _put(slide, "slic.tif", _tiff(shuffled[slic]))
    got = _import(slide, tiff)
    assert got["count"] == facts["count"] and got["format"] == "tiff" and got["level"] == 0
    imported = np.asarray(zarr.open_group(zarr_store(slide["image"]), mode="r")["labels/superpixels/0"][0])
    # the same partition, renumbered 1..n by external label; the table keeps the external ids
    order = np.argsort(shuffled[1:])
    expect = np.zeros_like(shuffled)
    expect[1:][order] = np.arange(1, facts["count"] + 1)
    np.testing.assert_array_equal(imported, expect[slic])
    table = pyramids.read_table(got["table_uri"]).to_pydict()
    assert [int(e) for e in table["external_id"]] == sorted(shuffled[1:].tolist())

    svc = service_from_env()
    event = {"slide_id": "s", **got}
    svc.record_job_event(slide["project"], "SegmentationCompleted", event, "import_segmentation")
    before = svc.events.head(f"P#{slide['project']}")
    clash = _put(slide, "labels.csv", b"id,category\n1,Tumor\n2,tumor\n")
    with pytest.raises(ImportRefused, match=r"row 2: category name clash: 'tumor' and 'Tumor'"):
        import_labels(slide["project"], "s", clash, OWNER.user, OWNER.site, progress="off")
    over = _put(slide, "labels.csv", f"id,category\n1,Tumor\n{2**32 + 1},Tumor\n".encode())
    with pytest.raises(ImportRefused, match=r"row 2: id 4294967297 overflows uint32"):
        import_labels(slide["project"], "s", over, OWNER.user, OWNER.site, progress="off")
    assert svc.events.head(f"P#{slide['project']}") == before  # no category was created
    assert not slide_events(svc.events, slide["project"], "s")

    # polygons drawn elsewhere, matched to these superpixels by overlap (the product's own SLIC
    # table has no object ids, so "auto" would choose overlap there; here it is asked for)
    assert _has_external_ids(got["table_uri"])
    rects = [
        ("Tumor", (100, 100, 600, 500)),
        ("Stroma", (400, 300, 900, 900)),
        ("Tumor", (0, 850, 300, 1000)),
    ]

    def box(x0: int, y0: int, x1: int, y1: int) -> dict[str, Any]:
        return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}

    feats = [{"type": "Feature", "id": f"r{i}", "geometry": box(*r),
              "properties": {"classification": {"name": n, "color": [9, 9, 9]}}}
             for i, (n, r) in enumerate(rects)]  # fmt: skip
    drawn = _put(
        slide, "regions.geojson", json.dumps({"type": "FeatureCollection", "features": feats}).encode()
    )
    out = import_labels(slide["project"], "s", drawn, OWNER.user, OWNER.site, progress="off", match="overlap")
    cat = np.zeros(imported.shape, np.int64)  # 1 Tumor, 2 Stroma; a later rectangle wins
    for n, (x0, y0, x1, y1) in rects:
        cat[y0:y1, x0:x1] = 1 if n == "Tumor" else 2
    expect_by: dict[str, set[int]] = {"Tumor": set(), "Stroma": set()}
    for sp in range(1, got["count"] + 1):
        inside = cat[imported == sp]
        votes = np.bincount(inside, minlength=3)
        best = int(votes[1:].argmax()) + 1
        if votes[best] >= 0.5 * inside.size:
            expect_by["Tumor" if best == 1 else "Stroma"].add(sp)
    assert min(len(v) for v in expect_by.values()) > 50
    assert out["by_category"] == {k: len(v) for k, v in expect_by.items()}
    labels = svc.slide_labels_fresh(slide["project"], "s").current()
    ids = {c.name: c.id for c in svc.project_state(slide["project"]).live_categories()}
    assert {sp for sp, c in labels.items() if c == ids["Tumor"]} == expect_by["Tumor"]
    assert {sp for sp, c in labels.items() if c == ids["Stroma"]} == expect_by["Stroma"]


@pytest.mark.slow  # a second SLIC of the slide, an import and a labels import
def test_histomics_label_layout_pixelmap_and_labels(slide: dict[str, str]) -> None:
    """Histomics Label's own layout, as its superpixel job writes it over the product's SLIC
    partition: the pixelmap (index colours, boundaries) becomes the superpixels, keeping the
    index as external id; the pixelmap annotation's values become labels by that index."""
    from gpu_jobs.segment import segment_uri
    from tests.imports.test_formats import _pixelmap_tiff

    p = slide["prefix"]
    facts = segment_uri(slide["image"], f"{p}/superpixels.parquet", 48, tile=512, workers=1, progress="off")
    slic = np.asarray(zarr.open_group(zarr_store(slide["image"]), mode="r")["labels/superpixels/0"][0])
    # Histomics' superpixels cover every pixel: SLIC's background (0) is its index 0 here
    got = _import(slide, _put(slide, "superpixels.tiff", _pixelmap_tiff(slic.astype(np.int64), True)))
    n = facts["count"] + 1
    assert got["count"] == n and got["format"] == "tiff"
    imported = np.asarray(zarr.open_group(zarr_store(slide["image"]), mode="r")["labels/superpixels/0"][0])
    np.testing.assert_array_equal(imported, slic + 1)  # index i is superpixel i + 1
    table = pyramids.read_table(got["table_uri"]).to_pydict()
    assert table["external_id"] == [str(i) for i in range(n)]
    svc = service_from_env()
    svc.record_job_event(
        slide["project"], "SegmentationCompleted", {"slide_id": "s", **got}, "import_segmentation"
    )
    values = [int(i % 3) for i in range(n)]  # 0 default, 1 Tumor, 2 Necrosis
    cats = [
        {"label": "default", "fillColor": "rgba(0, 0, 0, 0)"},
        {"label": "Tumor", "fillColor": "rgb(200,0,0)"},
        {"label": "Necrosis", "fillColor": "rgb(0,0,0)"},
    ]
    element = {"type": "pixelmap", "girderId": "x", "boundaries": True, "values": values, "categories": cats}
    raw = json.dumps({"annotation": {"name": "Superpixel Epoch 3", "elements": [element]}}).encode()
    out = import_labels(slide["project"], "s", _put(slide, "labels.json", raw), OWNER.user, OWNER.site,
                        progress="off")  # fmt: skip
    assert out["skipped"] == values.count(0)
    assert out["by_category"] == {"Tumor": values.count(1), "Necrosis": values.count(2)}
    labels = svc.slide_labels_fresh(slide["project"], "s").current()
    ids = {c.name: c.id for c in svc.project_state(slide["project"]).live_categories()}
    for sp in range(1, n + 1):
        if values[sp - 1]:
            assert labels.get(sp) == (ids["Tumor"] if values[sp - 1] == 1 else ids["Necrosis"]), sp
