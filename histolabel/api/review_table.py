"""Review rows as one Arrow table: filters, sorts, groups and pages run as column operations, so a
page over every labeled superpixel of a project costs a scan in C, not a Python loop per row,
and the project's review snapshot (see `review_snapshot`) is served without building its rows.

The table keeps the categories as the labels were given; `resolved` maps them through the
project's merges and deletions as it knows them now, so a snapshot written before a merge
still answers as after it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from histolabel.api import agreement
from histolabel.api.schemas import ReviewQuery
from histolabel.memo import Lru

Row = dict[str, Any]
Resolve = Callable[[str | None], str | None]

SCHEMA = pa.schema(
    [
        ("slide_id", pa.string()),
        ("id", pa.int64()),
        ("label", pa.string()),
        ("labeled_by", pa.string()),
        ("labeled_at", pa.string()),
        ("labels", pa.map_(pa.string(), pa.string())),  # user -> category
        ("review", pa.string()),  # the review as JSON (None: not reviewed)
        ("review_a", pa.string()),  # its action, "none" when not reviewed
        ("review_by", pa.string()),
        ("review_c", pa.string()),
        ("prediction", pa.string()),
        ("confidence", pa.float64()),
        ("certainty", pa.float64()),
    ]
)
CATEGORY_COLUMNS = ("label", "review_c", "prediction")


def from_rows(rows: Iterable[Row]) -> pa.Table:
    """The table of review rows as `review.rows_for_slide` builds them."""
    cols: dict[str, list[Any]] = {f.name: [] for f in SCHEMA}
    for r in rows:
        review = r["review"]
        cols["slide_id"].append(r["slide_id"])
        cols["id"].append(r["id"])
        cols["label"].append(r["label"])
        cols["labeled_by"].append(r["labeled_by"])
        cols["labeled_at"].append(r["labeled_at"])
        cols["labels"].append(list(r["labels"].items()))
        cols["review"].append(None if review is None else json.dumps(review, sort_keys=True))
        cols["review_a"].append("none" if review is None else review.get("a"))
        cols["review_by"].append(None if review is None else review.get("by"))
        cols["review_c"].append(None if review is None else review.get("c"))
        cols["prediction"].append(r["prediction"])
        cols["confidence"].append(r["confidence"])
        cols["certainty"].append(r["certainty"])
    return pa.table(cols, schema=SCHEMA)


def empty() -> pa.Table:
    return SCHEMA.empty_table()


def _mapped(values: pa.Array, resolve: Resolve) -> pa.Array:
    """`values` through `resolve`, computed once per distinct value."""
    distinct = pc.unique(values).to_pylist()
    now = {v: resolve(v) for v in distinct if v is not None}
    if all(now[v] == v for v in now):
        return values
    keys = [v for v in distinct if v is not None]
    index = pc.index_in(values, value_set=pa.array(keys, pa.string()))
    return pc.take(pa.array([now[k] for k in keys], pa.string()), index)


def resolved(table: pa.Table, resolve: Resolve) -> pa.Table:
    """The table with its categories as the project knows them now: merged -> target; a
    deleted category is None, and a member's label in one drops out of `labels`."""
    table = table.combine_chunks()
    for name in CATEGORY_COLUMNS:
        col = table.column(name).combine_chunks()
        table = table.set_column(table.schema.get_field_index(name), name, _mapped(col, resolve))
    labels = table.column("labels").combine_chunks()
    # A sliced map array's offsets index its whole child arrays: keep the slice's run only.
    offsets = labels.offsets.to_numpy().astype(np.int64)
    first, last = int(offsets[0]), int(offsets[-1])
    keys, items = labels.keys.slice(first, last - first), labels.items.slice(first, last - first)
    mapped = _mapped(items, resolve)
    if mapped is items:
        return table
    keep = pc.is_valid(mapped).to_numpy(zero_copy_only=False)
    kept = np.concatenate([[0], np.cumsum(keep)])
    new_offsets = kept[offsets - first].astype(np.int32)
    mask = pa.array(keep)
    rebuilt = pa.MapArray.from_arrays(
        pa.array(new_offsets), keys.filter(mask), mapped.filter(mask), type=SCHEMA.field("labels").type
    )
    return table.set_column(table.schema.get_field_index("labels"), "labels", rebuilt)


