"""Slide readers that decode one tile at a time from any seekable binary file.

Each reader exposes the level-0 size, physical pixel size and objective power when the
source records them, and `read_region(y, x, h, w)` returning uint8 RGB (h, w, 3). Only the
tiles (or strips, or DICOM frames) under the region are read and decoded, so the source may
be an s3fs file that range-reads S3.
"""

from __future__ import annotations

import io
import re
import struct
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Protocol

import numpy as np

MAX_PIXELS = 2**36  # 68 gigapixels: far above any scanner output, refuses corrupt headers


class SlideError(ValueError):
    """The source is not a readable image (corrupt, truncated, empty or unsupported)."""


@dataclass(frozen=True)
class Budget:
    """What a format may cost, checked against its header before anything is decoded: the
    pixels of the whole image, and the bytes of one decode unit (what a reader holds decoded at
    once: the whole image for PNG/JPEG, which are not tiled; one tile or strip of a TIFF; one
    frame of a DICOM). Ingest reads a shard at a time, so its memory is one shard plus the
    decode units under it, never the image."""

    pixels: int
    unit_bytes: int


BUDGETS = {
    # 64 megapixels decoded whole: any camera or screenshot; a slide comes tiled.
    "png": Budget(pixels=2**26, unit_bytes=2**28),
    "jpeg": Budget(pixels=2**26, unit_bytes=2**28),
    "tiff": Budget(pixels=MAX_PIXELS, unit_bytes=2**26),
    "dicom": Budget(pixels=MAX_PIXELS, unit_bytes=2**26),
}


def check_budget(kind: str, width: int, height: int, unit: tuple[int, ...], itemsize: int) -> None:
    """Refuse a header whose image or decode unit (`unit` a shape, of `itemsize`-byte samples)
    is over the format's budget."""
    _check_size(width, height)
    budget = BUDGETS[kind]
    if width * height > budget.pixels:
        raise SlideError(
            f"{kind.upper()} header claims {width}x{height} pixels, over the {budget.pixels:,}-pixel "
            f"budget for {kind.upper()} (store large slides as tiled TIFF, SVS or DICOM)"
        )
    unit_bytes = int(np.prod(unit, dtype=np.int64)) * itemsize
    if unit_bytes > budget.unit_bytes:
        what = "image" if kind in ("png", "jpeg") else {"tiff": "tile or strip", "dicom": "frame"}[kind]
        raise SlideError(
            f"one {what} of {'x'.join(map(str, unit))} decodes to {unit_bytes:,} bytes, over the "
            f"{budget.unit_bytes:,}-byte budget for {kind.upper()}"
        )


