"""The artifact store contract (`histolabel.adapters.artifacts`, what the jobs write and the API
reads): bytes and models read back as written, a feature array rewritten smaller leaves no stale
rows, rows come back in the order asked (repeats too), a streamed writer equals a whole write,
removal takes a whole prefix, and a slide's predictions map ids to rows.

The store is the module (or anything with its functions), so a broken variant is the module with
one function replaced."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa

from histolabel.adapters import artifacts
from tests.contracts.checks import Checks

CHECKS = Checks()
check = CHECKS.check


def fresh_prefix() -> str:
    return f"{artifacts.project_prefix(f'contract-{uuid.uuid4().hex[:10]}')}"


def variant(**replaced: Any) -> Any:
    """The artifacts module with some functions replaced (a broken adapter)."""
    names = {n: getattr(artifacts, n) for n in dir(artifacts) if not n.startswith("__")}
    return SimpleNamespace(**{**names, **replaced})


@check
def bytes_read_back_and_an_overwrite_replaces(a: Any) -> None:
    uri = f"{fresh_prefix()}/notes/a.bin"
    assert not a.exists(uri)
    a.write_bytes(uri, b"first")
    a.write_bytes(uri, b"second, longer")
    assert a.exists(uri) and a.read_bytes(uri) == b"second, longer"


@check
def a_removal_takes_the_whole_prefix_and_an_absent_one_is_harmless(a: Any) -> None:
    root = fresh_prefix()
    a.write_features(f"{root}/slides/s1/features/handcrafted.zarr", np.ones((5, 3), np.float32))
    a.write_bytes(f"{root}/slides/s1/features/handcrafted.zarr/extra", b"x")
    a.remove(f"{root}/slides/s1/features/handcrafted.zarr")
    # Objects, not "directories": S3 has none (s3fs may still call an emptied prefix one).
    assert not a.exists(f"{root}/slides/s1/features/handcrafted.zarr/zarr.json")
    assert not a.exists(f"{root}/slides/s1/features/handcrafted.zarr/extra")
    a.remove(f"{root}/slides/s1/features/never.zarr")


@check
def features_read_back_with_dtype_and_attrs_and_a_smaller_rewrite_leaves_nothing_stale(a: Any) -> None:
    uri = f"{fresh_prefix()}/slides/s1/features/handcrafted.zarr"
    rng = np.random.default_rng(0)
    big = rng.normal(size=(300, 8)).astype(np.float32)
    a.write_features(uri, big, {"names": ["f"] * 8})
    small = rng.normal(size=(40, 8)).astype(np.float32)
    a.write_features(uri, small, {"names": ["g"] * 8})
    back = a.read_features(uri)
    assert back.dtype == np.float32 and back.shape == (40, 8)
    np.testing.assert_array_equal(back, small)
    assert dict(a.open_features(uri).attrs)["names"] == ["g"] * 8


@check
def rows_come_back_in_the_order_asked_with_repeats(a: Any) -> None:
    uri = f"{fresh_prefix()}/slides/s1/features/handcrafted.zarr"
    values = np.arange(50 * 4, dtype=np.float32).reshape(50, 4)
    a.write_features(uri, values)
    arr = a.open_features(uri)
    rows = np.array([42, 3, 3, 0, 49, 17], np.int64)
    np.testing.assert_array_equal(a.feature_rows(arr, rows), values[rows])
    assert a.feature_rows(arr, np.array([], np.int64)).shape == (0, 4)


@check
def a_streamed_writer_equals_a_whole_write(a: Any) -> None:
    root = fresh_prefix()
    n = 97
    values = np.random.default_rng(1).normal(size=(n, 6)).astype(np.float32)
    expected = np.ones(n, bool)
    expected[[5, 60]] = False  # superpixels no tile holds stay zero
    whole = values.copy()
    whole[~expected] = 0
    writer = a.FeatureWriter(f"{root}/streamed.zarr", n, expected)
    order = np.flatnonzero(expected)[::-1]  # tiles arrive in any order
    for part in np.array_split(order, 7):
        writer.put(part.astype(np.int64), values[part])
    assert writer.close({"kind": "handcrafted"}, ((6,), np.float32)) == (6,)
    np.testing.assert_array_equal(a.read_features(f"{root}/streamed.zarr"), whole)
    empty = a.FeatureWriter(f"{root}/empty.zarr", 3, np.zeros(3, bool))
    assert empty.close({}, ((6,), np.float32)) == (6,)
    assert a.read_features(f"{root}/empty.zarr").shape == (3, 6)


@check
def a_model_reads_back_with_its_meta(a: Any) -> None:
    pid = f"contract-{uuid.uuid4().hex[:10]}"
    prefix = a.write_model(pid, 3, b"\x00weights\xff", {"version": 3, "f1": 0.8})
    assert prefix == a.model_prefix(pid, 3)
    weights, meta = a.read_model(prefix + "/")
    assert weights == b"\x00weights\xff" and meta == {"version": 3, "f1": 0.8}


@check
def a_slides_predictions_map_ids_to_rows(a: Any) -> None:
    prefix = f"{fresh_prefix()}/predictions/1"
    table = pa.table(
        {
            "id": pa.array([4, 1, 2], pa.int64()),
            "certainty": pa.array([0.4, 0.1, 0.2], pa.float32()),
            "batch": pa.array([0, -1, 1], pa.int32()),
            "batch_rank": pa.array([2, 0, 1], pa.int32()),
        }
    )
    a.write_predictions(f"{prefix}/s1.parquet", table)
    assert a.read_predictions(f"{prefix}/s1.parquet").equals(table)
    scores = a.slide_scores(prefix, "s1")
    assert scores.slide_id == "s1"
    np.testing.assert_allclose(scores.certainty, [0.1, 0.2, np.inf, 0.4])
    assert scores.batch is not None and scores.batch_rank is not None
    assert scores.batch.tolist() == [-1, 1, -1, 0] and scores.batch_rank[[1, 3]].tolist() == [1, 2]
