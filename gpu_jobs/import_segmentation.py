"""Import job: another tool's segmentation becomes the slide's superpixels.

    python -m gpu_jobs.import_segmentation --project P --slide S --source s3://.../FILE
        [--format auto|geojson|histomics|tiff|ngff] [--level K] [--lenient]

Polygons (QuPath GeoJSON, Histomics annotation JSON) are checked and spooled to local disk in
one streamed pass, then drawn shard by shard into labels/superpixels; a label image (TIFF,
OME-TIFF, OME-Zarr labels) is renumbered densely. Either way the segment job's own writer
builds the pyramid and superpixels.parquet (plus `external_id`), polygons also keep their
geometry in objects.parquet for export, and the job records SegmentationCompleted with
source "import". The whole file is checked before the slide's current segmentation is
touched: bad input writes nothing.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gpu_jobs.common import JobError, parser, progress_bar, record, record_failure, run
from histolabel.composition import service_from_env
from histolabel.imports.errors import ImportRefused, check_size

FORMATS = ("geojson", "histomics", "tiff", "ngff")


def detect_format(uri: str, first: bytes) -> str:
    name = uri.rstrip("/").lower()
    if name.endswith((".zarr", ".ome.zarr")) or "/labels/" in name:
        return "ngff"
    if name.endswith((".tif", ".tiff", ".ome.tif", ".ome.tiff")) or first[:4] in (
        b"II*\0",
        b"MM\0*",
        b"II+\0",
    ):
        return "tiff"
    head = first.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] in (b"{", b"["):
        return "histomics" if b'"elements"' in first or b'"annotation"' in first else "geojson"
    raise ImportRefused("is neither JSON (GeoJSON, Histomics) nor a TIFF nor an OME-Zarr label image",
                        uri.rsplit("/", 1)[-1])  # fmt: skip


def file_sha256(uri: str) -> str:
    from histolabel.adapters import pyramids

    digest = hashlib.sha256()
    with pyramids.open_source(uri) as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _level_shapes(image: Any) -> list[tuple[int, int]]:
    keys = sorted((k for k in image.array_keys() if k.isdigit()), key=int)
    return [tuple(int(s) for s in image[k].shape[-2:]) for k in keys]  # type: ignore[misc]


def _objects_table(spool: Any, table: Any) -> Iterator[pa.RecordBatch]:
    """Kept objects in id order: id, external_id, category, color, geometry (WKB, level-0 px),
    a spool chunk at a time."""
    names = spool.category_names
    external = spool.external_ids()
    for recs, wkb in spool.wkb():
        ext = [next(external) for _ in range(len(recs))]
        ids = table.dense(recs["obj"] + 1)
        keep = ~np.isin(recs["obj"] + 1, table.dropped)
        cats = [names[c] if c >= 0 else None for c in recs["code"].tolist()]
        colors = [spool.category_colors.get(c) if c else None for c in cats]
        cols = (ids.tolist(), ext, cats, colors, wkb)
        if keep.all():
            yield _batch(*cols)
        else:
            where = np.flatnonzero(keep).tolist()
            yield _batch(*([c[i] for i in where] for c in cols))


def values_at(values: Iterator[str]) -> Callable[[np.ndarray], pa.Array]:
    """`pick(ids)`: the values at 1-based positions `ids`, increasing across calls, read once."""
    pos = 0

    def pick(ids: np.ndarray) -> pa.Array:
        nonlocal pos
        out = []
        for i in ids.tolist():
            while pos < i - 1:
                next(values)
                pos += 1
            out.append(next(values))
            pos += 1
        return pa.array(out, pa.string())

    return pick


class TableFile:
    """superpixels.parquet written locally a batch at a time (the schema comes with the first)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: pq.ParquetWriter | None = None

    def __call__(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, batch.schema, compression="zstd")
        self._writer.write_batch(batch)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


OBJECTS_SCHEMA = pa.schema(
    [
        ("id", pa.uint32()),
        ("external_id", pa.string()),
        ("category", pa.string()),
        ("color", pa.string()),
        ("geometry", pa.binary()),
    ]
)


def _batch(*cols: list[Any]) -> pa.RecordBatch:
    return pa.record_batch([pa.array(c, f.type) for c, f in zip(cols, OBJECTS_SCHEMA, strict=True)],
                           schema=OBJECTS_SCHEMA)  # fmt: skip


