"""Export of labels and predictions: GeoJSON with superpixel outlines (QuPath reads it as
annotations with a classification), CSV and Parquet; annotator identities can be hidden."""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

Row = dict[str, Any]
COLUMNS = [
    "slide_id", "id", "label", "labeled_by", "labeled_at", "review", "reviewed_by", "reviewed_at",
    "prediction", "confidence", "certainty", "labels", "label_id", "prediction_id",
]  # fmt: skip
Names = Mapping[str, str]


def users_of(rows: Iterable[Row]) -> set[str]:
    users: set[str] = set()
    for r in rows:
        users.update(r["labels"])
        if r["labeled_by"]:
            users.add(r["labeled_by"])
        if r["review"] and r["review"].get("by"):
            users.add(r["review"]["by"])
    return users


def aliases(users: Iterable[str]) -> dict[str, str]:
    """Pseudonyms ("annotator-1", ...) assigned in sorted order of the real ids, so nothing
    about them leaks through the order."""
    return {u: f"annotator-{i}" for i, u in enumerate(sorted(set(users)), start=1)}


def anonymize(rows: list[Row], alias: Mapping[str, str] | None = None) -> list[Row]:
    """Replace every user id by a pseudonym, stable within one export (`alias`: the whole
    export's, when it is written a slide at a time; else from these rows)."""
    alias = aliases(users_of(rows)) if alias is None else alias
    out = []
    for r in rows:
        review = r["review"]
        out.append(
            {
                **r,
                "labeled_by": alias.get(r["labeled_by"]) if r["labeled_by"] else None,
                "labels": {alias[u]: c for u, c in r["labels"].items()},
                "review": None if review is None else {**review, "by": alias.get(review.get("by"))},
            }
        )
    return out


def flat(row: Row, names: Names) -> Row:
    """One row for a table: categories by the name people know them by now (`names`: id -> name),
    with the stable ids beside them for joins."""

    def name(cid: str | None) -> str | None:
        return None if cid is None else names.get(cid, cid)

    review = row["review"] or {}
    return {
        "slide_id": row["slide_id"],
        "id": row["id"],
        "label": name(row["label"]),
        "labeled_by": row["labeled_by"],
        "labeled_at": row["labeled_at"],
        "review": review.get("a"),
        "reviewed_by": review.get("by"),
        "reviewed_at": review.get("at"),
        "prediction": name(row["prediction"]),
        "confidence": row["confidence"],
        "certainty": row["certainty"],
        "labels": json.dumps({u: name(c) for u, c in row["labels"].items()}, sort_keys=True),
        "label_id": row["label"],
        "prediction_id": row["prediction"],
    }


def to_csv(rows: Iterable[Row], names: Names) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(flat(r, names))
    return buf.getvalue()


PARQUET_SCHEMA = pa.schema(
    [("slide_id", pa.string()), ("id", pa.int64()), ("label", pa.string()), ("labeled_by", pa.string()),
     ("labeled_at", pa.string()), ("review", pa.string()), ("reviewed_by", pa.string()),
     ("reviewed_at", pa.string()), ("prediction", pa.string()), ("confidence", pa.float64()),
     ("certainty", pa.float64()), ("labels", pa.string()), ("label_id", pa.string()),
     ("prediction_id", pa.string())]
)  # fmt: skip


