"""Review rows as Arrow tables (one per slide, `Rows`): filters, sorts, groups and pages run as
column operations, so a page over every labeled superpixel of a project costs a scan in C, not a
Python loop per row, and the project's review snapshot (the API's `views.review_rows_table`:
Parquet parts, each holding the slides one store wrote) is served without building its rows.

The table keeps the categories as the labels were given; `resolved` maps them through the
project's merges and deletions as it knows them now, so a snapshot written before a merge
still answers as after it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Hashable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from histolabel.api import agreement
from histolabel.api.schemas import ReviewQuery
from histolabel.cpus import available_cpus
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


def _group_codes(table: pa.Table, field: str) -> tuple[list[str], np.ndarray]:
    """The groups' names in order and each row's group (a row without a value: "none")."""
    column = SORT_COLUMN.get(field, field)
    keys = pc.fill_null(pc.cast(table.column(column), pa.string()), "none").combine_chunks()
    names = sorted(pc.unique(keys).to_pylist())
    codes = pc.index_in(keys, value_set=pa.array(names, pa.string())).to_numpy(zero_copy_only=False)
    return names, codes.astype(np.int64)


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
    names, codes = _group_codes(table, q.group_by)
    groups = dict(zip(names, np.bincount(codes, minlength=len(names)).tolist(), strict=True))
    return table.take(pa.array(np.argsort(codes, kind="stable"))), groups


@dataclass(frozen=True)
class Rows:
    """Review rows as a table per slide, each as the labels gave its categories and named by a
    key that changes whenever its rows do (None: not kept), with the project's resolve and what
    names it (`categories`). A query orders each slide's rows once per key and keeps the order,
    so after a label only that slide's rows are ordered again, and a page is merged from each
    slide's first rows: a label in a project of 10^7 rows costs its slide, not the project."""

    parts: Mapping[str, tuple[Hashable | None, pa.Table]]
    resolve: Resolve
    categories: Hashable
    version: Hashable | None = None  # names every part at once (whole-table answers are kept under it)


_PARTS: Lru[pa.Table] = Lru(2048)  # resolved parts
_PART_ORDERS: Lru[Any] = Lru(4096)  # per part and query: its selection's row numbers in order


def part(rows: Rows, slide: str) -> pa.Table:
    key, table = rows.parts[slide]
    if key is None:
        return resolved(table, rows.resolve)
    return _PARTS.get_or_build((key, rows.categories), lambda: resolved(table, rows.resolve))


def whole(rows: Rows) -> pa.Table:
    """Every part resolved, in slide order, as one table."""
    tables = [part(rows, s) for s in sorted(rows.parts)]
    return pa.concat_tables(tables) if tables else empty()


def by_slide(table: pa.Table) -> dict[str, pa.Table]:
    """slide -> its rows (slices of `table`, which is sorted by slide first if its slides' rows
    are not each together)."""
    if table.num_rows == 0:
        return {}
    col = table.column("slide_id").combine_chunks()
    counts = pc.value_counts(col)
    runs = 1 + pc.sum(pc.not_equal(col.slice(1), col.slice(0, len(col) - 1))).as_py() if len(col) > 1 else 1
    if runs != len(counts):
        table = table.take(pc.sort_indices(table, [("slide_id", "ascending")]))
        counts = pc.value_counts(table.column("slide_id").combine_chunks())
    out, start = {}, 0
    for slide, n in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True):
        out[slide] = table.slice(start, n)
        start += n
    return out


def _query_key(q: ReviewQuery) -> str:
    return f"{type(q).__name__}:{q.model_dump_json(exclude={'cursor', 'limit'})}"


def _order_key(rows: Rows, slide: str, qkey: str) -> Hashable | None:
    """What a slide's order for the query is kept under (None: its part is not kept)."""
    key = rows.parts[slide][0]
    return None if key is None else (key, rows.categories, qkey)


def _part_order(rows: Rows, slide: str, qkey: str, build: Callable[[pa.Table], Any]) -> Any:
    key = _order_key(rows, slide, qkey)
    if key is None:
        return build(part(rows, slide))
    return _PART_ORDERS.get_or_build(key, lambda: build(part(rows, slide)))


