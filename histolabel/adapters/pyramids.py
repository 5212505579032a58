"""S3 I/O for slide pyramids, label pyramids and superpixel tables (zarr and Parquet via s3fs)."""

from __future__ import annotations

from typing import IO, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import zarr

from histolabel.adapters.s3 import filesystem, require_in_bucket, require_readable_source, zarr_store
from histolabel.adapters.whole_objects import WholeObjects
from histolabel.config import Settings
from histolabel.slides.ngff import read_multiscale

READ_BLOCK = 4 * 2**20  # range-read size: a few tiles of a slide per request


def open_source(uri: str, settings: Settings | None = None) -> IO[bytes]:
    """A seekable, range-reading binary file on a slide source (the data bucket or an
    allow-listed source bucket)."""
    bucket, key = require_readable_source(uri, settings)
    fs = filesystem(settings)
    if not fs.isfile(f"{bucket}/{key}"):
        raise FileNotFoundError(f"{uri} does not exist")
    return fs.open(f"{bucket}/{key}", "rb", block_size=READ_BLOCK, cache_type="readahead")


def object_size(uri: str, settings: Settings | None = None) -> int:
    bucket, key = require_readable_source(uri, settings)
    return int(filesystem(settings).size(f"{bucket}/{key}"))


def prefix_size(uri: str, settings: Settings | None = None) -> int:
    """Total bytes of all objects under a prefix (a zarr hierarchy)."""
    bucket, key = require_in_bucket(uri, settings)
    fs = filesystem(settings)
    fs.invalidate_cache()
    return int(sum(fs.du(f"{bucket}/{key}".rstrip("/"), total=False).values()))


def remove_prefix(uri: str, settings: Settings | None = None) -> None:
    """Delete every object under a prefix; nothing there is fine."""
    bucket, key = require_in_bucket(uri, settings)
    fs = filesystem(settings)
    path = f"{bucket}/{key}".rstrip("/")
    # zarr writes through another (async) s3fs instance, so this one's listings may be stale
    fs.invalidate_cache()
    keys = fs.find(path)
    if fs.isfile(path):
        keys.append(path)
    if keys:
        fs.rm(keys)
    fs.invalidate_cache()


WINDOW_BYTES = 96 * 2**20  # whole shards a job's window reader keeps: about ten of a slide's


def open_group(
    uri: str, mode: Literal["r", "a", "w"] = "r", settings: Settings | None = None, *, whole: int = 0
) -> zarr.Group:
    """A zarr v3 group on S3 (mode "w" starts it empty, "a" keeps what is there). `whole` (read
    mode): read each object in one GET and keep that many bytes of them (`WholeObjects`), for a
    reader that goes over a slide tile by tile."""
    require_in_bucket(uri, settings)
    store: Any = zarr_store(uri, mode="r" if mode == "r" else "w", settings=settings)
    if whole and mode == "r":
        store = WholeObjects(store, whole)
    return zarr.open_group(store, mode=mode, zarr_format=3)


TABLE_ROW_GROUP = 16384  # rows per Parquet row group: a reader of a few ids reads ~0.5 MB, not all


def _id_ranges(meta: pq.FileMetaData) -> list[tuple[int, int]]:
    col = meta.schema.names.index("id")
    out = []
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(col).statistics
        if stats is None or not stats.has_min_max:
            return [(0, 2**63 - 1)] * meta.num_row_groups  # no statistics: every group may hold any id
        out.append((int(stats.min), int(stats.max)))
    return out


def groups_holding(ranges: list[tuple[int, int]], ids: np.ndarray) -> list[int]:
    """The row groups whose (min id, max id) range may hold one of `ids`."""
    return [g for g, (lo, hi) in enumerate(ranges) if len(ids) and ((ids >= lo) & (ids <= hi)).any()]


def table_row_groups(uri: str, settings: Settings | None = None) -> list[tuple[int, int]]:
    """(min id, max id) of each row group of a superpixel table, from its footer alone."""
    bucket, key = require_in_bucket(uri, settings)
    with filesystem(settings).open(f"{bucket}/{key}", "rb") as fh:
        return _id_ranges(pq.ParquetFile(fh).metadata)


def read_row_group(
    uri: str, group: int, columns: list[str] | None = None, settings: Settings | None = None
) -> pa.Table:
    bucket, key = require_in_bucket(uri, settings)
    with filesystem(settings).open(f"{bucket}/{key}", "rb") as fh:
        return pq.ParquetFile(fh).read_row_group(group, columns=columns)


