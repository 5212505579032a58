"""Readers and the pyramid writer on synthetic files of every TIFF flavour, without S3."""

from __future__ import annotations

import io

import imagecodecs
import numpy as np
import pytest
import tifffile
import zarr
from zarr.storage import MemoryStore

from histolabel.slides.ingest import ingest, read_tissue
from histolabel.slides.pyramid import blocks, downsample2, level_shapes
from histolabel.slides.readers import SlideError, open_slide


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    """A smooth image with texture (so codecs have work) and a white margin (glass)."""
    y, x = np.mgrid[:700, :900]
    img = np.stack([(x * 255 // 900), (y * 255 // 700), ((x + y) * 7 % 256)], -1).astype(np.uint8)
    img[:, :150] = 245
    return img


def tiff_bytes(data: np.ndarray, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, data, **kwargs)  # type: ignore[arg-type]
    return buf.getvalue()


def roundtrip(blob: bytes) -> tuple[np.ndarray, zarr.Group, object]:
    group = zarr.open_group(MemoryStore(), mode="w", zarr_format=3)
    result = ingest(io.BytesIO(blob), group, "t")
    return np.moveaxis(np.asarray(group["0"][:]), 0, -1), group, result


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tile": (256, 256), "compression": "zlib", "photometric": "rgb"},
        {"rowsperstrip": 64, "compression": "lzw", "photometric": "rgb"},
        {"photometric": "rgb"},  # one uncompressed strip
        {"tile": (128, 128), "photometric": "rgb", "byteorder": ">"},
        {"rowsperstrip": 100, "photometric": "rgb", "planarconfig": "separate"},
    ],
    ids=["tiled-zlib", "stripped-lzw", "plain", "big-endian-tiled", "planar-separate"],
)
def test_generic_tiff_flavours_are_lossless(rgb: np.ndarray, kwargs: dict) -> None:
    data = np.ascontiguousarray(np.moveaxis(rgb, -1, 0)) if kwargs.get("planarconfig") == "separate" else rgb
    level0, _, result = roundtrip(tiff_bytes(data, **kwargs))
    np.testing.assert_array_equal(level0, rgb)
    assert result.levels == 1 and result.format == "tiff"  # type: ignore[attr-defined]


def test_grey_and_16_bit_become_rgb(rgb: np.ndarray) -> None:
    grey = rgb[..., 1]
    level0, _, _ = roundtrip(tiff_bytes(grey, tile=(256, 256)))
    np.testing.assert_array_equal(level0, np.repeat(grey[..., None], 3, -1))
    wide = rgb.astype(np.uint16) * 257
    level0, _, _ = roundtrip(tiff_bytes(wide, photometric="rgb", tile=(256, 256)))
    np.testing.assert_array_equal(level0, rgb)


def test_tiff_resolution_gives_microns_per_pixel(rgb: np.ndarray) -> None:
    blob = tiff_bytes(rgb, photometric="rgb", resolution=(20000.0, 20000.0), resolutionunit="CENTIMETER")
    source = open_slide(io.BytesIO(blob))
    assert source.mpp == pytest.approx(0.5)


def test_jpeg_within_one_level_of_an_independent_decoder(rgb: np.ndarray) -> None:
    from skimage.io import imread

    blob = imagecodecs.jpeg8_encode(rgb, level=90)
    level0, _, result = roundtrip(blob)
    assert result.format == "jpeg"  # type: ignore[attr-defined]
    reference = np.asarray(imread(io.BytesIO(blob)))  # Pillow's libjpeg build
    assert np.abs(level0.astype(int) - reference.astype(int)).max() <= 1


def test_pyramid_levels_and_tissue(rgb: np.ndarray) -> None:
    big = np.tile(rgb, (2, 3, 1))  # 1400 x 2700: two levels
    _, group, result = roundtrip(tiff_bytes(big, photometric="rgb", tile=(256, 256)))
    assert result.levels == 3  # type: ignore[attr-defined]
    assert group["1"].shape == (3, 700, 1350) and group["2"].shape == (3, 350, 675)
    np.testing.assert_array_equal(
        np.moveaxis(np.asarray(group["1"][:]), 0, -1),
        np.moveaxis(downsample2(np.moveaxis(big, -1, 0)), 0, -1),
    )
    mask, level = read_tissue(group)
    assert level == 2 and mask.shape == (350, 675)
    # the white margins (x < 150 in each repeat) are glass, the gradients tissue
    assert mask[:, 10:30].mean() < 0.2 and mask[:, 100:300].mean() > 0.8


def test_level_shapes_blocks_and_downsample() -> None:
    assert level_shapes(700, 900) == [(700, 900)]
    assert level_shapes(5000, 3001) == [(5000, 3001), (2500, 1501), (1250, 751), (625, 376)]
    covered = np.zeros((5000, 3001), int)
    for y, x, h, w in blocks(5000, 3001):
        covered[y : y + h, x : x + w] += 1
    assert (covered == 1).all()
    block = np.array([[[0, 1, 255], [3, 4, 255]]], np.uint8)  # (1, 2, 3): odd width
    np.testing.assert_array_equal(downsample2(block), [[[2, 255]]])


@pytest.mark.parametrize(
    "blob,needle",
    [
        (b"", "empty"),
        (b"GIF89a" + b"\0" * 200, "not a supported image"),
        (b"II*\x00" + b"\xff" * 60, "not a readable TIFF"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "cannot decode PNG"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 100, "cannot decode JPEG"),
        (b"\0" * 128 + b"DICM" + b"\0" * 100, "DICOM"),
    ],
)
def test_unreadable_files_raise_slide_error(blob: bytes, needle: str) -> None:
    with pytest.raises(SlideError, match=needle):
        open_slide(io.BytesIO(blob))


def test_truncated_tiled_tiff_fails_on_decode(rgb: np.ndarray) -> None:
    blob = tiff_bytes(rgb, photometric="rgb", tile=(256, 256), compression="zlib")
    source = open_slide(io.BytesIO(blob[: len(blob) * 2 // 3]))
    with pytest.raises(SlideError, match="cannot decode"):
        source.read_region(0, 0, 700, 900)


def png_claiming(width: int, height: int, payload: bytes) -> bytes:
    """A PNG whose header claims width x height RGB pixels, followed by `payload` as its data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", payload) + chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    import struct

    blob = bytearray(imagecodecs.jpeg8_encode(np.zeros((16, 16, 3), np.uint8)))
    sof = blob.find(b"\xff\xc0")
    blob[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(blob)


def tiff_with_one_strip_of(side: int, tmp_path) -> bytes:
    """A TIFF whose header says side x side RGB in one strip (a decode unit of 3*side^2 bytes)."""
    path = tmp_path / "strip.tif"
    tifffile.imwrite(path, np.zeros((64, 64, 3), np.uint8), photometric="rgb", rowsperstrip=64)
    with tifffile.TiffFile(path, mode="r+b") as tif:
        for tag in ("ImageWidth", "ImageLength", "RowsPerStrip"):
            tif.pages[0].tags[tag].overwrite(side)
    return path.read_bytes()


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda _: png_claiming(100_000, 100_000, b"\0" * 100), "claims 10,000,000,000 pixels"),
        (
            lambda _: png_claiming(9000, 9000, b"\0" * 100),
            "claims 9000x9000 pixels, over the 67,108,864-pixel",
        ),
        (lambda _: jpeg_claiming(65_000, 65_000), "claims 4,225,000,000 pixels"),
        (lambda _: jpeg_claiming(9000, 9000), "claims 9000x9000 pixels"),
        (
            lambda tmp: tiff_with_one_strip_of(30_000, tmp),
            "tile or strip of 30000x30000x3 decodes to 2,700,000,000",
        ),
    ],
    ids=["png-100k", "png-over-budget", "jpeg-65k", "jpeg-over-budget", "tiff-huge-strip"],
)
def test_headers_over_the_budget_are_refused_before_decoding(make, needle, tmp_path) -> None:
    with pytest.raises(SlideError, match=needle):
        open_slide(io.BytesIO(make(tmp_path)))


def test_a_jpeg_whose_size_is_within_budget_still_decodes(rgb: np.ndarray) -> None:
    blob = imagecodecs.jpeg8_encode(rgb, level=95)
    source = open_slide(io.BytesIO(blob))
    assert (source.height, source.width) == rgb.shape[:2]
    assert source.read_region(0, 0, 10, 10).shape == (10, 10, 3)


def test_a_dicom_whose_frames_are_over_the_budget_is_refused_from_its_tags(shared_data) -> None:
    import warnings

    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(shared_data / "slides" / "pathml_small_dicom.dcm")
        ds.Rows = ds.Columns = 60_000  # one JPEG frame would decode to 10.8 GB
        buf = io.BytesIO()
        ds.save_as(buf)
    with pytest.raises(SlideError, match="frame of 60000x60000x3 decodes to 10,800,000,000 bytes"):
        open_slide(io.BytesIO(buf.getvalue()))


@pytest.mark.parametrize(
    "name",
    ["CMU-1-Small-Region.svs", "tcga-cr-7395-01a-01-ts1.svs", "OS-1-detail.ome.tif", "OS-2-ndpi.ome.tif"],
)
def test_tiles_read_directly_equal_tifffiles_zarr_view(name: str, shared_data) -> None:
    """Tiled level 0 is read tile by tile in the reading thread (`_read_tiles`), not through
    tifffile's zarr view; every region, edges and single pixels too, decodes to the same pixels."""
    blob = (shared_data / "slides" / name).read_bytes()
    direct = open_slide(io.BytesIO(blob))
    assert direct._tiles is not None  # type: ignore[attr-defined]
    viewed = open_slide(io.BytesIO(blob))
    viewed._tiles = None  # type: ignore[attr-defined]
    h, w = direct.height, direct.width
    rng = np.random.default_rng(5)
    regions = [(0, 0, h, w), (h - 1, w - 1, 1, 1), (0, w - 300, 700, 300), (511, 511, 2, 2)]
    for _ in range(8):
        rh, rw = (int(v) for v in rng.integers(1, 1200, 2))
        y, x = int(rng.integers(0, max(1, h - rh))), int(rng.integers(0, max(1, w - rw)))
        regions.append((y, x, min(rh, h - y), min(rw, w - x)))
    for region in regions:
        np.testing.assert_array_equal(direct.read_region(*region), viewed.read_region(*region), str(region))


def test_a_tiled_tiff_with_a_missing_tile_reads_it_as_zeros(rgb: np.ndarray) -> None:
    blob = bytearray(tiff_bytes(rgb, tile=(256, 256), compression="zlib"))
    with tifffile.TiffFile(io.BytesIO(bytes(blob))) as tif:
        page = tif.pages[0]
        offsets, counts = list(page.dataoffsets), list(page.databytecounts)  # type: ignore[union-attr]
        tag = page.tags["TileByteCounts"]  # type: ignore[union-attr]
    # zero the byte count of tile 1 in place (a sparse file: the tile was never written)
    size = 4 if tag.dtype == 4 else 8 if tag.dtype == 16 else 2
    blob[tag.valueoffset + size : tag.valueoffset + 2 * size] = bytes(size)
    src = open_slide(io.BytesIO(bytes(blob)))
    region = src.read_region(0, 0, rgb.shape[0], rgb.shape[1])
    assert counts[1] > 0 and offsets[1] > 0
    assert not region[0:256, 256:512].any()
    np.testing.assert_array_equal(region[0:256, 0:256], rgb[0:256, 0:256])
    np.testing.assert_array_equal(region[256:, 512:], rgb[256:, 512:])  # tiles after it in the file
    viewed = open_slide(io.BytesIO(bytes(blob)))
    viewed._tiles = None  # type: ignore[attr-defined]
    np.testing.assert_array_equal(region, viewed.read_region(0, 0, rgb.shape[0], rgb.shape[1]))