def _part_orders(rows: Rows, slides: list[str], qkey: str, build: Callable[[pa.Table], Any]) -> list[Any]:
    """_part_order of each slide; the ones not kept yet ordered at once, a thread per core (Arrow's
    kernels release the GIL): a container's first page over 500 slides orders them all."""

    missing = [s for s in slides if (key := _order_key(rows, s, qkey)) is None or key not in _PART_ORDERS]
    pool = _ordering_pool() if len(missing) > 1 else None
    made = (
        dict(zip(missing, pool.map(lambda s: _part_order(rows, s, qkey, build), missing), strict=True))
        if pool
        else {}
    )
    return [made[s] if s in made else _part_order(rows, s, qkey, build) for s in slides]


@functools.cache
def _ordering_pool() -> ThreadPoolExecutor | None:
    cores = available_cpus()
    return ThreadPoolExecutor(cores, thread_name_prefix="review-order") if cores > 1 else None


def _numbered(table: pa.Table) -> pa.Table:
    return table.append_column("_row", pa.array(np.arange(table.num_rows, dtype=np.int64)))


def _order_columns(q: ReviewQuery) -> list[str]:
    """The columns the query's order reads."""
    named = ["slide_id", "id", SORT_COLUMN.get(q.sort, q.sort)]
    if q.group_by:
        named.append(SORT_COLUMN.get(q.group_by, q.group_by))
    return list(dict.fromkeys(named))


def _ordered_rows(table: pa.Table, q: ReviewQuery) -> tuple[np.ndarray, dict[str, int] | None]:
    chosen = selected(_numbered(table), q).select([*_order_columns(q), "_row"])
    chosen, groups = ordered(chosen, q)
    return chosen.column("_row").to_numpy(), groups


def _head(rows: Rows, slide: str, q: ReviewQuery, qkey: str, order: np.ndarray, need: int) -> pa.Table:
    """The slide's first `need` rows in the query's order, as the columns the order reads and
    `_row` (the row in the part), kept with its order: a page over every slide merges these,
    and a slide nobody labeled since costs no take."""

    def build() -> pa.Table:
        first = order[:need]
        taken = part(rows, slide).select(_order_columns(q)).take(pa.array(first))
        return taken.append_column("_row", pa.array(first, pa.int64()))

    key = rows.parts[slide][0]
    return build() if key is None else _HEADS.get_or_build((key, rows.categories, qkey, need), build)


_HEADS: Lru[pa.Table] = Lru(4096)  # per part, query and depth: its first rows' order columns


def _slides_of(rows: Rows, q: ReviewQuery) -> list[str]:
    if q.slide is not None:
        return [q.slide] if q.slide in rows.parts else []
    return sorted(rows.parts)


def page(rows: Rows, q: ReviewQuery) -> dict[str, Any]:
    """A page of the query's rows in its order: each slide's selection in order (kept per
    slide), the first cursor + limit of each merged and ordered again, the page sliced off."""
    start = int(q.cursor or 0)
    need = start + q.limit
    qkey = _query_key(q)
    firsts, total = [], 0
    groups: dict[str, int] | None = None if not q.group_by else {}
    slides = _slides_of(rows, q)
    for slide, (order, part_groups) in zip(
        slides, _part_orders(rows, slides, qkey, lambda t: _ordered_rows(t, q)), strict=True
    ):
        total += len(order)
        if groups is not None:
            for name, n in (part_groups or {}).items():
                groups[name] = groups.get(name, 0) + n
        if len(order):
            firsts.append(_head(rows, slide, q, qkey, order, need))
    if firsts:
        merged, _ = ordered(pa.concat_tables(firsts).combine_chunks(), q)
        items = to_rows(_taken(rows, merged.slice(start, q.limit)))
    else:
        items = []
    end = start + len(items)
    groups = None if groups is None else dict(sorted(groups.items()))
    next_cursor = str(end) if end < total else None
    return {"items": items, "groups": groups, "total": total, "next_cursor": next_cursor}


