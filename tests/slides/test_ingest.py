"""Ingest against the local cloud: every shared slide round-trips exactly; bad input is refused."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from gpu_jobs.common import JobError
from gpu_jobs.ingest import ingest_uri
from histolabel.adapters.s3 import filesystem, split_uri
from histolabel.slides.pyramid import level_shapes

ROOT = Path(__file__).resolve().parents[2]
SLIDES = [
    "CMU-1-Small-Region.svs",
    "tcga-cr-7395-01a-01-ts1.svs",
    "OS-1-detail.ome.tif",
    "OS-2-ndpi.ome.tif",
    "pathml_small_dicom.dcm",
    "skimage_ihc.png",
]


def decode_reference(path: Path) -> np.ndarray:
    """The whole level-0 image decoded by a third-party reader, independent of ours."""
    if path.suffix == ".dcm":
        import pydicom

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
        # pydicom walks the encapsulation (independently of our frame index); frames are
        # decoded with libjpeg-turbo as in the ingest path. Pillow's decoder differs from
        # libjpeg-turbo by 1 grey level in ~0.0004% of samples (IDCT rounding).
        from imagecodecs import jpeg8_decode
        from pydicom.encaps import generate_frames

        frames = [
            jpeg8_decode(f) for f in generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames))
        ]
        rows, cols = ds.Rows, ds.Columns
        h, w = int(ds.TotalPixelMatrixRows), int(ds.TotalPixelMatrixColumns)
        per_row = -(-w // cols)
        out = np.zeros((-(-h // rows) * rows, per_row * cols, 3), np.uint8)
        for i in range(len(out) // rows * per_row):
            r, c = divmod(i, per_row)
            out[r * rows : (r + 1) * rows, c * cols : (c + 1) * cols] = frames[i]
        return out[:h, :w]
    if path.suffix == ".png":
        from skimage.io import imread

        return np.asarray(imread(path))[..., :3]
    return np.asarray(tifffile.imread(path))


@pytest.mark.slow
@pytest.mark.parametrize("name", SLIDES)
def test_every_slide_ingests_losslessly(name: str, shared_data: Path, upload, dest: str) -> None:
    path = shared_data / "slides" / name
    source = upload(path, name)
    result, source_bytes, pyramid_bytes = ingest_uri(source, dest, name, progress="off")
    expected = decode_reference(path)
    assert (result.height, result.width) == expected.shape[:2]
    assert source_bytes == path.stat().st_size and pyramid_bytes > 0

    # Read back with plain zarr, as any third party would.
    group = zarr.open_group(_store(dest), mode="r")
    ome = group.attrs["ome"]
    assert ome["version"] == "0.5"
    ms = ome["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["c", "y", "x"]
    shapes = level_shapes(result.height, result.width)
    assert len(ms["datasets"]) == len(shapes) == result.levels
    assert max(shapes[-1]) <= 1024
    for k, ds in enumerate(ms["datasets"]):
        arr = group[ds["path"]]
        assert arr.shape == (3, *shapes[k]) and arr.dtype == np.uint8
        assert arr.metadata.zarr_format == 3 and arr.shards is not None
        scale = ds["coordinateTransformations"][0]["scale"]
        assert scale[1] == pytest.approx((result.mpp or 1.0) * 2**k)
    level0 = np.moveaxis(np.asarray(group["0"][:]), 0, -1)
    np.testing.assert_array_equal(level0, expected)
    # level 1 is the 2x2 mean of level 0
    lvl1 = np.asarray(group["1"][:]) if result.levels > 1 else None
    if lvl1 is not None:
        h2, w2 = (expected.shape[0] // 2) * 2, (expected.shape[1] // 2) * 2
        mean = expected[:h2, :w2].reshape(h2 // 2, 2, w2 // 2, 2, 3).astype(float).mean(axis=(1, 3))
        assert np.abs(np.moveaxis(lvl1, 0, -1)[: h2 // 2, : w2 // 2] - mean).max() <= 0.5
    tissue = group["labels/tissue/0"]
    assert tissue.shape[1:] == shapes[-1] and set(np.unique(tissue[:])) <= {0, 1}
    assert "tissue" in group["labels"].attrs["ome"]["labels"]


def _store(uri: str):
    from histolabel.adapters.s3 import zarr_store

    return zarr_store(uri)


def test_physical_pixel_size_is_kept(shared_data: Path, upload, dest: str) -> None:
    path = shared_data / "slides" / "OS-1-detail.ome.tif"
    result, _, _ = ingest_uri(upload(path, path.name), dest, "os1", progress="off")
    assert result.mpp == pytest.approx(0.22709724)
    ms = zarr.open_group(_store(dest), mode="r").attrs["ome"]["multiscales"][0]
    assert ms["axes"][1]["unit"] == "micrometer"


def test_third_party_ome_zarr_reader(shared_data: Path, upload, dest: str, cloud) -> None:
    """The ome-zarr package reads the pyramid from a local copy of what we wrote to S3."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    path = shared_data / "slides" / "OS-2-ndpi.ome.tif"
    result, _, _ = ingest_uri(upload(path, path.name), dest, "os2", progress="off")
    local = (
        Path(os.environ.get("TMPDIR", "/tmp"))
        / f"omezarr-{os.getpid()}-{split_uri(dest)[1].replace('/', '_')}"
    )
    bucket, key = split_uri(dest)
    filesystem(cloud).get(f"{bucket}/{key}", str(local), recursive=True)
    nodes = list(Reader(parse_url(str(local)))())
    image = nodes[0]
    assert len(image.data) == result.levels
    assert tuple(image.data[0].shape) == (3, result.height, result.width)
    assert [a["name"] for a in image.metadata["axes"]] == ["c", "y", "x"]


