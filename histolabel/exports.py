"""Project exports written as files by the export job (gpu_jobs/export.py), for exports too large
to build inside an API request (a GeoJSON of 10^6 superpixel outlines is minutes of work and
~1 GB): the same rows, columns and outlines as GET .../export (histolabel/api/export.py), a slide
at a time, outlines traced by a process pool a chunk of neighbouring superpixels per task, the
file streamed to local disk and uploaded, with progress beside it.

Layout (data bucket): `projects/{project}/exports/jobs/{job id}/{project}.{format}` and
`.../progress.json` ({"state": running|done, "slides", "slides_done", "rows", "bytes", "key"}),
both tagged as exports so the bucket's rule expires them.
"""

from __future__ import annotations

import csv
import functools
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from multiprocessing import get_context
from typing import IO, Any

import numpy as np

from histolabel.api import export
from histolabel.api.review import Row, rows_for_slide
from histolabel.api.tables import Predictions, SuperpixelTable
from histolabel.projections.project import ProjectState

FORMATS = {"geojson": "application/geo+json", "csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
PROGRESS = "progress.json"
CHUNK = 4096  # superpixels one outline task traces: enough to amortise a worker call, small in memory
TILE = 2048  # label px: chunks are cut in tile order, so a task reads few windows


def export_prefix(project_id: str, job_id: str) -> str:
    return f"projects/{project_id}/exports/jobs/{job_id}"


def export_filename(project_id: str, fmt: str) -> str:
    return f"{project_id}.{fmt}"


class OutsideProject(ValueError):
    """The project's state names an object outside the project's prefix."""


Own = Callable[[str], str]  # a URI from the project's state, refused when outside the project


def slide_rows(
    svc: Any, state: ProjectState, slide_id: str, own: Own, read_table: Callable[[str], Any]
) -> list[Row]:
    """Review rows (rows_for_slide) of one slide: current labels, the latest predictions' lookup
    for the labeled ids."""
    labels = svc.slide_labels_current(state.project_id, slide_id)
    pub = state.predictions
    lookup = None
    if pub and slide_id in pub["slides"]:
        uri = own(f"{pub['uri_prefix'].rstrip('/')}/{slide_id}.parquet")
        try:
            lookup = Predictions.from_arrow(read_table(uri)).lookup(labels.entries)
        except FileNotFoundError:
            lookup = None
    return rows_for_slide(labels, state.resolve, lookup)


@functools.cache
def _reader(labels_uri: str) -> Any:
    from histolabel.adapters.pyramids import LabelReader

    return LabelReader(labels_uri)


def _outline_chunk(labels_uri: str, boxes: dict[int, tuple[int, ...]]) -> dict[int, tuple[int, str]]:
    """One task: outlines of `boxes` (id -> level-0 bbox) from the label pyramid (a worker keeps
    its reader), each as its point count and JSON text (a string pickles and writes as it is;
    10^6 rings as lists were 10^8 floats to pickle, unpickle and encode in the writer)."""
    rings = _reader(labels_uri).outlines({k: np.asarray(v) for k, v in boxes.items()})
    return {k: export.ring_text(ring) for k, ring in rings.items()}


def chunks_in_tile_order(
    table: SuperpixelTable, ids: list[int], chunk: int = CHUNK
) -> list[dict[int, tuple[int, ...]]]:
    """`ids` (those in the table) with their level-0 boxes, cut into chunks of neighbouring
    superpixels: ordered by the tile holding each box's centre, then by id."""
    want = np.asarray(sorted(ids), np.int64)
    rows = table.rows(want)
    keep = rows >= 0
    want, rows = want[keep], rows[keep]
    box = table.bbox[rows]
    ty = (box[:, 0] + box[:, 2]) // 2 // TILE
    tx = (box[:, 1] + box[:, 3]) // 2 // TILE
    order = np.lexsort((want, tx, ty))
    out = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        out.append({int(want[i]): tuple(int(v) for v in box[i]) for i in part})
    return out


def pool(workers: int) -> Executor:
    # spawn: a forked child would inherit the parent's s3fs event loop and its sockets.
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))


class Writer:
    """One export file on local disk, written a slide's rows at a time."""

    def __init__(
        self, fmt: str, fh: IO[str], path: str, names: dict[str, str], colors: dict[str, str]
    ) -> None:
        self.fmt, self.fh, self.path, self.names, self.colors = fmt, fh, path, names, colors
        self.rows = 0
        self._first = True
        self._parquet: Any = None
        if fmt == "geojson":
            fh.write('{"type":"FeatureCollection","features":[\n')
        elif fmt == "csv":
            self._csv = csv.DictWriter(fh, fieldnames=export.COLUMNS, lineterminator="\n")
            self._csv.writeheader()

    def features(
        self, rows: list[Row], ring_text_of: Callable[[str, int], tuple[int, str]], imported: Any
    ) -> None:
        for text in export.geojson_feature_texts(rows, ring_text_of, self.colors, self.names, imported):
            self.fh.write(("" if self._first else ",\n") + text)
            self._first = False
            self.rows += 1

    def table(self, rows: list[Row]) -> None:
        if self.fmt == "csv":
            for r in rows:
                self._csv.writerow(export.flat(r, self.names))
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pylist(
                [export.flat(r, self.names) for r in rows], schema=export.PARQUET_SCHEMA
            )
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.path + ".parquet", export.PARQUET_SCHEMA)
            self._parquet.write_table(table)
        self.rows += len(rows)

    def close(self) -> str:
        """Finish the file; returns the path of what to upload."""
        if self.fmt == "geojson":
            self.fh.write("\n]}\n")
        self.fh.close()
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            if self._parquet is None:  # no rows: an empty table with the columns
                pq.ParquetWriter(self.path + ".parquet", export.PARQUET_SCHEMA).close()
            else:
                self._parquet.close()
            return self.path + ".parquet"
        return self.path