def _taken(rows: Rows, window: pa.Table) -> pa.Table:
    """The rows a window of merged order columns names (slide, `_row`), in its order."""
    where: dict[str, list[tuple[int, int]]] = {}
    pairs = zip(window.column("slide_id").to_pylist(), window.column("_row").to_pylist(), strict=True)
    for at, (slide, row) in enumerate(pairs):
        where.setdefault(slide, []).append((at, row))
    if not where:
        return empty()
    pieces = [part(rows, s).take(pa.array([r for _, r in got], pa.int64())) for s, got in where.items()]
    positions = np.array([at for got in where.values() for at, _ in got], np.int64)
    return pa.concat_tables(pieces).take(pa.array(np.argsort(positions)))


def _id_order(table: pa.Table, q: ReviewQuery) -> pa.Table:
    chosen = selected(table, q).select(["slide_id", "id"])
    return chosen.take(pc.sort_indices(chosen, [("id", "ascending")]))


def ids(rows: Rows, q: ReviewQuery) -> dict[str, Any]:
    """Ids of every row the filters match, by slide, a page of `q.limit` at a time (in slide,
    id order, so pages do not depend on the sort of the list)."""
    qkey = _query_key(q)
    parts = _part_orders(rows, _slides_of(rows, q), qkey, lambda t: _id_order(t, q))
    chosen = pa.concat_tables(parts) if parts else empty().select(["slide_id", "id"])
    start = int(q.cursor or 0)
    chunk = chosen.slice(start, q.limit)
    slides: dict[str, list[int]] = {}
    pairs = zip(chunk.column("slide_id").to_pylist(), chunk.column("id").to_pylist(), strict=True)
    for slide_id, sp in pairs:
        slides.setdefault(slide_id, []).append(sp)
    end = start + chunk.num_rows
    return {
        "slides": slides,
        "total": chosen.num_rows,
        "next_cursor": str(end) if end < chosen.num_rows else None,
    }


def tallies_of(table: pa.Table) -> agreement.Tallies:
    """What agreement needs of a resolved table's rows: each member's category per superpixel,
    and the label and prediction where both are set."""
    table = table.combine_chunks()
    labels = table.column("labels").combine_chunks()
    offsets = labels.offsets.to_numpy().astype(np.int64)
    first, last = int(offsets[0]), int(offsets[-1])
    users, given = labels.keys.slice(first, last - first), labels.items.slice(first, last - first)
    item = np.repeat(np.arange(len(labels)), np.diff(offsets))
    both = pc.and_(pc.is_valid(table.column("label")), pc.is_valid(table.column("prediction")))
    label, prediction = table.column("label").filter(both), table.column("prediction").filter(both)
    seen = pc.unique(pa.concat_arrays([given, label.combine_chunks(), prediction.combine_chunks()]))
    names = sorted(v for v in seen.to_pylist() if v is not None)
    value_set = pa.array(names, pa.string())

    def codes(values: Any) -> np.ndarray:
        return pc.index_in(values, value_set=value_set).to_numpy(zero_copy_only=False).astype(np.int64)

    raters = sorted(set(pc.unique(users).to_pylist()))
    rater = pc.index_in(users, value_set=pa.array(raters, pa.string())).to_numpy(zero_copy_only=False)
    return agreement.tally(
        item, rater.astype(np.int64), codes(given), raters, names, codes(label), codes(prediction)
    )


def agreement_of(table: pa.Table, categories: list[str]) -> dict[str, Any]:
    """Agreement between the members (each pair over the superpixels both labeled, Fleiss'
    over those all labeled) and between the labels and the predictions, of a resolved table."""
    return agreement.answer(tallies_of(table), categories)


def agreement_over(rows: Rows, categories: list[str]) -> dict[str, Any]:
    """agreement_of(whole(rows)), from each slide's tallies (kept per part): after a label only
    that slide is counted again."""
    return agreement.answer(agreement.combined(_tallies(rows, s) for s in sorted(rows.parts)), categories)


def _tallies(rows: Rows, slide: str) -> agreement.Tallies:
    key = rows.parts[slide][0]
    if key is None:
        return tallies_of(part(rows, slide))
    return _TALLIES.get_or_build((key, rows.categories), lambda: tallies_of(part(rows, slide)))


_TALLIES: Lru[agreement.Tallies] = Lru(4096)  # per part: what agreement needs of its rows