def _listing(uri: str, cloud) -> list[str]:
    """Object keys under a prefix, listed by S3 itself (no s3fs caches in the way)."""
    from histolabel.adapters.aws import client

    bucket, key = split_uri(uri)
    listed = client("s3").list_objects_v2(Bucket=bucket, Prefix=key)
    return [o["Key"] for o in listed.get("Contents", [])]


def _truncated_svs(shared_data: Path) -> bytes:
    data = (shared_data / "slides" / "CMU-1-Small-Region.svs").read_bytes()
    return data[: len(data) // 2]


def _zero_tiff() -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tifffile.imwrite(buf, np.zeros((0, 0, 3), np.uint8))
    return buf.getvalue()


@pytest.mark.parametrize(
    "kind,needle",
    [
        ("random", "not a supported image"),
        ("text", "not a supported image"),
        ("empty", "empty"),
        ("zero", "zero size"),
        ("truncated", "truncated.svs"),
        ("corrupt_png", "PNG"),
    ],
)
def test_bad_input_is_refused_and_leaves_nothing(
    kind: str, needle: str, shared_data: Path, upload, dest, cloud
):
    rng = np.random.default_rng(0)
    blobs = {
        "random": rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "text": b"hello, this is not a slide\n" * 10,
        "empty": b"",
        "zero": _zero_tiff(),
        "truncated": _truncated_svs(shared_data) if kind == "truncated" else b"",
        "corrupt_png": (shared_data / "slides" / "skimage_ihc.png").read_bytes()[:2000],
    }
    source = upload(blobs[kind], f"{kind}.svs" if kind == "truncated" else f"{kind}.bin")
    with pytest.raises(JobError, match=needle):
        ingest_uri(source, dest, kind, progress="off")
    assert _listing(dest, cloud) == []


def test_rerun_overwrites_to_the_same_result(shared_data: Path, upload, dest: str, cloud) -> None:
    path = shared_data / "slides" / "skimage_ihc.png"
    source = upload(path, path.name)
    ingest_uri(source, dest, "ihc", progress="off")
    first = sorted(_listing(dest, cloud))
    level0 = np.asarray(zarr.open_group(_store(dest), mode="r")["0"][:])
    ingest_uri(source, dest, "ihc", progress="off")
    assert sorted(_listing(dest, cloud)) == first
    np.testing.assert_array_equal(np.asarray(zarr.open_group(_store(dest), mode="r")["0"][:]), level0)


def test_paths_outside_the_bucket_are_refused(upload, dest: str, shared_data: Path, cloud) -> None:
    source = upload(shared_data / "slides" / "skimage_ihc.png", "ihc.png")
    with pytest.raises(JobError, match="outside the allowed bucket"):
        ingest_uri("s3://some-other-bucket/x.svs", dest, "x", progress="off")
    with pytest.raises(JobError, match="outside the allowed bucket"):
        ingest_uri(source, "s3://some-other-bucket/image.ome.zarr", "x", progress="off")
    with pytest.raises(JobError, match="relative path"):
        ingest_uri(source, dest.replace("/slides/", "/slides/../"), "x", progress="off")
    with pytest.raises(JobError, match="does not exist"):
        ingest_uri(source + ".missing", dest, "x", progress="off")
    assert _listing(dest, cloud) == []


def _ingest_job(source: str, dest: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gpu_jobs.ingest", "--project", "p1", "--slide", "s1"]
    command += ["--source", source, "--dest", dest, "--no-events"]
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, env=os.environ.copy(), timeout=120
    )


def test_job_command_reports_in_one_line_and_exits_clean(cloud, upload, dest: str, shared_data) -> None:
    proc = _ingest_job(upload(shared_data / "slides" / "skimage_ihc.png", "ihc.png"), dest)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # One line of result, and nothing else (s3fs's sessions are closed before exit).
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr
    assert proc.stderr.startswith("ingested s1: 512x512 png")


def test_job_command_refuses_with_one_line(cloud, upload, dest: str) -> None:
    proc = _ingest_job(upload(b"not an image", "bad.svs"), dest)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "not a supported image" in proc.stderr
