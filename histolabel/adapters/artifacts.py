"""S3 I/O of the learning artifacts: feature arrays (Zarr), models (safetensors + meta.json,
versioned) and predictions (Parquet per slide), at the paths of docs/architecture.md."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr
from numpy.typing import NDArray

from histolabel.adapters.s3 import filesystem, split_uri, zarr_store
from histolabel.config import Settings, get_settings
from histolabel.learning.queue import SlideScores


def project_prefix(project_id: str, settings: Settings | None = None) -> str:
    s = settings or get_settings()
    return f"s3://{s.data_bucket}/projects/{project_id}"


def features_uri(project_id: str, slide_id: str, kind: str, settings: Settings | None = None) -> str:
    return f"{project_prefix(project_id, settings)}/slides/{slide_id}/features/{kind}.zarr"


def model_prefix(project_id: str, version: int, settings: Settings | None = None) -> str:
    return f"{project_prefix(project_id, settings)}/models/{version}"


def predictions_prefix(project_id: str, version: int, settings: Settings | None = None) -> str:
    return f"{project_prefix(project_id, settings)}/predictions/{version}"


def _key(uri: str) -> str:
    bucket, key = split_uri(uri)
    return f"{bucket}/{key}"


def remove(uri: str) -> None:
    fs = filesystem()
    if fs.exists(_key(uri)):
        fs.rm(_key(uri), recursive=True)


def write_features(uri: str, values: NDArray[Any], attrs: dict[str, Any] | None = None) -> None:
    """A float32 [n, dim] array (uint8 [n, 3, s, s] for patches), chunked by rows."""
    remove(uri)
    rows = _chunk_rows(values[0:1].nbytes, values.shape[0])
    chunks = (rows, *values.shape[1:])
    arr = zarr.create_array(
        store=zarr_store(uri, mode="w"), shape=values.shape, dtype=values.dtype, chunks=chunks, zarr_format=3
    )
    arr[...] = values
    arr.attrs.update(attrs or {})


def _chunk_rows(row_nbytes: int, n: int) -> int:
    return max(1, min(n, (8 << 20) // max(row_nbytes, 1)))


class FeatureWriter:
    """Streams a slide's feature rows into the Zarr array `write_features` would make, a chunk at
    a time (see `ChunkedRows`): rows arrive grouped by tile, in any order."""

    def __init__(self, uri: str, n: int, expected: NDArray[np.bool_]) -> None:
        self.uri, self.n, self.expected = uri, n, expected
        self.array: Any = None
        self.rows: Any = None  # a ChunkedRows once the first rows tell the row shape
        remove(uri)

    def put(self, idx: NDArray[np.int64], values: NDArray[Any]) -> None:
        if self.rows is None:
            self._create(values.shape[1:], values.dtype)
        assert self.rows is not None
        self.rows.put(idx, values)

    def _create(self, row_shape: tuple[int, ...], dtype: Any) -> None:
        from histolabel.learning.embedding import ChunkedRows

        rows = _chunk_rows(int(np.prod(row_shape)) * np.dtype(dtype).itemsize, self.n)
        self.array = zarr.create_array(
            store=zarr_store(self.uri, mode="w"),
            shape=(self.n, *row_shape),
            dtype=dtype,
            chunks=(rows, *row_shape),
            zarr_format=3,
        )

        def write(start: int, block: NDArray[Any]) -> None:
            self.array[start : start + block.shape[0]] = block

        self.rows = ChunkedRows(self.n, rows, self.expected, write)

    def close(self, attrs: dict[str, Any], empty_row: tuple[tuple[int, ...], Any]) -> tuple[int, ...]:
        """Flush what is left; `empty_row` (shape, dtype) makes the array if no row ever came.
        Returns the row shape."""
        if self.rows is None:
            self._create(*empty_row)
        assert self.rows is not None
        self.rows.close()
        self.array.attrs.update(attrs)
        return tuple(self.array.shape[1:])


def read_features(uri: str) -> NDArray[Any]:
    return np.asarray(open_features(uri)[...])


def open_features(uri: str) -> Any:
    """The feature array itself, read lazily (slices and `.oindex[rows]` fetch only their chunks)."""
    return zarr.open_array(store=zarr_store(uri, mode="r"), mode="r")


def feature_rows(array: Any, rows: NDArray[np.int64]) -> NDArray[Any]:
    """Rows `rows` (any order, repeats allowed) of an opened feature array, reading only the
    chunks that hold them."""
    unique, inverse = np.unique(rows, return_inverse=True)
    if unique.size == 0:
        return np.zeros((0, *array.shape[1:]), array.dtype)
    return np.asarray(array.oindex[unique])[inverse]


def read_bytes(uri: str) -> bytes:
    with filesystem().open(_key(uri), "rb") as fh:
        data: bytes = fh.read()
        return data


def write_bytes(uri: str, data: bytes) -> None:
    with filesystem().open(_key(uri), "wb") as fh:
        fh.write(data)


def exists(uri: str) -> bool:
    return bool(filesystem().exists(_key(uri)))


def write_model(project_id: str, version: int, weights: bytes, meta: dict[str, Any]) -> str:
    """Weights first, meta.json last: a model counts as present once its meta exists."""
    prefix = model_prefix(project_id, version)
    write_bytes(f"{prefix}/model.safetensors", weights)
    write_bytes(f"{prefix}/meta.json", json.dumps(meta, indent=1, sort_keys=True).encode())
    return prefix


def read_model(prefix: str) -> tuple[bytes, dict[str, Any]]:
    meta = json.loads(read_bytes(f"{prefix.rstrip('/')}/meta.json"))
    return read_bytes(f"{prefix.rstrip('/')}/model.safetensors"), meta


def write_predictions(uri: str, table: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    write_bytes(uri, buf.getvalue())


def read_predictions(uri: str) -> pa.Table:
    # One file's reader, not pq.read_table: that loads pyarrow's dataset module (19 MB resident,
    # measured) in every process that reads a table (the predict job, the queue's function).
    return pq.ParquetFile(io.BytesIO(read_bytes(uri))).read()


def slide_scores(uri_prefix: str, slide_id: str) -> SlideScores:
    """A slide's certainty (and BatchBALD batches) for `queue.guided_order`."""
    t = read_predictions(f"{uri_prefix.rstrip('/')}/{slide_id}.parquet")
    ids = t.column("id").to_numpy()
    n = int(ids.max()) if ids.size else 0
    cert = np.full(n, np.inf, np.float32)
    cert[ids - 1] = t.column("certainty").to_numpy()
    batch = rank = None
    if "batch" in t.column_names:
        batch = np.full(n, -1, np.int32)
        rank = np.zeros(n, np.int32)
        batch[ids - 1] = t.column("batch").to_numpy()
        rank[ids - 1] = t.column("batch_rank").to_numpy()
    return SlideScores(slide_id, cert, batch, rank)