def to_rows(table: pa.Table) -> list[Row]:
    """The rows `review.rows_for_slide` would have built (categories as resolved)."""
    out = []
    for r in table.to_pylist():
        review = None if r["review"] is None else {**json.loads(r["review"]), "c": r["review_c"]}
        out.append(
            {
                "slide_id": r["slide_id"],
                "id": r["id"],
                "label": r["label"],
                "labeled_by": r["labeled_by"],
                "labeled_at": r["labeled_at"],
                "labels": dict(r["labels"]),
                "review": review,
                "prediction": r["prediction"],
                "confidence": r["confidence"],
                "certainty": r["certainty"],
            }
        )
    return out


def _operand(table: pa.Table, name: str) -> pa.Array:
    if name == "label":
        return table.column("label").combine_chunks()
    if name == "prediction":
        return table.column("prediction").combine_chunks()
    if name == "review":
        return table.column("review_c").combine_chunks()
    if name.startswith("user:"):
        return pc.map_lookup(table.column("labels").combine_chunks(), pa.scalar(name[5:]), "first")
    raise ValueError(f"unknown operand {name!r}")


def _equals(table: pa.Table, column: str, value: str) -> pa.Array:
    return pc.fill_null(pc.equal(table.column(column), pa.scalar(value)), False)


def selected(table: pa.Table, q: ReviewQuery) -> pa.Table:
    """The rows the query's filters keep (a comparison only speaks about rows where both sides
    have a value)."""
    mask = pa.array(np.ones(table.num_rows, bool))
    for column, value in (
        ("slide_id", q.slide),
        ("label", q.label),
        ("prediction", q.prediction),
        ("review_a", q.review),
        ("review_by", q.reviewed_by),
    ):
        if value is not None:
            mask = pc.and_(mask, _equals(table, column, value))
    if q.labeled_by is not None:
        mask = pc.and_(mask, pc.is_valid(_operand(table, f"user:{q.labeled_by}")))
    if q.compare_a is not None and q.compare_b is not None:
        a, b = _operand(table, q.compare_a), _operand(table, q.compare_b)
        same = pc.equal(a, b) if q.compare == "matches" else pc.not_equal(a, b)
        mask = pc.and_(mask, pc.fill_null(same, False))
    return table.filter(mask)


SORT_COLUMN = {"slide": "slide_id", "review": "review_a"}


def _group_keys(table: pa.Table, field: str) -> list[str]:
    column = SORT_COLUMN.get(field, field)
    return ["none" if v is None else str(v) for v in table.column(column).to_pylist()]


def ordered(table: pa.Table, q: ReviewQuery) -> tuple[pa.Table, dict[str, int] | None]:
    """The selected rows in the query's order (None last whatever the order; ties broken on
    slide and id for stable pages), each group's rows together when grouped, and the groups'
    sizes."""
    desc = "descending" if q.order == "desc" else "ascending"
    if q.sort == "slide":
        table = table.take(pc.sort_indices(table, [("slide_id", desc), ("id", desc)]))
    else:
        column = SORT_COLUMN.get(q.sort, q.sort)
        valid = pc.is_valid(table.column(column))
        present, absent = table.filter(valid), table.filter(pc.invert(valid))
        present = present.take(pc.sort_indices(present, [(column, desc), ("slide_id", desc), ("id", desc)]))
        absent = absent.take(pc.sort_indices(absent, [("slide_id", "ascending"), ("id", "ascending")]))
        table = pa.concat_tables([present, absent])
    if not q.group_by:
        return table, None
    keys = _group_keys(table, q.group_by)
    names = sorted(set(keys))
    rank = {name: i for i, name in enumerate(names)}
    codes = np.fromiter((rank[k] for k in keys), np.int64, len(keys))
    groups = dict(zip(names, np.bincount(codes, minlength=len(names)).tolist(), strict=True))
    return table.take(pa.array(np.argsort(codes, kind="stable"))), groups