def export_project(
    svc: Any,
    project_id: str,
    fmt: str,
    *,
    slide: str | None = None,
    anonymize: bool = False,
    own: Own,
    read_table: Callable[[str], Any],
    report: Callable[[dict[str, Any]], None] = lambda p: None,
    workers: int = 1,
    workdir: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """Write the export to a local file; returns (its path, the final progress). `own` refuses
    URIs outside the project, `read_table` reads a Parquet table from the bucket, `report`
    receives progress after every slide and every few outline chunks."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, not {fmt!r}")
    state = svc.require_project(project_id)
    slides = [slide] if slide else sorted(state.slides)
    for sid in slides:
        if sid not in state.slides:
            raise ValueError(f"slide {sid!r} does not exist in project {project_id!r}")
    alias = None
    if anonymize:  # pseudonyms numbered over the whole export, as the API's export numbers them
        users: set[str] = set()
        for sid in slides:
            users |= export.users_of(slide_rows(svc, state, sid, own, read_table))
        alias = export.aliases(users)
    names = {c.id: c.name for c in state.categories.values()}
    colors = {c.id: c.color for c in state.categories.values()}
    fd, path = tempfile.mkstemp(suffix=f".{fmt}", dir=workdir)
    os.close(fd)
    writer = Writer(fmt, open(path, "w", encoding="utf-8"), path, names, colors)  # noqa: SIM115 - closed by close()
    progress: dict[str, Any] = {"state": "running", "slides": len(slides), "slides_done": 0, "rows": 0,
                                "started_at": time.time()}  # fmt: skip
    # Started for the first slide with enough outlines to repay starting processes (seconds).
    executors: list[Executor] = []

    def executor_for(n: int) -> Executor | None:
        if workers < 2 or n < 2 * CHUNK:
            return executors[0] if executors else None
        if not executors:
            executors.append(pool(workers))
        return executors[0]

    try:
        for sid in slides:
            rows = slide_rows(svc, state, sid, own, read_table)
            if alias is not None:
                rows = export.anonymize(rows, alias)
            if fmt == "geojson":
                _geojson_slide(
                    writer, state, sid, rows, own, read_table, executor_for(len(rows)), progress, report
                )
            else:
                writer.table(rows)
            progress["slides_done"] += 1
            progress["rows"] = writer.rows
            report(dict(progress))
    finally:
        for executor in executors:
            executor.shutdown(cancel_futures=True)
    out = writer.close()
    progress.update(state="written", format=fmt, rows=writer.rows, bytes=os.path.getsize(out))
    return out, progress


def _geojson_slide(
    writer: Writer,
    state: ProjectState,
    sid: str,
    rows: list[Row],
    own: Own,
    read_table: Callable[[str], Any],
    executor: Executor | None,
    progress: dict[str, Any],
    report: Callable[[dict[str, Any]], None],
) -> None:
    seg = state.slides[sid].segmentation
    if seg is None or not rows:
        return
    by_id = {int(r["id"]): r for r in rows}
    if seg.get("objects_uri"):  # imported polygons keep their own geometry and ids
        from histolabel.imports.geometry import as_lists, objects_by_id

        objects = objects_by_id(read_table(own(seg["objects_uri"])), list(by_id))
        own_geometry = {i: (e, as_lists(g)) for i, (e, g) in objects.items()}
        writer.features(rows, lambda s, i: (0, ""), lambda s, i: own_geometry.get(i))
        return
    labels_uri = own(seg["labels_uri"])
    table = SuperpixelTable.from_arrow(read_table(own(seg["table_uri"])))
    chunks = chunks_in_tile_order(table, list(by_id))
    run: Iterator[dict[int, tuple[int, str]]]
    if executor is None:
        run = (_outline_chunk(labels_uri, c) for c in chunks)
    else:
        run = executor.map(_outline_chunk, [labels_uri] * len(chunks), chunks)
    for k, (chunk, rings) in enumerate(zip(chunks, run, strict=True)):

        def ring_of(_slide: str, i: int, rings: dict[int, tuple[int, str]] = rings) -> tuple[int, str]:
            return rings.get(i, (0, ""))

        writer.features([by_id[i] for i in chunk], ring_of, None)
        if k % 16 == 15:
            progress["rows"] = writer.rows
            report(dict(progress))
