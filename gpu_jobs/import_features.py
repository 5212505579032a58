"""Import job: a per-object feature table made elsewhere becomes the slide's vector features.

    python -m gpu_jobs.import_features --project P --slide S --source s3://.../FILE
        [--kind imported|handcrafted|foundation]

The table (Parquet, CSV; HDF5 when h5py is installed) has an id column — superpixel `id`, or
the imported object's `external_id` — and either numeric columns or one list column (an
embedding). Rows are read twice in batches: first every id and value is checked (each
superpixel exactly once, finite numbers), then the rows stream into features/{kind}.zarr,
float32 [count, dim], row i = superpixel i + 1, as the embed job writes them. Records
FeaturesCompleted.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from gpu_jobs.common import JobError, parser, progress_bar, record, record_failure, run
from histolabel.composition import service_from_env
from histolabel.imports.errors import ImportRefused, check_size

ID_COLUMNS = ("id", "superpixel", "external_id", "object_id")


def _batches(source_uri: str, name: str) -> Callable[[], Iterator[pa.RecordBatch]]:
    from histolabel.adapters import pyramids

    lower = name.lower()
    if lower.endswith((".h5", ".hdf5", ".hdf")):
        try:
            import h5py  # noqa: F401
        except ImportError:
            raise ImportRefused("HDF5 tables need h5py, which this installation lacks; use Parquet or CSV",
                                name) from None  # fmt: skip
        return lambda: _h5_batches(source_uri, name)

    def parquet() -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq

        with pyramids.open_source(source_uri) as fh:
            try:
                yield from pq.ParquetFile(fh).iter_batches(batch_size=65536)
            except (pa.ArrowInvalid, OSError) as exc:
                raise ImportRefused(f"is not a readable Parquet file: {exc}", name) from None

    def csv() -> Iterator[pa.RecordBatch]:
        import pyarrow.csv as pcsv

        with pyramids.open_source(source_uri) as fh:
            try:
                opts = pcsv.ConvertOptions(
                    column_types={"external_id": pa.string(), "object_id": pa.string()}
                )
                yield from pcsv.open_csv(fh, read_options=pcsv.ReadOptions(block_size=8 << 20),
                                         convert_options=opts)  # fmt: skip
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise ImportRefused(f"is not a readable CSV: {exc}", name) from None

    if lower.endswith(".parquet"):
        return parquet
    if lower.endswith((".csv", ".tsv", ".txt")):
        return csv
    raise ImportRefused("feature tables are .parquet, .csv or .h5", name)


def _h5_batches(source_uri: str, name: str) -> Iterator[pa.RecordBatch]:  # pragma: no cover - needs h5py
    import h5py

    from histolabel.adapters import pyramids

    with pyramids.open_source(source_uri) as fh, h5py.File(fh, "r") as f:
        if "features" not in f or not any(k in f for k in ID_COLUMNS):
            raise ImportRefused("an HDF5 table holds datasets `id` (or `external_id`) and `features`", name)
        key = next(k for k in ID_COLUMNS if k in f)
        feats = f["features"]
        for start in range(0, feats.shape[0], 65536):
            ids = f[key][start : start + 65536]
            vec = np.asarray(feats[start : start + 65536], np.float32)
            arr = pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), vec.shape[1])
            yield pa.record_batch([pa.array(ids), arr], names=[key, "features"])


def _values(batch: pa.RecordBatch, id_col: str, row: int, name: str) -> np.ndarray:
    cols = [c for c in batch.schema.names if c != id_col]
    lists = [c for c in cols if pa.types.is_list(batch.schema.field(c).type)
             or pa.types.is_fixed_size_list(batch.schema.field(c).type)]  # fmt: skip
    if lists:
        if len(cols) != 1:
            raise ImportRefused(f"has a vector column {lists[0]!r} and other columns {cols}; keep one", name)
        col = batch.column(lists[0])
        flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
        if len(col) and flat.size % len(col):
            raise ImportRefused(f"rows of {lists[0]!r} have different lengths", f"rows {row + 1}..")
        return flat.reshape(len(col), -1) if len(col) else np.zeros((0, 0), np.float32)
    numeric = [c for c in cols if pa.types.is_integer(batch.schema.field(c).type)
               or pa.types.is_floating(batch.schema.field(c).type)]  # fmt: skip
    other = [c for c in cols if c not in numeric]
    if other:
        raise ImportRefused(f"column {other[0]!r} is not numeric ({batch.schema.field(other[0]).type})", name)
    if not numeric:
        raise ImportRefused("has no feature columns besides the id", name)
    return np.stack([batch.column(c).to_numpy(zero_copy_only=False) for c in numeric], axis=1).astype(
        np.float32
    )


def import_features(project_id: str, slide_id: str, source_uri: str, kind: str = "imported",
                    progress: str = "auto") -> dict[str, Any]:  # fmt: skip
    from histolabel.adapters import artifacts, pyramids
    from histolabel.adapters.s3 import S3PathError, require_in_bucket
    from histolabel.imports.labels import IdIndex

    try:
        require_in_bucket(source_uri)
    except S3PathError as exc:
        raise JobError(str(exc)) from exc
    name = source_uri.rsplit("/", 1)[-1]
    check_size(pyramids.object_size(source_uri), name)
    state = service_from_env().require_project(project_id)
    slide = state.slides.get(slide_id)
    if slide is None:
        raise JobError(f"slide {slide_id!r} is not registered in {project_id}")
    if slide.segmentation is None:
        raise JobError(f"slide {slide_id!r} has no superpixels yet: segment or import a segmentation first")
    count = int(slide.segmentation["count"])
    batches = _batches(source_uri, name)
    index: list[IdIndex] = []

    def ids_of(batch: pa.RecordBatch, id_col: str, row: int) -> np.ndarray:
        col = batch.column(id_col)
        if id_col in ("external_id", "object_id"):
            if not index:
                index.append(IdIndex(pyramids.read_table(slide.segmentation["table_uri"])))  # type: ignore[index]
            ext = [str(v) for v in col.to_pylist()]
            return index[0].lookup(ext, lambda i: f"row {row + i + 1}")
        if not pa.types.is_integer(col.type):
            raise ImportRefused(f"column {id_col!r} must hold integer superpixel ids, not {col.type}", name)
        ids = col.to_numpy(zero_copy_only=False).astype(np.float64)
        bad = np.flatnonzero(np.isnan(ids) | (ids < 1) | (ids > count))
        if bad.size:
            v = col[int(bad[0])].as_py()
            why = (
                "overflows uint32" if v is not None and v > 2**32 - 1 else f"is not a superpixel (1..{count})"
            )
            raise ImportRefused(f"id {v} {why}", f"row {row + int(bad[0]) + 1}")
        return ids.astype(np.int64)

    # ---- pass 1: check ----
    seen = np.zeros(count + 1, bool)
    dim, id_col, row = 0, "", 0
    for batch in batches():
        if not id_col:
            id_col = next((c for c in ID_COLUMNS if c in batch.schema.names), "")
            if not id_col:
                raise ImportRefused(f"needs an id column ({' or '.join(ID_COLUMNS)})", name)
        ids, values = ids_of(batch, id_col, row), _values(batch, id_col, row, name)
        dim = dim or values.shape[1]
        if values.shape[1] != dim:
            raise ImportRefused(f"has {values.shape[1]} values, earlier rows {dim}", f"row {row + 1}")
        bad_value = np.flatnonzero(~np.isfinite(values).all(axis=1))
        if bad_value.size:
            raise ImportRefused("has a missing or non-finite value", f"row {row + int(bad_value[0]) + 1}")
        again = ids[seen[ids]]
        if again.size or len(np.unique(ids)) != len(ids):
            dup = int(again[0]) if again.size else int(ids[np.flatnonzero(np.diff(np.sort(ids)) == 0)[0]])
            raise ImportRefused(f"has a second row for superpixel {dup}", name)
        seen[ids] = True
        row += batch.num_rows
    missing = np.flatnonzero(~seen[1:]) + 1
    if missing.size:
        raise ImportRefused(
            f"has no row for {missing.size} of the slide's {count} superpixels (e.g. {missing[:5].tolist()})",
            name,
        )
    # ---- pass 2: write ----
    uri = artifacts.features_uri(project_id, slide_id, kind)
    writer = artifacts.FeatureWriter(uri, count, np.ones(count, bool))
    try:
        with progress_bar(count, f"import {kind} features", progress, unit="sp") as update:
            row = 0
            for batch in batches():
                ids = ids_of(batch, id_col, row)
                writer.put(ids - 1, _values(batch, id_col, row, name))
                row += batch.num_rows
                update(batch.num_rows)
        writer.close({"kind": kind, "slide_id": slide_id, "count": count, "source": "import",
                      "file_name": name}, ((dim,), np.float32))  # fmt: skip
    except BaseException:
        artifacts.remove(uri)
        raise
    return {"slide_id": slide_id, "kind": kind, "uri": uri, "dim": int(dim)}


def main(argv: Sequence[str] | None = None) -> int:
    p = parser("import_features", "Import a per-object feature table as the slide's vector features.")
    p.add_argument("--source", required=True, help="s3:// URI of the uploaded table")
    p.add_argument("--kind", choices=["imported", "handcrafted", "foundation"], default="imported")
    args = p.parse_args(argv)
    if not args.slide:
        p.error("--slide is required")
    try:
        data = import_features(args.project, args.slide, args.source, args.kind, args.progress)
    except (JobError, ValueError) as exc:
        if not args.no_events:
            record_failure(args.project, "import_features", args.slide, str(exc))
        raise
    if not args.no_events:
        record(args.project, "FeaturesCompleted", data, "import_features")
    print(f"imported {data['kind']} features of {args.slide}: dim {data['dim']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