_ORDERS: Lru[Any] = Lru(8)  # each a copy of its selection: bounded by memory, not by need


def _order_of(table: pa.Table, version: Hashable | None, q: ReviewQuery, build: Callable[[], Any]) -> Any:
    """build(): the query's selection of `table`, in order; kept under the table's version (a
    snapshot's, see the API's review views) and the query less its paging, so that the next
    page of the same query, or the same query again, is a slice."""
    if version is None:
        return build()
    return _ORDERS.get_or_build(
        (version, type(q).__name__, q.model_dump_json(exclude={"cursor", "limit"})), build
    )


def page(table: pa.Table, version: Hashable | None, q: ReviewQuery) -> dict[str, Any]:
    chosen, groups = _order_of(table, version, q, lambda: ordered(selected(table, q), q))
    start = int(q.cursor or 0)
    rows = to_rows(chosen.slice(start, q.limit))
    end = start + len(rows)
    return {
        "items": rows,
        "groups": groups,
        "total": chosen.num_rows,
        "next_cursor": str(end) if end < chosen.num_rows else None,
    }


def _id_order(table: pa.Table, q: ReviewQuery) -> pa.Table:
    chosen = selected(table, q).select(["slide_id", "id"])
    return chosen.take(pc.sort_indices(chosen, [("slide_id", "ascending"), ("id", "ascending")]))


def ids(table: pa.Table, version: Hashable | None, q: ReviewQuery) -> dict[str, Any]:
    """Ids of every row the filters match, by slide, a page of `q.limit` at a time (in slide,
    id order, so pages do not depend on the sort of the list)."""
    chosen = _order_of(table, version, q, lambda: _id_order(table, q))
    start = int(q.cursor or 0)
    part = chosen.slice(start, q.limit)
    slides: dict[str, list[int]] = {}
    for slide_id, sp in zip(part.column("slide_id").to_pylist(), part.column("id").to_pylist(), strict=True):
        slides.setdefault(slide_id, []).append(sp)
    end = start + part.num_rows
    return {
        "slides": slides,
        "total": chosen.num_rows,
        "next_cursor": str(end) if end < chosen.num_rows else None,
    }


def agreement_of(table: pa.Table, categories: list[str]) -> dict[str, Any]:
    """Agreement between the members (each pair over the superpixels both labeled, Fleiss'
    over those all labeled) and between the labels and the predictions, of a resolved table."""
    table = table.combine_chunks()
    labels = table.column("labels").combine_chunks()
    offsets = labels.offsets.to_numpy().astype(np.int64)
    first, last = int(offsets[0]), int(offsets[-1])
    users, given = labels.keys.slice(first, last - first), labels.items.slice(first, last - first)
    item = np.repeat(np.arange(len(labels)), np.diff(offsets))
    both = pc.and_(pc.is_valid(table.column("label")), pc.is_valid(table.column("prediction")))
    label, prediction = table.column("label").filter(both), table.column("prediction").filter(both)
    seen = pc.unique(pa.concat_arrays([given, label.combine_chunks(), prediction.combine_chunks()]))
    names = sorted({*categories, *(v for v in seen.to_pylist() if v is not None)})
    value_set = pa.array(names, pa.string())

    def codes(values: Any) -> np.ndarray:
        return pc.index_in(values, value_set=value_set).to_numpy(zero_copy_only=False).astype(np.int64)

    raters = sorted(set(pc.unique(users).to_pylist()))
    rater = pc.index_in(users, value_set=pa.array(raters, pa.string())).to_numpy(zero_copy_only=False)
    rater = rater.astype(np.int64)
    return {
        "users": agreement.user_agreement(item, rater, codes(given), raters, names, categories),
        "predictions": agreement.pair_agreement(codes(label), codes(prediction), names, categories)
        if len(label)
        else None,
    }
