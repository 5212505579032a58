"""Labels made elsewhere, as (superpixel id, category name) pairs checked against the slide.

Three inputs: classified objects (QuPath GeoJSON / Histomics JSON, matched to the slide's
imported objects by their external id, or, on superpixels of the slide's own (or another
import's) segmentation, by overlap: see `from_overlap`), a CSV of id (or external_id) ->
category, and a mask image of one category (a superpixel is labeled when at least `min_cover`
of it lies inside).
Categories are matched to the project's by name (case-insensitive); missing ones are created
with the file's colour. The plan is complete and checked before any event is written.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from histolabel.imports.errors import ImportRefused
from histolabel.imports.polygons import RawObject

UINT32_MAX = 2**32 - 1
BATCH = 100_000
NAME = re.compile(r"^.{1,100}$", re.S)


@dataclass
class LabelPlan:
    """Which superpixels get which category name, and the colours the file gives them."""

    ids: dict[str, list[np.ndarray]] = field(default_factory=dict)  # name -> id arrays
    colors: dict[str, str | None] = field(default_factory=dict)
    skipped: int = 0  # rows or objects without a category
    _folded: dict[str, str] = field(default_factory=dict)  # casefold -> spelling in the file

    def category(self, name: Any, color: str | None, where: str) -> str:
        if not isinstance(name, str) or not NAME.match(name.strip()):
            raise ImportRefused(f"category {name!r} must be a name of 1 to 100 characters", where)
        name = name.strip()
        key = name.casefold()
        if key == "default":
            raise ImportRefused("'default' is the built-in unlabeled category; rename it", where)
        seen = self._folded.setdefault(key, name)
        if seen != name:
            raise ImportRefused(
                f"category name clash: {name!r} and {seen!r} differ only in case; use one spelling", where
            )
        if self.colors.get(name) is None:
            self.colors[name] = color
        return name

    def add(self, name: str, ids: np.ndarray) -> None:
        if ids.size:
            self.ids.setdefault(name, []).append(ids.astype(np.int64))

    def finish(self, count: int) -> dict[str, np.ndarray]:
        """name -> sorted distinct ids; an id given two categories is refused."""
        out = {n: np.unique(np.concatenate(parts)) for n, parts in self.ids.items()}
        owner = np.zeros(count + 1, np.int32)
        for k, (name, ids) in enumerate(sorted(out.items()), start=1):
            clash = ids[owner[ids] != 0]
            if clash.size:
                other = sorted(out)[int(owner[clash[0]]) - 1]
                raise ImportRefused(f"is labeled both {other!r} and {name!r}", f"superpixel {int(clash[0])}")
            owner[ids] = k
        return out


def file_key(digest: str, slide_id: str) -> str:
    """The idempotency stem of one file imported into one slide."""
    return "imp-" + hashlib.sha256(f"{digest}|{slide_id}".encode()).hexdigest()[:24]


class IdIndex:
    """Superpixel ids by external id (the slide table's `external_id` column)."""

    def __init__(self, table: pa.Table) -> None:
        if "external_id" not in table.column_names:
            raise ImportRefused(
                "the slide's superpixels were not imported, so objects cannot be matched by id; "
                "import the segmentation first or label by a mask"
            )
        self.ext = table.column("external_id").combine_chunks()
        self.ids = table.column("id").to_numpy().astype(np.int64)

    def lookup(self, external: list[str], where: Callable[[int], str]) -> np.ndarray:
        pos = pc.index_in(pa.array(external, pa.string()), value_set=self.ext).to_numpy(zero_copy_only=False)
        missing = np.flatnonzero(np.isnan(pos)) if pos.dtype.kind == "f" else np.zeros(0, int)
        if missing.size:
            i = int(missing[0])
            raise ImportRefused(f"id {external[i]!r} is not an object of the slide's segmentation", where(i))
        return self.ids[pos.astype(np.int64)]


def from_objects(objects: Iterable[RawObject], index: IdIndex, plan: LabelPlan) -> None:
    batch: list[RawObject] = []

    def flush() -> None:
        by_name: dict[str, list[int]] = {}
        ids = index.lookup([o.external_id for o in batch], lambda i: batch[i].where)
        for o, sp in zip(batch, ids.tolist(), strict=True):
            by_name.setdefault(plan.category(o.category, o.color, o.where), []).append(sp)
        for name, sps in by_name.items():
            plan.add(name, np.asarray(sps, np.int64))
        batch.clear()

    for obj in objects:
        if obj.geometry is not None and obj.geometry.get("type") == "pixelmap":
            from_pixelmap(obj, index, plan)
            continue
        if obj.category is None:
            plan.skipped += 1
            continue
        batch.append(obj)
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()


def from_pixelmap(obj: RawObject, index: IdIndex, plan: LabelPlan) -> None:
    """Histomics Label's pixelmap element: `values[i]` is the category index of superpixel i
    (the pixelmap's 0-based index, which a pixelmap segmentation import keeps as external id)
    in `categories` [{label, fillColor}]; its "default" category means unlabeled."""
    from histolabel.imports.polygons import parse_color

    assert obj.geometry is not None
    values, cats = obj.geometry.get("values"), obj.geometry.get("categories")
    if not isinstance(values, list) or not isinstance(cats, list) or not cats:
        raise ImportRefused("a pixelmap element needs a values list and a categories list", obj.where)
    names: list[str | None] = []
    for k, c in enumerate(cats):
        label = c.get("label") if isinstance(c, dict) else None
        if not isinstance(label, str):
            raise ImportRefused(f"categories[{k}] needs a label", obj.where)
        color = parse_color(c.get("fillColor")) or parse_color(c.get("strokeColor"))
        default = label.strip().casefold() == "default"
        names.append(None if default else plan.category(label, color, f"{obj.where} categories[{k}]"))
    try:
        vals = np.asarray(values, np.int64)
    except (TypeError, ValueError, OverflowError):
        raise ImportRefused("pixelmap values must be category indices (integers)", obj.where) from None
    bad = np.flatnonzero((vals < 0) | (vals >= len(cats)))
    if bad.size:
        i = int(bad[0])
        raise ImportRefused(
            f"values[{i}] = {int(vals[i])} is not one of the {len(cats)} categories", obj.where
        )
    for k, name in enumerate(names):
        where = np.flatnonzero(vals == k)
        if name is None:
            plan.skipped += int(where.size)
        elif where.size:
            ids = index.lookup(where.astype(str).tolist(), functools.partial(_value_name, obj.where, where))
            plan.add(name, ids)


def _value_name(where: str, positions: np.ndarray, i: int) -> str:
    return f"{where} values[{int(positions[i])}]"


ID_COLUMNS = ("id", "superpixel", "external_id", "object_id")
CATEGORY_COLUMNS = ("category", "class", "classification", "label", "name")


def from_csv(fh: IO[bytes], name: str, count: int, index: Callable[[], IdIndex], plan: LabelPlan) -> None:
    """A CSV with an id column (superpixel `id`, or the object's `external_id`) and a category
    column, read in batches."""
    import pyarrow.csv as csv

    try:
        reader = csv.open_csv(
            fh,
            read_options=csv.ReadOptions(block_size=8 << 20),
            convert_options=csv.ConvertOptions(
                column_types={"external_id": pa.string(), "object_id": pa.string(), "color": pa.string()}
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ImportRefused(f"is not a readable CSV: {exc}", name) from None
    cols = reader.schema.names
    id_col = next((c for c in ID_COLUMNS if c in cols), None)
    cat_col = next((c for c in CATEGORY_COLUMNS if c in cols), None)
    if id_col is None or cat_col is None:
        raise ImportRefused(
            f"needs an id column ({' or '.join(ID_COLUMNS)}) and a category column "
            f"({' or '.join(CATEGORY_COLUMNS)}); it has {cols}",
            name,
        )
    row = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ImportRefused(f"unreadable near row {row + 1}: {exc}", name) from None
        cats = batch.column(cat_col).to_pylist()
        colors = batch.column("color").to_pylist() if "color" in cols else [None] * len(cats)
        if id_col in ("external_id", "object_id"):
            ext = [str(v) if v is not None else "" for v in batch.column(id_col).to_pylist()]
            ids = index().lookup(ext, functools.partial(_row_name, row))
        else:
            raw = batch.column(id_col)
            if not pa.types.is_integer(raw.type):
                bad = next(i for i, v in enumerate(raw.to_pylist()) if not isinstance(v, int))
                raise ImportRefused(f"id {raw[bad].as_py()!r} is not an integer", f"row {row + bad + 1}")
            ids = raw.to_numpy(zero_copy_only=False).astype(np.float64)
            bad_rows = np.flatnonzero(np.isnan(ids) | (ids < 1) | (ids > count))
            if bad_rows.size:
                i = int(bad_rows[0])
                value = raw[i].as_py()
                why = (
                    f"overflows uint32 (ids are 1..{UINT32_MAX})"
                    if value is not None and value > UINT32_MAX
                    else f"is not a superpixel of the slide (1..{count})"
                )
                raise ImportRefused(f"id {value} {why}", f"row {row + i + 1}")
            ids = ids.astype(np.int64)
        by_name: dict[str, list[int]] = {}
        for i, (sp, cat) in enumerate(zip(ids.tolist(), cats, strict=True)):
            if cat is None or cat == "":
                plan.skipped += 1
                continue
            color = _color(colors[i], f"row {row + i + 1}")
            by_name.setdefault(plan.category(cat, color, f"row {row + i + 1}"), []).append(sp)
        for cat_name, sps in by_name.items():
            plan.add(cat_name, np.asarray(sps, np.int64))
        row += batch.num_rows


def _row_name(start: int, i: int) -> str:
    return f"row {start + i + 1}"


def _color(value: Any, where: str) -> str | None:
    from histolabel.imports.polygons import parse_color

    if value is None or value == "":
        return None
    color = parse_color(value)
    if color is None:
        raise ImportRefused(f"colour {value!r} is not #rrggbb or rgb(r,g,b)", where)
    return color


def mask_cover(
    labels: Callable[[int, int, int, int], np.ndarray],
    label_shape: tuple[int, int],
    mask: Callable[[int, int, int, int], np.ndarray],
    mask_shape: tuple[int, int],
    count: int,
    blocks: Iterator[tuple[int, int, int, int]],
) -> tuple[np.ndarray, np.ndarray]:
    """(pixels inside the mask, pixels) per superpixel 0..count, the mask sampled nearest at
    the labels' resolution (it may be at any level of the slide)."""
    inside = np.zeros(count + 1, np.int64)
    area = np.zeros(count + 1, np.int64)
    sy, sx = mask_shape[0] / label_shape[0], mask_shape[1] / label_shape[1]
    for y, x, h, w in blocks:
        ids = labels(y, x, y + h, x + w).reshape(h, w)
        rows = np.minimum(((np.arange(y, y + h) + 0.5) * sy).astype(np.int64), mask_shape[0] - 1)
        cols = np.minimum(((np.arange(x, x + w) + 0.5) * sx).astype(np.int64), mask_shape[1] - 1)
        win = mask(int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)
        m = win[np.ix_(rows - rows[0], cols - cols[0])] > 0
        flat = ids.ravel().astype(np.int64)
        area += np.bincount(flat, minlength=count + 1)[: count + 1]
        inside += np.bincount(flat, weights=m.ravel(), minlength=count + 1)[: count + 1].astype(np.int64)
    return inside, area


MATCHES = ("auto", "id", "overlap")


def from_overlap(
    objects: Iterable[RawObject],
    plan: LabelPlan,
    spool: Any,
    labels: Callable[[int, int, int, int], np.ndarray],
    count: int,
    slide_size: tuple[int, int],
    min_cover: float,
) -> None:
    """Classified polygons matched to existing superpixels by overlap. The polygons are drawn
    at the superpixels' level (`spool`: an empty Spool at that level and shape; a later polygon
    wins shared pixels, as a segmentation import draws them); a superpixel takes the category
    covering most of it when that covers at least `min_cover` of its pixels. Invalid outlines
    are repaired and ones outside the slide clipped; those left empty count as skipped."""
    from histolabel.imports.objects import Tally, clean
    from histolabel.imports.rasterize import draw_blocks

    width, height = slide_size
    tally = Tally()
    for obj in objects:
        if obj.category is None:
            plan.skipped += 1
            continue
        name = plan.category(obj.category, obj.color, obj.where)
        geom = clean(obj, width, height, True, tally)
        if geom is None:
            plan.skipped += 1
            continue
        spool.add(RawObject(obj.index, obj.external_id, None, name, obj.color, obj.kind), geom)
    spool.close()
    names = list(spool.category_names)  # code -> the plan's spelling
    k = len(names) + 1
    code = np.zeros(len(spool) + 1, np.int64)  # object (spool position + 1) -> code + 1
    for recs in spool.records():
        code[recs["obj"] + 1] = recs["code"].astype(np.int64) + 1
    counts = np.zeros((count + 1) * k, np.int64)  # superpixel x (none, category codes)
    for y, x, drawn in draw_blocks(spool, spool.shape, int(np.log2(spool.factor))):
        h, w = drawn.shape
        sp = np.minimum(np.asarray(labels(y, x, y + h, x + w)).reshape(h, w).astype(np.int64), count)
        keys, n = np.unique(sp.ravel() * k + code[drawn.ravel()], return_counts=True)
        counts[keys] += n
    table = counts.reshape(count + 1, k)
    area = table.sum(axis=1)
    best = table[:, 1:].argmax(axis=1) if k > 1 else np.zeros(count + 1, np.int64)
    share = table[np.arange(count + 1), best + 1] / np.maximum(area, 1) if k > 1 else np.zeros(count + 1)
    chosen = (area > 0) & (share >= min_cover)
    chosen[0] = False
    for c, name in enumerate(names):
        plan.add(name, np.flatnonzero(chosen & (best == c)))