class SlideSource(Protocol):
    """A slide's level 0; `read_region` may be called from several threads at once."""

    width: int
    height: int
    mpp: float | None
    magnification: float | None
    format: str

    def read_region(self, y: int, x: int, h: int, w: int) -> np.ndarray: ...


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise SlideError(f"image has zero size ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise SlideError(f"image size {width}x{height} is implausible")


def _to_rgb(block: np.ndarray) -> np.ndarray:
    """Normalise a decoded block to uint8 RGB (grey is repeated, alpha dropped)."""
    if block.dtype != np.uint8:
        if block.dtype.kind in "ui" and block.dtype.itemsize == 2:
            block = (block >> 8).astype(np.uint8)
        elif block.dtype == bool:
            block = block.astype(np.uint8) * 255
        else:
            raise SlideError(f"unsupported sample type {block.dtype}")
    if block.ndim == 2:
        block = block[..., None]
    if block.shape[-1] == 1:
        block = np.repeat(block, 3, axis=-1)
    elif block.shape[-1] == 4:
        block = block[..., :3]
    elif block.shape[-1] != 3:
        raise SlideError(f"unsupported number of samples per pixel: {block.shape[-1]}")
    return np.ascontiguousarray(block)


@dataclass
class TiffSlide:
    """SVS (JPEG or JPEG 2000 tiles), OME-TIFF (either byte order) and generic TIFF.

    Level 0 is the first series' first page; tiles or strips are decoded on demand
    through tifffile's zarr view of that page (which locks the file around each seek and
    read, so several threads may read regions at once).
    """

    fh: IO[bytes]
    width: int = 0
    height: int = 0
    mpp: float | None = None
    magnification: float | None = None
    format: str = "tiff"

    def __post_init__(self) -> None:
        import tifffile
        import zarr

        try:
            self._tif = tifffile.TiffFile(self.fh)
            series = self._tif.series[0]
            page = series.pages[0]
            if page is None:
                raise SlideError("TIFF has no image")
            shape = page.shape
            store = series.aszarr(level=0)
            # tifffile's store for an uncompressed, contiguous page says it is writable;
            # zarr then refuses mode "r". Nothing here ever writes to it.
            self._array = zarr.open_array(store, mode="r" if store.read_only else "r+")
        except SlideError:
            raise
        except Exception as exc:
            raise SlideError(f"not a readable TIFF: {exc}") from exc
        self._axes = series.axes
        self._tiles = page if _direct_tiles(page, series) else None
        if len(shape) < 2:
            raise SlideError(f"TIFF page has shape {shape}, not an image")
        if "Y" not in self._axes or "X" not in self._axes:
            raise SlideError(f"TIFF axes {self._axes!r} have no Y/X")
        self.height = int(self._array.shape[self._axes.index("Y")])
        self.width = int(self._array.shape[self._axes.index("X")])
        check_budget("tiff", self.width, self.height, tuple(self._array.chunks), self._array.dtype.itemsize)
        if self._tif.is_svs:
            self.format = "svs"
            self._svs_metadata(str(getattr(page, "description", "")))
        elif self._tif.is_ome:
            self.format = "ome-tiff"
            self._ome_metadata(self._tif.ome_metadata or "")
        else:
            self._resolution_metadata(page)

    def _svs_metadata(self, description: str) -> None:
        fields = dict(part.split(" = ", 1) for part in description.split("|") if " = " in part)
        if "MPP" in fields:
            self.mpp = _positive_float(fields["MPP"])
        if "AppMag" in fields:
            self.magnification = _positive_float(fields["AppMag"])

    def _ome_metadata(self, xml: str) -> None:
        match = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', xml)
        unit = re.search(r'PhysicalSizeXUnit="([^"]+)"', xml)
        if match:
            scale = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3}.get(unit.group(1) if unit else "µm")
            value = _positive_float(match.group(1))
            if value is not None and scale is not None:
                self.mpp = value * scale
        mag = re.search(r'NominalMagnification="([0-9.eE+-]+)"', xml)
        if mag:
            self.magnification = _positive_float(mag.group(1))

    def _resolution_metadata(self, page: Any) -> None:
        unit = page.tags.get("ResolutionUnit")
        res = page.tags.get("XResolution")
        if unit is None or res is None:
            return
        num, den = res.value
        per_unit = num / den if den else 0
        microns = {2: 25400.0, 3: 10000.0}.get(int(unit.value))
        if microns and per_unit > 0:
            self.mpp = microns / per_unit

    def read_region(self, y: int, x: int, h: int, w: int) -> np.ndarray:
        if self._tiles is not None:
            try:
                return self._read_tiles(self._tiles, y, x, h, w)
            except Exception as exc:
                raise SlideError(f"cannot decode region y={y} x={x} {h}x{w}: {exc}") from exc
        index: list[Any] = []
        kept: list[str] = []
        for axis in self._axes:
            if axis == "Y":
                index.append(slice(y, y + h))
            elif axis == "X":
                index.append(slice(x, x + w))
            elif axis in "SC" and "S" not in kept and "C" not in kept:
                index.append(slice(None))
            else:
                index.append(0)
                continue
            kept.append(axis)
        try:
            block = np.asarray(self._array[tuple(index)])
        except Exception as exc:
            raise SlideError(f"cannot decode region y={y} x={x} {h}x{w}: {exc}") from exc
        # samples last, whatever the planar configuration
        order = [kept.index("Y"), kept.index("X")] + [i for i, a in enumerate(kept) if a in "SC"]
        return _to_rgb(np.transpose(block, order))

    def _read_tiles(self, page: Any, y: int, x: int, h: int, w: int) -> np.ndarray:
        """The region from the page's tiles, read under the file's lock and decoded in the
        calling thread. Through tifffile's zarr view every tile is decoded on zarr's one I/O
        thread, whatever the number of threads reading: the ingest job's decoding ran on one
        core."""
        th, tw = int(page.tilelength), int(page.tilewidth)
        across = -(-self.width // tw)
        out = np.zeros((h, w, 3), np.uint8)
        rows = range(y // th, (y + h - 1) // th + 1)
        cols = range(x // tw, (x + w - 1) // tw + 1)
        # A tile never written (no bytes) stays zero, tifffile's own fill value. It is left out
        # of the read: tifffile's read_segments loses its place in the file after one.
        indices = [i for i in (r * across + c for r in rows for c in cols) if page.databytecounts[i]]
        offsets = [page.dataoffsets[i] for i in indices]
        counts = [page.databytecounts[i] for i in indices]
        fh = self._tif.filehandle
        for data, index in fh.read_segments(offsets, counts, indices, lock=fh.lock, flat=True):
            i = int(index)  # type: ignore[arg-type]  # flat=True: an index, not a nested tuple
            tile = page.decode(data, i, jpegtables=page.jpegtables)[0]
            ty, tx = (i // across) * th, (i % across) * tw
            y0, x0 = max(y, ty), max(x, tx)
            y1, x1 = min(y + h, ty + th, self.height), min(x + w, tx + tw, self.width)
            out[y0 - y : y1 - y, x0 - x : x1 - x] = _to_rgb(tile[0, y0 - ty : y1 - ty, x0 - tx : x1 - tx])
        return out

    def close(self) -> None:
        self._tif.close()


def _direct_tiles(page: Any, series: Any) -> bool:
    """Whether level 0 is one tiled page of interleaved 8-bit samples, which `_read_tiles` reads;
    anything else (strips, planes, stacks, other sample types) goes through tifffile's zarr view."""
    return bool(
        page.is_tiled
        and len(series.pages) == 1
        and series.axes in ("YXS", "YX")
        and int(getattr(page, "imagedepth", 1)) == 1
        and int(page.planarconfig) == 1
        and page.dtype == np.uint8
    )


@dataclass
class DicomSlide:
    """DICOM VL Whole Slide Microscopy, TILED_FULL, one encapsulated fragment per frame."""

    fh: IO[bytes]
    width: int = 0
    height: int = 0
    mpp: float | None = None
    magnification: float | None = None
    format: str = "dicom"

    def __post_init__(self) -> None:
        import pydicom

        self._lock = threading.Lock()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(self.fh, stop_before_pixels=True)
            pixel_tag_at = self.fh.tell()
            self.width = int(ds.get("TotalPixelMatrixColumns", ds.Columns))
            self.height = int(ds.get("TotalPixelMatrixRows", ds.Rows))
            self._tile_h, self._tile_w = int(ds.Rows), int(ds.Columns)
            self._frames = int(ds.get("NumberOfFrames", 1))
            self._samples = int(ds.SamplesPerPixel)
            self._bits = int(ds.BitsAllocated)
            self._syntax = str(ds.file_meta.TransferSyntaxUID)
            self._photometric = str(ds.PhotometricInterpretation)
        except SlideError:
            raise
        except Exception as exc:
            raise SlideError(f"not a readable DICOM image: {exc}") from exc
        if self._tile_w <= 0 or self._tile_h <= 0:
            raise SlideError("DICOM frame has zero size")
        if self._bits not in (8, 16):
            raise SlideError(f"unsupported DICOM BitsAllocated {self._bits}")
        frame = (self._tile_h, self._tile_w, self._samples)
        check_budget("dicom", self.width, self.height, frame, self._bits // 8)
        if str(ds.get("DimensionOrganizationType", "TILED_FULL")) not in ("TILED_FULL", ""):
            raise SlideError("only TILED_FULL DICOM WSI is supported")
        self._cols = -(-self.width // self._tile_w)
        rows = -(-self.height // self._tile_h)
        if self._cols * rows > self._frames:
            raise SlideError(f"DICOM has {self._frames} frames, needs {self._cols * rows} for its matrix")
        self._decode = _dicom_decoder(self._syntax)
        self._encapsulated = self._decode is not None
        self._index = self._frame_index(pixel_tag_at)
        try:
            shared = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
            self.mpp = float(shared.PixelSpacing[1]) * 1000.0
        except (AttributeError, IndexError, KeyError, TypeError, ValueError):
            self.mpp = None
        try:
            self.magnification = float(ds.OpticalPathSequence[0].ObjectiveLensPower)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError):
            self.magnification = None

    def _frame_index(self, at: int) -> list[tuple[int, int]]:
        fh = self.fh
        fh.seek(at)
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"\xe0\x7f\x10\x00":
            raise SlideError("DICOM has no pixel data")
        length = struct.unpack("<I", head[8:12])[0]
        frame_bytes = self._tile_h * self._tile_w * self._samples * self._bits // 8
        if not self._encapsulated:
            if length < frame_bytes * self._frames:
                raise SlideError("DICOM pixel data is truncated")
            return [(at + 12 + i * frame_bytes, frame_bytes) for i in range(self._frames)]
        index: list[tuple[int, int]] = []
        pos = at + 12
        first = True
        while True:
            fh.seek(pos)
            item = fh.read(8)
            if len(item) < 8:
                raise SlideError("DICOM pixel data is truncated")
            group, element, size = struct.unpack("<HHI", item)
            if (group, element) == (0xFFFE, 0xE0DD):
                break
            if (group, element) != (0xFFFE, 0xE000):
                raise SlideError("DICOM encapsulated pixel data is corrupt")
            if not first:
                index.append((pos + 8, size))
            first = False
            pos += 8 + size
        if len(index) != self._frames:
            raise SlideError(f"DICOM has {len(index)} fragments for {self._frames} frames")
        fh.seek(0, io.SEEK_END)
        if index and index[-1][0] + index[-1][1] > fh.tell():
            raise SlideError("DICOM pixel data is truncated")
        return index

    def _tile(self, row: int, col: int) -> np.ndarray:
        offset, size = self._index[row * self._cols + col]
        with self._lock:  # regions are read from several threads; frames decode outside the lock
            self.fh.seek(offset)
            data = self.fh.read(size)
        if len(data) < size:
            raise SlideError("DICOM frame is truncated")
        try:
            if self._decode is not None:
                # Into a buffer of the frame's size: a frame whose own header claims more is
                # refused by the codec instead of being allocated.
                shape = (self._tile_h, self._tile_w, self._samples)[: 3 if self._samples > 1 else 2]
                out = np.empty(shape, np.uint8 if self._bits == 8 else np.uint16)
                tile = self._decode(data, out=out)
            else:
                tile = np.frombuffer(data, np.uint8 if self._bits == 8 else np.uint16).reshape(
                    self._tile_h, self._tile_w, self._samples
                )
        except Exception as exc:
            raise SlideError(f"cannot decode DICOM frame {row},{col}: {exc}") from exc
        return _to_rgb(tile)

    def read_region(self, y: int, x: int, h: int, w: int) -> np.ndarray:
        out = np.zeros((h, w, 3), np.uint8)
        th, tw = self._tile_h, self._tile_w
        for row in range(y // th, (y + h - 1) // th + 1):
            for col in range(x // tw, (x + w - 1) // tw + 1):
                tile = self._tile(row, col)
                ty0, tx0 = row * th, col * tw
                ys, xs = max(y, ty0), max(x, tx0)
                ye, xe = min(y + h, ty0 + tile.shape[0]), min(x + w, tx0 + tile.shape[1])
                out[ys - y : ye - y, xs - x : xe - x] = tile[ys - ty0 : ye - ty0, xs - tx0 : xe - tx0]
        return out


def _dicom_decoder(syntax: str) -> Callable[..., np.ndarray] | None:
    import imagecodecs

    decoders: dict[str, Callable[..., np.ndarray] | None] = {
        "1.2.840.10008.1.2.1": None,  # explicit VR little endian, native pixels
        "1.2.840.10008.1.2": None,
        "1.2.840.10008.1.2.4.50": imagecodecs.jpeg8_decode,
        "1.2.840.10008.1.2.4.51": imagecodecs.jpeg8_decode,
        "1.2.840.10008.1.2.4.57": imagecodecs.ljpeg_decode,
        "1.2.840.10008.1.2.4.70": imagecodecs.ljpeg_decode,
        "1.2.840.10008.1.2.4.90": imagecodecs.jpeg2k_decode,
        "1.2.840.10008.1.2.4.91": imagecodecs.jpeg2k_decode,
    }
    if syntax not in decoders:
        raise SlideError(f"unsupported DICOM transfer syntax {syntax}")
    return decoders[syntax]


# PNG colour type -> samples per pixel (IHDR byte 25); the bit depth is byte 24.
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _plain_header(fh: IO[bytes]) -> tuple[str, int, int, tuple[int, ...], int]:
    """(format, width, height, decoded shape, bytes per sample) of a PNG or JPEG from its header
    alone: PIL opens lazily, and nothing is decoded."""
    from PIL import Image

    head = fh.read(26)
    fh.seek(0)
    kind = "png" if head[:8] == b"\x89PNG\r\n\x1a\n" else "jpeg"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fh) as im:
                width, height = im.size
                bands = len(im.getbands())
                found = str(im.format).lower()
    except Image.DecompressionBombError as exc:
        # PIL's own limit (checked as it opens) is above ours; its message names the claim.
        claimed = re.search(r"\((\d+) pixels\)", str(exc))
        what = f"{int(claimed.group(1)):,} pixels" if claimed else "too many pixels"
        raise SlideError(
            f"{kind.upper()} header claims {what}, over the {BUDGETS[kind].pixels:,}-pixel budget for "
            f"{kind.upper()} (store large slides as tiled TIFF, SVS or DICOM)"
        ) from None
    except Exception as exc:
        raise SlideError(f"cannot decode {kind.upper()}: unreadable header ({exc})") from exc
    finally:
        fh.seek(0)
    if found not in ({"png"} if kind == "png" else {"jpeg", "mpo"}):
        raise SlideError(f"cannot decode {kind.upper()}: the header is {found.upper()}'s")
    if kind == "png":
        samples, itemsize = _PNG_SAMPLES.get(head[25], 4), 2 if head[24] == 16 else 1
    else:
        samples, itemsize = bands, 1
    return kind, width, height, (height, width, samples), itemsize


@dataclass
class PlainImage:
    """PNG or JPEG: not tiled, so it is decoded whole, and only once its header shows it is
    within the format's budget (a 1 MB PNG may claim 100k x 100k pixels)."""

    fh: IO[bytes]
    width: int = 0
    height: int = 0
    mpp: float | None = None
    magnification: float | None = None
    format: str = "png"

    def __post_init__(self) -> None:
        import imagecodecs

        self.format, width, height, unit, itemsize = _plain_header(self.fh)
        check_budget(self.format, width, height, unit, itemsize)
        data = self.fh.read()
        try:
            if self.format == "png":
                pixels = imagecodecs.png_decode(data)
            else:
                # Into a buffer of the header's size, so a later marker claiming more is refused.
                out = np.empty(unit if unit[-1] > 1 else unit[:2], np.uint8)
                pixels = imagecodecs.jpeg8_decode(data, out=out)
        except Exception as exc:
            raise SlideError(f"cannot decode {self.format.upper()}: {exc}") from exc
        self._pixels = _to_rgb(np.asarray(pixels))
        self.height, self.width = self._pixels.shape[:2]
        if (self.width, self.height) != (width, height):
            raise SlideError(
                f"{self.format.upper()} decodes to {self.width}x{self.height}, not its header's size"
            )

    def read_region(self, y: int, x: int, h: int, w: int) -> np.ndarray:
        return self._pixels[y : y + h, x : x + w].copy()


def _positive_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value > 0 else None


def sniff_format(head: bytes) -> str:
    """The container format from the first bytes of a file."""
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    raise SlideError("not a supported image (expected TIFF/SVS/OME-TIFF, DICOM, PNG or JPEG)")


def open_slide(fh: IO[bytes]) -> SlideSource:
    """Open a slide from a seekable binary file; raises SlideError for anything unreadable."""
    head = fh.read(132)
    if not head:
        raise SlideError("file is empty")
    fh.seek(0)
    kind = sniff_format(head)
    if kind == "tiff":
        return TiffSlide(fh)
    if kind == "dicom":
        return DicomSlide(fh)
    return PlainImage(fh)
