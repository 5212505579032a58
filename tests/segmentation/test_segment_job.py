"""The segment job against the local cloud: ingest, segment, read back as a third party."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import zarr
from scipy import ndimage as ndi

from gpu_jobs.common import JobError
from gpu_jobs.ingest import ingest_uri
from gpu_jobs.segment import segment_uri
from histolabel.adapters import pyramids
from histolabel.adapters.s3 import filesystem, split_uri, zarr_store
from histolabel.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def s3_keys(uri: str) -> list[str]:
    """Object keys under a prefix, listed by S3 itself (no s3fs caches in the way)."""
    from histolabel.adapters.aws import client

    bucket, key = split_uri(uri)
    listed = client("s3").list_objects_v2(Bucket=bucket, Prefix=key)
    return [o["Key"] for o in listed.get("Contents", [])]


@pytest.fixture(scope="module")
def ingested(cloud: Settings, shared_data: Path) -> str:
    """CMU-1-Small-Region (20x, 0.499 µm/px, a third tissue) ingested once for the module."""
    prefix = f"{cloud.data_bucket}/tests/seg-{uuid.uuid4().hex[:8]}"
    filesystem(cloud).put_file(str(shared_data / "slides" / "CMU-1-Small-Region.svs"), f"{prefix}/cmu.svs")
    image = f"s3://{prefix}/image.ome.zarr"
    ingest_uri(f"s3://{prefix}/cmu.svs", image, "cmu", progress="off")
    return image


@pytest.mark.slow
def test_segment_writes_label_pyramid_and_table(ingested: str, cloud: Settings) -> None:
    table_uri = ingested.replace("image.ome.zarr", "superpixels.parquet")
    # 10x on a 20x slide: level 1; 16 µm superpixels = 16 px at 1 µm/px
    facts = segment_uri(
        ingested, table_uri, 16, unit="um", magnification=10, tile=256, workers=2, progress="off"
    )
    assert facts["magnification"] == pytest.approx(10.0) and facts["superpixel_px"] == 16
    group = zarr.open_group(zarr_store(ingested), mode="r")
    labels_group = group["labels/superpixels"]
    ome = labels_group.attrs["ome"]
    assert "superpixels" in group["labels"].attrs["ome"]["labels"]
    assert ome["image-label"]["version"] == "0.5"
    datasets = ome["multiscales"][0]["datasets"]
    # label level 0 is image level 1: same shape and same physical scale
    assert labels_group["0"].shape == (1, *group["1"].shape[1:])
    assert labels_group["0"].dtype == np.uint32
    image_scale = group.attrs["ome"]["multiscales"][0]["datasets"][1]["coordinateTransformations"][0]["scale"]
    assert datasets[0]["coordinateTransformations"][0]["scale"] == image_scale
    labels = np.asarray(labels_group["0"][0])
    count = facts["count"]
    assert labels.max() == count and len(np.unique(labels)) == count + 1  # dense, plus background 0
    tissue = np.asarray(group["labels/tissue/0"][0]).astype(bool)
    factor = labels.shape[0] / tissue.shape[0]
    assert 1.9 < factor < 2.1
    ys = np.minimum((np.arange(labels.shape[0]) / 2).astype(int), tissue.shape[0] - 1)
    xs = np.minimum((np.arange(labels.shape[1]) / 2).astype(int), tissue.shape[1] - 1)
    assert ((labels > 0) == tissue[np.ix_(ys, xs)]).all()
    # the table: one row per id, geometry in level-0 px
    table = pyramids.read_table(table_uri).to_pydict()
    assert table["id"] == list(range(1, count + 1))
    boxes = ndi.find_objects(labels)
    for i in (0, count // 2, count - 1):
        box = boxes[i]
        assert (table["y0"][i], table["x1"][i]) == (2 * box[0].start, 2 * box[1].stop)
        assert table["area"][i] == 4 * int((labels == i + 1).sum())
        assert table["level"][i] == 1
    # third-party reader: ome-zarr finds the image and its label pyramid
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    local = Path(os.environ.get("TMPDIR", "/tmp")) / f"seg-{uuid.uuid4().hex[:8]}.zarr"
    bucket, key = split_uri(ingested)
    filesystem(cloud).get(f"{bucket}/{key}", str(local), recursive=True)
    nodes = list(Reader(parse_url(str(local / "labels" / "superpixels")))())
    label_nodes = [n for n in nodes if n.data and n.data[0].dtype == np.uint32]
    image_nodes = [n for n in nodes if n.data and n.data[0].dtype == np.uint8]
    assert len(label_nodes) == 1 and image_nodes, "the reader finds the labels and follows them to the image"
    assert len(label_nodes[0].data) == len(datasets)
    assert tuple(label_nodes[0].data[0].shape) == labels_group["0"].shape

    # a rerun gives the same result
    again = segment_uri(
        ingested, table_uri, 16, unit="um", magnification=10, tile=256, workers=1, progress="off"
    )
    assert again["count"] == count
    np.testing.assert_array_equal(
        np.asarray(zarr.open_group(zarr_store(ingested), mode="r")["labels/superpixels/0"][0]), labels
    )


def test_bad_segment_requests_are_refused(ingested: str, cloud: Settings) -> None:
    table = ingested.replace("image.ome.zarr", "t.parquet")
    with pytest.raises(JobError, match="outside the allowed bucket"):
        segment_uri("s3://elsewhere/image.ome.zarr", table, 32, progress="off")
    with pytest.raises(JobError, match="not an ingested OME-Zarr"):
        segment_uri(ingested.replace("image.ome.zarr", "missing.ome.zarr"), table, 32, progress="off")
    with pytest.raises(ValueError, match="need >= 4 px"):
        segment_uri(ingested, table, 1, unit="um", progress="off")
    assert s3_keys(table) == []


def _segment_job(*args: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "gpu_jobs.segment",
        "--project",
        "p",
        "--slide",
        "s",
        "--no-events",
        *args,
    ]
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, env=os.environ.copy(), timeout=120
    )


def test_job_command_line_refuses_cleanly(cloud: Settings) -> None:
    proc = _segment_job("--image", "s3://elsewhere/x.ome.zarr")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "outside project 'p'" in proc.stderr
    proc = _segment_job("--superpixel-size", "-3")
    assert proc.returncode == 2 and "must be positive" in proc.stderr


def test_a_failure_midway_leaves_nothing_behind(cloud: Settings, shared_data: Path) -> None:
    prefix = f"{cloud.data_bucket}/tests/segfail-{uuid.uuid4().hex[:8]}"
    fs = filesystem(cloud)
    fs.put_file(str(shared_data / "slides" / "skimage_ihc.png"), f"{prefix}/ihc.png")
    image = f"s3://{prefix}/image.ome.zarr"
    ingest_uri(f"s3://{prefix}/ihc.png", image, "ihc", progress="off")
    table = f"s3://{prefix}/superpixels.parquet"
    segment_uri(image, table, 16, tile=256, workers=1, progress="off")  # a good first run
    shards = [p for p in fs.find(f"{prefix}/image.ome.zarr/0") if "/c/" in p]
    fs.pipe_file(shards[0], b"corrupt shard")  # the pixels can no longer be decoded
    with pytest.raises(Exception):  # noqa: B017 - whatever the codec raises
        segment_uri(image, table, 16, tile=256, workers=1, progress="off")
    assert s3_keys(f"s3://{prefix}/image.ome.zarr/labels/superpixels") == []
    assert s3_keys(f"s3://{prefix}/superpixels.parquet") == []
    labels = zarr.open_group(zarr_store(image), mode="r")["labels"]
    assert labels.attrs["ome"]["labels"] == ["tissue"]


def test_workers_use_the_callers_environment(ingested: str, cloud: Settings, tmp_path: Path) -> None:
    """The fork server outlives a call: started before the cloud settings existed, its
    workers must still reach the caller's endpoint."""
    script = tmp_path / "late_env.py"
    script.write_text(
        "import json, os, sys\n"
        "import numpy as np\n"
        "from histolabel.segmentation.tiled import ArrayWindow, SlicParams, segment\n"
        "if __name__ == '__main__':\n"
        "    img = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)\n"
        "    segment(ArrayWindow(img), (300, 300), SlicParams(16, tile=128), workers=2)  # server starts\n"
        "    os.environ.update(json.loads(sys.argv[1]))\n"
        "    from gpu_jobs.segment import segment_uri\n"
        "    facts = segment_uri(sys.argv[2], sys.argv[3], 32, tile=256, workers=2, progress='off')\n"
        "    print(facts['count'])\n"
    )
    aws = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "HISTOLABEL_"))}
    bare = {k: v for k, v in os.environ.items() if k not in aws}
    table = ingested.replace("image.ome.zarr", "late.parquet")
    proc = subprocess.run(
        [sys.executable, str(script), json.dumps(aws), ingested, table],
        cwd=ROOT,
        env={**bare, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.strip().splitlines()[-1]) > 0