def read_rows(uri: str, ids: list[int], columns: list[str], settings: Settings | None = None) -> pa.Table:
    """The rows of a table (its `columns`, "id" among them) whose id is one of `ids`, reading
    only the row groups whose id range (the footer's statistics) may hold one."""
    bucket, key = require_in_bucket(uri, settings)
    want = np.unique(np.asarray(ids, np.int64))
    with filesystem(settings).open(f"{bucket}/{key}", "rb") as fh:
        pf = pq.ParquetFile(fh)
        groups = groups_holding(_id_ranges(pf.metadata), want)
        table = pf.read_row_groups(groups, columns=columns) if groups else pf.schema_arrow.empty_table()
    return table.filter(pc.is_in(table.column("id"), value_set=pa.array(want))).select(columns)


def write_table(table: pa.Table, uri: str, settings: Settings | None = None) -> None:
    bucket, key = require_in_bucket(uri, settings)
    with filesystem(settings).open(f"{bucket}/{key}", "wb") as fh:
        pq.write_table(table, fh, compression="zstd", row_group_size=TABLE_ROW_GROUP)


def read_table(uri: str, settings: Settings | None = None) -> pa.Table:
    bucket, key = require_in_bucket(uri, settings)
    with filesystem(settings).open(f"{bucket}/{key}", "rb") as fh:
        return pq.read_table(fh)


def upload_file(path: str, uri: str, settings: Settings | None = None) -> None:
    bucket, key = require_in_bucket(uri, settings)
    filesystem(settings).put_file(path, f"{bucket}/{key}")


def group_attrs(uri: str, settings: Settings | None = None) -> dict[str, Any]:
    return dict(open_group(uri, "r", settings).attrs)


class S3LevelWindow:
    """Picklable RGB window reader over one level of an OME-Zarr image on S3.

    Opens its zarr array lazily, so each worker process holds its own connection.
    """

    def __init__(self, uri: str, level: int) -> None:
        self.uri, self.level = uri, level
        self._array: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"uri": self.uri, "level": self.level, "_array": None}

    def __call__(self, y0: int, x0: int, y1: int, x1: int) -> Any:
        import numpy as np

        if self._array is None:
            self._array = open_group(self.uri, "r", whole=WINDOW_BYTES)[str(self.level)]
        return np.ascontiguousarray(np.moveaxis(np.asarray(self._array[:, y0:y1, x0:x1]), 0, -1))


class S3LabelSink:
    """Picklable writer of label blocks into level 0 of a (1, y, x) label array on S3.

    Blocks are shard-aligned, so concurrent writers never share a shard object.
    """

    def __init__(self, uri: str, path: str = "0") -> None:
        self.uri, self.path = uri, path
        self._array: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"uri": self.uri, "path": self.path, "_array": None}

    def __call__(self, y: int, x: int, ids: Any) -> None:
        if self._array is None:
            self._array = open_group(self.uri, "a")[self.path]
        self._array[0, y : y + ids.shape[0], x : x + ids.shape[1]] = ids


class LabelReader:
    """Crops of a label pyramid's finest level, in level-0 pixel coordinates."""

    def __init__(self, labels_uri: str) -> None:
        group = open_group(labels_uri, "r")
        attrs: dict[str, Any] = dict(group.attrs)
        self.scale = 2 ** int(attrs.get("histolabel", {}).get("image_level", 0))
        path = read_multiscale(attrs).paths[0]
        self.array: Any = group[path]

    def box(self, bbox: np.ndarray) -> tuple[int, int, int, int]:
        """A level-0 bbox in this level's pixels (end-exclusive, at least one pixel)."""
        y0, x0, y1, x1 = (int(v) for v in bbox)
        s = self.scale
        ly0, lx0 = y0 // s, x0 // s
        return ly0, lx0, max(-(-y1 // s), ly0 + 1), max(-(-x1 // s), lx0 + 1)

    def outlines(self, boxes: dict[int, np.ndarray]) -> dict[int, list[list[float]]]:
        """Level-0 outlines of the superpixels `boxes` (id -> level-0 bbox), a window per tile."""
        from histolabel.api.export import outlines

        # The label image is (1, y, x) as the segment job writes it (NGFF's channel axis kept).
        lead = (0,) * (self.array.ndim - 2)

        def window(y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
            return np.asarray(self.array[(*lead, slice(y0, y1), slice(x0, x1))])

        return outlines(window, {sp: self.box(b) for sp, b in boxes.items()}, self.scale)