def to_parquet(rows: Iterable[Row], names: Names) -> bytes:
    flats = [flat(r, names) for r in rows]
    table = pa.Table.from_pylist(flats, schema=PARQUET_SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def outline(mask: np.ndarray, y0: int, x0: int, scale: float = 1.0) -> list[list[float]]:
    """The outer boundary of a boolean region as a closed [x, y] ring in level-0 pixels.

    `mask` is the region's crop at some pyramid level whose top-left is (y0, x0) at that level;
    `scale` converts that level's pixels to level 0. The contour follows pixel edges' midpoints
    (marching squares on a zero-padded mask, histolabel/contours.py), so neighbouring outlines
    touch without overlap. Points in the middle of a straight run are left out (the same polygon,
    a third of the points).
    """
    # Imported here: the compiled tracer (numba) costs an API cold start only when it exports.
    from histolabel.contours import outer_ring

    ring = outer_ring(mask)
    if not len(ring):
        return []
    pts = (ring[:, ::-1] - 0.5 + (x0, y0)) * scale  # (r, c) of the padded crop -> level-0 (x, y)
    out: list[list[float]] = pts.tolist()
    out.append(out[0])
    return out


def outlines(
    window: Callable[[int, int, int, int], np.ndarray],
    boxes: Mapping[int, tuple[int, int, int, int]],
    scale: float = 1.0,
    tile: int = 2048,
) -> dict[int, list[list[float]]]:
    """Outlines of many superpixels of one label image, reading it a window per tile instead of
    a crop per superpixel (thousands of small S3 reads would outlast the API's 29 s).

    `window(y0, x0, y1, x1)` reads the label image; `boxes` holds each id's end-exclusive bbox in
    that image's pixels. Superpixels are grouped by the tile holding their bbox centre, and each
    group is cut from one read of the union of its boxes."""
    groups: dict[tuple[int, int], list[int]] = {}
    for sp, (y0, x0, y1, x1) in boxes.items():
        groups.setdefault(((y0 + y1) // 2 // tile, (x0 + x1) // 2 // tile), []).append(sp)
    rings: dict[int, list[list[float]]] = {}
    with _collector_paused():
        for ids in groups.values():
            wy0 = min(boxes[i][0] for i in ids)
            wx0 = min(boxes[i][1] for i in ids)
            wy1 = max(boxes[i][2] for i in ids)
            wx1 = max(boxes[i][3] for i in ids)
            win = window(wy0, wx0, wy1, wx1)
            for sp in ids:
                y0, x0, y1, x1 = boxes[sp]
                crop = win[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0] == sp
                rings[sp] = outline(crop, y0, x0, scale)
    return rings


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    # A ring's lists are garbage-collector work (cycle scans as they are made, ~10x tolist's own
    # cost), though none can hold a cycle.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def hex_to_rgb(color: str) -> list[int]:
    return [int(color[i : i + 2], 16) for i in (1, 3, 5)]


def to_geojson(
    rows: Iterable[Row],
    ring_of: Callable[[str, int], list[list[float]]],
    colors: Mapping[str, str],
    names: Names,
    imported: Callable[[str, int], tuple[str, dict[str, Any]] | None] | None = None,
) -> dict[str, Any]:
    """`ring_of(slide, id)` gives the outline; rows without one are left out. `imported(slide,
    id)` gives an imported object's own (external id, geometry), which then replace the outline
    and the id, so a QuPath -> HistoLabel -> QuPath round trip keeps every object."""
    return {
        "type": "FeatureCollection",
        "features": list(geojson_features(rows, ring_of, colors, names, imported)),
    }


def _feature_head(
    r: Row, colors: Mapping[str, str], names: Names, own: tuple[str, dict[str, Any]] | None
) -> tuple[Any, dict[str, Any]]:
    """A feature's id and properties."""
    props: dict[str, Any] = {"objectType": "annotation", **flat(r, names), "labels": r["labels"]}
    shown = r["label"] or r["prediction"]
    if shown is not None:
        props["classification"] = {
            "name": names.get(shown, shown),
            "color": hex_to_rgb(colors.get(shown, "#808080")),
        }
    if own:
        props["external_id"] = own[0]
    return (own[0] if own else f"{r['slide_id']}:{r['id']}"), props


def geojson_features(
    rows: Iterable[Row],
    ring_of: Callable[[str, int], list[list[float]]],
    colors: Mapping[str, str],
    names: Names,
    imported: Callable[[str, int], tuple[str, dict[str, Any]] | None] | None = None,
) -> Iterator[dict[str, Any]]:
    """to_geojson's features one at a time."""
    for r in rows:
        own = imported(r["slide_id"], r["id"]) if imported else None
        ring = [] if own else ring_of(r["slide_id"], r["id"])
        if own is None and len(ring) < 4:
            continue
        fid, props = _feature_head(r, colors, names, own)
        geometry = own[1] if own else {"type": "Polygon", "coordinates": [ring]}
        yield {"type": "Feature", "id": fid, "geometry": geometry, "properties": props}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def ring_text(ring: list[list[float]]) -> tuple[int, str]:
    """A ring's point count and compact JSON text (where it is traced: the export job's
    processes), so it is not decoded and encoded again to be written."""
    return len(ring), _dumps(ring)


def geojson_feature_texts(
    rows: Iterable[Row],
    ring_text_of: Callable[[str, int], tuple[int, str]],
    colors: Mapping[str, str],
    names: Names,
    imported: Callable[[str, int], tuple[str, dict[str, Any]] | None] | None = None,
) -> Iterator[str]:
    """geojson_features, each as its compact JSON text (the same bytes as json.dumps of the
    feature with separators (",", ":")), the ring given as its text (`ring_text`)."""
    for r in rows:
        own = imported(r["slide_id"], r["id"]) if imported else None
        points, ring = (0, "") if own else ring_text_of(r["slide_id"], r["id"])
        if own is None and points < 4:
            continue
        fid, props = _feature_head(r, colors, names, own)
        geometry = _dumps(own[1]) if own else '{"type":"Polygon","coordinates":[' + ring + "]}"
        yield (
            '{"type":"Feature","id":'
            + _dumps(fid)
            + ',"geometry":'
            + geometry
            + ',"properties":'
            + _dumps(props)
            + "}"
        )
