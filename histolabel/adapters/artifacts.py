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
    rows = max(1, min(values.shape[0], max(1, (8 << 20) // max(values[0:1].nbytes, 1))))
    chunks = (rows, *values.shape[1:])
    arr = zarr.create_array(
        store=zarr_store(uri, mode="w"), shape=values.shape, dtype=values.dtype, chunks=chunks, zarr_format=3
    )
    arr[...] = values
    arr.attrs.update(attrs or {})


def read_features(uri: str) -> NDArray[Any]:
    return np.asarray(zarr.open_array(store=zarr_store(uri, mode="r"), mode="r")[...])


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
    return pq.read_table(io.BytesIO(read_bytes(uri)))


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