def import_uri(
    source_uri: str,
    image_uri: str,
    table_uri: str,
    objects_uri: str,
    *,
    fmt: str = "auto",
    level: int | None = None,
    magnification: float | None = None,
    lenient: bool = False,
    progress: str = "auto",
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Import the segmentation at `source_uri` for the image at `image_uri`; returns the facts
    for SegmentationCompleted (source "import")."""
    from histolabel.adapters import pyramids
    from histolabel.adapters.s3 import S3PathError, require_in_bucket, zarr_store
    from histolabel.imports import label_image, rasterize
    from histolabel.imports.objects import Tally, clean
    from histolabel.imports.polygons import read_objects
    from histolabel.imports.spool import Spool
    from histolabel.segmentation.output import choose_level, create_label_pyramid, publish_pyramid
    from histolabel.slides.ingest import SUPERPIXELS_PATH, remove_label_name

    name = source_uri.rstrip("/").rsplit("/", 1)[-1]
    try:
        for uri in (source_uri, image_uri, table_uri, objects_uri):
            require_in_bucket(uri)
    except S3PathError as exc:
        raise JobError(str(exc)) from exc
    try:
        image_ro: Any = pyramids.open_group(image_uri, "r")
        attrs: dict[str, Any] = dict(image_ro.attrs)
        slide_h, slide_w = int(attrs["histolabel"]["height"]), int(attrs["histolabel"]["width"])
    except Exception as exc:
        raise JobError(f"{image_uri} is not an ingested OME-Zarr image: {exc}") from exc
    shapes = _level_shapes(image_ro)
    is_dir = False
    try:
        size = pyramids.object_size(source_uri)
    except FileNotFoundError:
        size, is_dir = pyramids.prefix_size(source_uri), True
        if size == 0:
            raise FileNotFoundError(f"{source_uri} does not exist") from None
    check_size(size, name)
    first = b""
    if not is_dir:
        with pyramids.open_source(source_uri) as fh:
            first = fh.read(4096)
    kind = detect_format(source_uri, first) if fmt == "auto" else fmt
    if kind not in FORMATS:
        raise ImportRefused(f"unknown format {kind!r}; expected one of {', '.join(FORMATS)}")
    if kind == "ngff" and not is_dir:
        raise ImportRefused("an OME-Zarr label image is a folder, not a file", name)

    tmp = Path(tempfile.mkdtemp(prefix="histolabel-import-", dir=workdir))
    facts: dict[str, Any] = {"source": "import", "format": kind, "file_name": name[:255]}
    try:
        # ---- check the whole input before anything on S3 changes ----
        tally = Tally()
        spool: Spool | None = None
        if kind in ("geojson", "histomics"):
            lv = choose_level(attrs, len(shapes), magnification) if level is None else None
            idx = level if level is not None else lv.index  # type: ignore[union-attr]
            if not 0 <= idx < len(shapes):
                raise ImportRefused(f"the slide has levels 0..{len(shapes) - 1}, not {idx}", "--level")
            shape = shapes[idx]
            spool = Spool(tmp, 2**idx, shape)
            with (
                pyramids.open_source(source_uri) as fh,
                progress_bar(size, "read objects", progress, "B") as up,
            ):
                last = 0
                for obj in read_objects(fh, name):
                    geom = clean(obj, slide_w, slide_h, lenient, tally)
                    if geom is not None:
                        spool.add(obj, geom)
                    pos = fh.tell()
                    up(pos - last)
                    last = pos
            spool.close()
            if not len(spool):
                raise ImportRefused(f"no polygon objects to import ({tally.read} read)", name)
            facts["file_sha256"] = file_sha256(source_uri)
        else:
            if kind == "tiff":
                fh_tiff = pyramids.open_source(source_uri)
                candidates = label_image.open_tiff(fh_tiff, name, level)
            else:
                import zarr

                group = zarr.open_group(zarr_store(source_uri, mode="r"), mode="r")
                candidates = label_image.open_ngff(group, name, level)
            source, idx = label_image.match_level(candidates, shapes, name)
            shape = shapes[idx]
            with progress_bar(shape[0] * shape[1], "check labels", progress) as up:
                external = rasterize.external_labels(source, shape, name)
                up(shape[0] * shape[1])
            if not len(external):
                raise ImportRefused("the label image holds no labels (every pixel is 0)", name)
            tally.read = len(external)
            if kind == "tiff":
                facts["file_sha256"] = file_sha256(source_uri)

        # ---- replace the slide's segmentation ----
        labels_uri = f"{image_uri.rstrip('/')}/{SUPERPIXELS_PATH}"
        image: Any = pyramids.open_group(image_uri, "a")
        remove_label_name(image, "superpixels")
        for uri in (labels_uri, table_uri, objects_uri):
            pyramids.remove_prefix(uri)
        try:
            create_label_pyramid(image, shape[0], shape[1])
            sink = pyramids.S3LabelSink(labels_uri)
            level0: Any = pyramids.open_group(labels_uri, "r")["0"]

            def read_back(y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
                return np.asarray(level0[0, y0:y1, x0:x1])

            if spool is not None:
                pick = values_at(spool.external_ids())

            table_file = TableFile(tmp / "superpixels.parquet")
            with progress_bar(shape[0] * shape[1], "draw", progress) as up:
                if spool is not None:
                    extra = lambda ids: {"external_id": pick(ids)}  # noqa: E731
                    drawn = rasterize.rasterize(spool, shape, idx, sink, read_back, up, extra, table_file)
                    count = drawn.count
                    tally.counts["covered"] += len(spool) - count
                else:
                    spooled = rasterize.relabel(source, shape, idx, external, sink, tmp / "stats", up)
                    own_ids = external - source.id_offset  # the other tool's ids (a pixelmap's are 0-based)
                    for batch in spooled.batches(
                        lambda ids: {"external_id": pa.array(own_ids[ids - 1].astype(str))}
                    ):
                        table_file(batch)
                    count = len(external)
            table_file.close()
            meta = {"source": "import", "format": kind, "file_name": name}
            publish_pyramid(image, shape[0], shape[1], count, idx, attrs["histolabel"].get("mpp"), meta)
            pyramids.upload_file(str(table_file.path), table_uri)
            if spool is not None:
                local = tmp / "objects.parquet"
                with pq.ParquetWriter(local, OBJECTS_SCHEMA, compression="zstd") as writer:
                    for batch in _objects_table(spool, drawn.table):
                        writer.write_batch(batch)
                pyramids.upload_file(str(local), objects_uri)
                facts["objects_uri"] = objects_uri
        except BaseException:
            for uri in (labels_uri, table_uri, objects_uri):
                pyramids.remove_prefix(uri)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    mag = attrs["histolabel"].get("magnification")
    return {
        **facts,
        "count": count,
        "labels_uri": labels_uri,
        "table_uri": table_uri,
        "level": idx,
        "magnification": mag / 2**idx if mag else None,
        "objects_read": tally.read,
        "dropped": tally.as_dict(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = parser("import_segmentation", "Import another tool's segmentation as the slide's superpixels.")
    p.add_argument("--source", required=True, help="s3:// URI of the uploaded file (or OME-Zarr folder)")
    p.add_argument("--format", choices=["auto", *FORMATS], default="auto")
    p.add_argument("--level", type=int, help="slide level to draw polygons at / to read a label pyramid's")
    p.add_argument("--lenient", action="store_true", help="repair, clip or drop bad objects and count them")
    p.add_argument("--replace-labels", action="store_true", help="import even though the slide has labels")
    args = p.parse_args(argv)
    if not args.slide:
        p.error("--slide is required")
    if args.level is not None and args.level < 0:
        p.error("--level must not be negative")
    try:
        facts = run_import(args)
    except (JobError, ValueError) as exc:
        if not args.no_events:
            record_failure(args.project, "import_segmentation", args.slide, str(exc))
        raise
    dropped = ", ".join(f"{k} {v}" for k, v in facts["dropped"].items() if v) or "none"
    print(
        f"imported {facts['count']} objects of {facts['objects_read']} into {args.slide} at level "
        f"{facts['level']} ({facts['format']}); dropped or changed: {dropped}",
        file=sys.stderr,
    )
    return 0


def run_import(args: Any) -> dict[str, Any]:

    svc = service_from_env()
    state = svc.require_project(args.project)
    slide = state.slides.get(args.slide)
    if slide is None:
        raise JobError(f"slide {args.slide!r} is not registered in {args.project}")
    if slide.ingest is None:
        raise JobError(f"slide {args.slide!r} is not ingested yet")
    if slide.segmentation is not None and not args.replace_labels:
        labeled = len(svc.slide_labels_fresh(args.project, args.slide).current())
        if labeled:
            raise JobError(
                f"slide {args.slide!r} has {labeled} labels on its current superpixels, which an "
                "import would orphan; pass --replace-labels to import anyway"
            )
    image = slide.ingest["zarr_uri"]
    prefix = image.rstrip("/").rsplit("/", 1)[0]
    facts = import_uri(
        args.source, image, f"{prefix}/superpixels.parquet", f"{prefix}/objects.parquet",
        fmt=args.format, level=args.level, magnification=state.settings.magnification,
        lenient=args.lenient, progress=args.progress,
    )  # fmt: skip
    if not args.no_events:
        record(
            args.project, "SegmentationCompleted", {"slide_id": args.slide, **facts}, "import_segmentation"
        )
    return facts


if __name__ == "__main__":
    sys.exit(run(main))
