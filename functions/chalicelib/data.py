"""Reads from the data bucket for the routes: superpixel tables, predictions, label-pyramid
crops, and presigned URLs. Tables are immutable once written, so they are cached per container."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from histolabel.adapters import pyramids
from histolabel.adapters.aws import client
from histolabel.api.tables import GEOMETRY, Predictions, SuperpixelTable
from histolabel.config import get_settings, settings_from_env
from histolabel.memo import Lru
from histolabel.resources import EXPORT_TAG

PRESIGN_TTL_S = 900
_cache: Lru[Any] = Lru(64)


# Row groups and footers are small and many (a page of the queue touches one per slide): kept
# apart, so they never evict the whole tables and predictions the review reads.
_small: Lru[Any] = Lru(256)  # ~0.9 MB each (16,384 rows of id, box, centroid): ~230 MB at most
# Its own pool: the queue's geometry readers (one thread per slide) call superpixel_rows.
ROW_GROUP_READERS = ThreadPoolExecutor(16, thread_name_prefix="row-group")


def _cached(key: str, load: Any, small: bool = False) -> Any:
    return (_small if small else _cache).get_or_build(key, load)


def slide_prefix(project_id: str, slide_id: str) -> str:
    return f"projects/{project_id}/slides/{slide_id}"


def superpixel_table(uri: str, version: str) -> SuperpixelTable:
    """`version` (the segmentation's time) keys the cache: a re-segmentation gets a new entry."""
    return _cached(f"sp|{uri}|{version}", lambda: SuperpixelTable.from_arrow(pyramids.read_table(uri)))


def superpixel_rows(uri: str, version: str, ids: list[int]) -> SuperpixelTable:
    """The rows of `ids` (those present) of a superpixel table, reading only the row groups whose
    id range (the footer's statistics) holds one of them; each group is cached like a table, so
    a page of the queue or the review costs a page of rows, not the slide's table."""
    ranges = _cached(f"spgroups|{uri}|{version}", lambda: pyramids.table_row_groups(uri), small=True)
    want = np.asarray(sorted(set(ids)), np.int64)
    groups = pyramids.groups_holding(ranges, want)

    def group(g: int) -> SuperpixelTable:
        return _cached(
            f"sprg|{uri}|{version}|{g}",
            lambda: SuperpixelTable.from_arrow(pyramids.read_row_group(uri, g, list(GEOMETRY))),
            small=True,
        )

    # A page in the spread order holds ids from all over a slide: its groups are read at once.
    parts = list(ROW_GROUP_READERS.map(group, groups)) if len(groups) > 1 else [group(g) for g in groups]
    if not parts:
        return SuperpixelTable.empty()
    ids_all = np.concatenate([p.ids for p in parts])
    order = np.argsort(ids_all)
    bbox = np.concatenate([p.bbox for p in parts])[order]
    return SuperpixelTable(ids_all[order], bbox, np.concatenate([p.centroid for p in parts])[order])


def ranking(uri: str) -> list[Any] | None:
    """The merged project ranking the predict job published at `uri` (None where it wrote none:
    predictions from before rankings were published)."""
    from histolabel.api.ranking import ranking_items

    def load() -> list[Any] | None:
        try:
            return ranking_items(pyramids.read_table(uri))
        except FileNotFoundError:
            return None

    return _cached(f"rank|{uri}", load)


def imported_objects(state: Any, by_slide: dict[str, list[int]]) -> dict[str, dict[int, Any]]:
    """slide -> id -> (external id, geometry) for the slides whose segmentation was imported
    as polygons (an `objects_uri`); other slides are left out."""
    from histolabel.imports.geometry import as_lists, objects_by_id

    out: dict[str, dict[int, Any]] = {}
    for slide_id, ids in by_slide.items():
        seg = state.slides[slide_id].segmentation
        if not seg or not seg.get("objects_uri"):
            continue
        table = _cached(
            f"obj|{seg['objects_uri']}|{seg.get('at')}", lambda u=seg["objects_uri"]: pyramids.read_table(u)
        )
        out[slide_id] = {i: (e, as_lists(g)) for i, (e, g) in objects_by_id(table, ids).items()}
    return out


def predictions(uri: str) -> Predictions:
    return _cached(f"pred|{uri}", lambda: Predictions.from_arrow(pyramids.read_table(uri)))


def prediction_uri(uri_prefix: str, slide_id: str) -> str:
    return f"{uri_prefix.rstrip('/')}/{slide_id}.parquet"


def _missing(err: ClientError) -> bool:
    """Whether S3 answered that the object is not there."""
    return err.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound")


class Manifest(NamedTuple):
    meta: dict[str, Any]  # what the rows were made for, each slide's mark and part object
    etag: str


def review_manifest(key: str) -> Manifest | None:
    """The project's review snapshot manifest in the data bucket, None if there is none: a
    conditional GET on the ETag this container last saw, so an unchanged one costs one small
    request and no transfer."""
    s = get_settings()
    known = _manifests.get(key)
    extra = {"IfNoneMatch": known.etag} if known else {}
    try:
        obj = client("s3", s).get_object(Bucket=s.data_bucket, Key=key, **extra)
    except ClientError as err:
        if err.response["Error"]["Code"] in ("304", "NotModified") and known:
            return known
        if _missing(err):
            return None
        raise
    return _manifests.put(key, Manifest(json.loads(obj["Body"].read()), obj["ETag"]))


def put_review_manifest(key: str, meta: dict[str, Any]) -> str:
    """Store the manifest; its ETag."""
    s = get_settings()
    resp = client("s3", s).put_object(
        Bucket=s.data_bucket, Key=key, Body=json.dumps(meta).encode(), ContentType="application/json"
    )
    _manifests.put(key, Manifest(meta, resp["ETag"]))
    return str(resp["ETag"])


_manifests: Lru[Manifest] = Lru(8)  # the last one seen per key (project)


def review_part(key: str) -> Any:
    """The review rows (a pa.Table) of the slides one snapshot store wrote; None when that
    object is gone (a newer snapshot replaced it)."""
    s = get_settings()
    try:
        obj = client("s3", s).get_object(Bucket=s.data_bucket, Key=key)
    except ClientError as err:
        if _missing(err):
            return None
        raise
    return pq.ParquetFile(io.BytesIO(obj["Body"].read())).read()


def put_review_part(key: str, table: Any) -> None:
    s = get_settings()
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    client("s3", s).put_object(
        Bucket=s.data_bucket, Key=key, Body=buf.getvalue(), ContentType="application/vnd.apache.parquet"
    )


def delete_review_parts(keys: list[str]) -> None:
    """Delete the objects, a batch request per 1,000."""
    s = get_settings()
    for at in range(0, len(keys), 1000):
        batch = [{"Key": k} for k in keys[at : at + 1000]]
        client("s3", s).delete_objects(Bucket=s.data_bucket, Delete={"Objects": batch, "Quiet": True})


LabelReader = pyramids.LabelReader  # the export job reads outlines the same way


def label_level0(labels_uri: str) -> tuple[dict[str, Any], tuple[int, int], Any]:
    """A label pyramid's attributes, level-0 shape and a (y0, x0, y1, x1) reader of level 0."""
    group = pyramids.open_group(labels_uri, "r")
    level0: Any = group["0"]

    def read(y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        return np.asarray(level0[0, y0:y1, x0:x1])

    return dict(group.attrs), (int(level0.shape[-2]), int(level0.shape[-1])), read


def inline_response_limit() -> int:
    """Bytes a large answer (an export, a slide's predictions) may have to travel in the response
    itself: a Lambda response carries at most 6 MB, and binary bodies grow by a third in base64.
    Larger answers are a 303 to a copy in the data bucket."""
    return settings_from_env().inline_response_bytes


def put_export(key: str, body: bytes, content_type: str, disposition: str | None = None) -> None:
    s = get_settings()
    extra = {"ContentDisposition": disposition} if disposition else {}
    client("s3", s).put_object(
        Bucket=s.data_bucket,
        Key=key,
        Body=body,
        ContentType=content_type,
        Tagging=f"{EXPORT_TAG['Key']}={EXPORT_TAG['Value']}",
        **extra,
    )


def exists(key: str) -> bool:
    s = get_settings()
    try:
        client("s3", s).head_object(Bucket=s.data_bucket, Key=key)
    except ClientError as err:
        if _missing(err):
            return False
        raise
    return True


def object_size(key: str) -> int | None:
    """Bytes of an object in the data bucket; None when there is none."""
    s = get_settings()
    try:
        head = client("s3", s).head_object(Bucket=s.data_bucket, Key=key)
    except ClientError as err:
        if _missing(err):
            return None
        raise
    return int(head["ContentLength"])


def delete(key: str) -> None:
    s = get_settings()
    client("s3", s).delete_object(Bucket=s.data_bucket, Key=key)


def presign_get(key: str) -> str:
    s = get_settings()
    return str(
        client("s3", s).generate_presigned_url(
            "get_object", Params={"Bucket": s.data_bucket, "Key": key}, ExpiresIn=PRESIGN_TTL_S
        )
    )


def presign_put(key: str) -> str:
    s = get_settings()
    return str(
        client("s3", s).generate_presigned_url(
            "put_object", Params={"Bucket": s.data_bucket, "Key": key}, ExpiresIn=PRESIGN_TTL_S
        )
    )


def data_uri(key: str) -> str:
    return f"s3://{get_settings().data_bucket}/{key}"


# ---- browser uploads: presigned multipart, straight from the browser to S3 -------------------


def create_multipart(key: str) -> str:
    s = get_settings()
    return str(client("s3", s).create_multipart_upload(Bucket=s.data_bucket, Key=key)["UploadId"])


def presign_part(key: str, upload_id: str, part_number: int) -> str:
    s = get_settings()
    return str(
        client("s3", s).generate_presigned_url(
            "upload_part",
            Params={"Bucket": s.data_bucket, "Key": key, "UploadId": upload_id, "PartNumber": part_number},
            ExpiresIn=PRESIGN_TTL_S,
        )
    )


def uploaded_parts(key: str, upload_id: str) -> list[dict[str, Any]] | None:
    """The parts S3 holds ({PartNumber, ETag}), or None when there is no such upload. Read here,
    not sent by the browser: S3 does not expose ETag headers to scripts without a CORS rule."""
    s = get_settings()
    parts: list[dict[str, Any]] = []
    marker = 0
    try:
        while True:
            page = client("s3", s).list_parts(
                Bucket=s.data_bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
            )
            parts += [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in page.get("Parts", [])]
            if not page.get("IsTruncated"):
                return parts
            marker = int(page["NextPartNumberMarker"])
    except ClientError as err:
        if err.response["Error"]["Code"] in ("NoSuchUpload", "404", "NoSuchKey"):
            return None
        raise


def complete_multipart(key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
    s = get_settings()
    client("s3", s).complete_multipart_upload(
        Bucket=s.data_bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )


def segmentation_inputs(zarr_uri: str, level: int) -> tuple[tuple[int, int], Any, Any, float]:
    """What the segment job reads at `level`, read as it reads them: (shape (h, w), an RGB window
    reader, a tissue mask window reader, the tissue's area in px). Nothing is read whole."""
    from histolabel.segmentation.tiled import ScaledMask
    from histolabel.slides.ingest import read_tissue

    group: Any = pyramids.open_group(zarr_uri, "r")
    h, w = (int(n) for n in group[str(level)].shape[-2:])
    try:
        tissue, tissue_level = read_tissue(group)
    except KeyError:  # no mask: all tissue, as the job takes it
        return (h, w), pyramids.S3LevelWindow(zarr_uri, level), _AllTissue(), float(h * w)
    mask = ScaledMask(tissue, 2.0 ** (tissue_level - level))
    area = min(float(tissue.sum()) * mask.factor**2, float(h * w))
    return (h, w), pyramids.S3LevelWindow(zarr_uri, level), mask, area


class _AllTissue:
    def __call__(self, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        return np.ones((y1 - y0, x1 - x0), bool)
