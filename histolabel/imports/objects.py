"""Geometry checks for imported objects, and the on-disk spool they wait in before rasterising.

Strict (the default): an empty, self-intersecting, non-polygon or out-of-slide object refuses
the whole import, naming it. Lenient: self-intersections are repaired (shapely's make_valid,
polygonal parts kept), objects crossing the slide edge are clipped to it, and empty, wholly
outside or non-polygon objects are dropped; every such object is counted by reason.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, box, shape
from shapely.validation import explain_validity

from histolabel.imports.errors import ImportRefused
from histolabel.imports.polygons import RawObject

# Reasons an object can be dropped or changed, in the order they are reported.
REASONS = ("not_polygon", "empty", "outside", "invalid_repaired", "clipped", "covered")


@dataclass
class Tally:
    """What happened to the file's objects (kept + dropped = read)."""

    read: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, int]:
        return {r: int(self.counts.get(r, 0)) for r in REASONS}

    @property
    def dropped(self) -> int:
        return sum(self.counts[r] for r in ("not_polygon", "empty", "outside", "covered"))


def _polygonal(geom: Any) -> Polygon | MultiPolygon:
    parts = [g for g in shapely.get_parts(geom) if isinstance(g, Polygon) and not g.is_empty]
    nested = [p for g in shapely.get_parts(geom) if isinstance(g, MultiPolygon) for p in g.geoms]
    parts += nested
    if not parts:
        return Polygon()
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def clean(obj: RawObject, width: int, height: int, lenient: bool, tally: Tally) -> Any:
    """The object's polygonal geometry (level-0 px) checked against a width x height slide,
    or None when it is dropped (lenient only)."""
    tally.read += 1

    def drop(reason: str, message: str) -> None:
        if not lenient:
            raise ImportRefused(
                message + " (import with --lenient to drop or repair such objects)", obj.where
            )
        tally.counts[reason] += 1

    g = obj.geometry
    kind = g.get("type") if g else None
    if kind not in ("Polygon", "MultiPolygon"):
        drop("not_polygon", f"is a {kind or 'feature without geometry'}; only Polygon and MultiPolygon "
                            "objects can become superpixels")  # fmt: skip
        return None
    try:
        geom = shape(g)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError, shapely.errors.GEOSException) as exc:
        raise ImportRefused(f"malformed {kind} coordinates: {exc}", obj.where) from None
    coords = shapely.get_coordinates(geom)
    if coords.size and not np.isfinite(coords).all():
        raise ImportRefused("coordinates must be finite numbers", obj.where)
    if not geom.is_empty and not geom.is_valid:
        repaired = _polygonal(shapely.make_valid(geom))
        if repaired.is_empty or repaired.area <= 0:  # a line or a point drawn as a polygon
            drop("empty", "is an empty polygon (no area)")
            return None
        if not lenient:
            drop("invalid_repaired", f"is not a valid polygon: {explain_validity(geom)}")
        tally.counts["invalid_repaired"] += 1
        geom = repaired
    if geom.is_empty or geom.area <= 0:
        drop("empty", "is an empty polygon (no area)")
        return None
    x0, y0, x1, y1 = geom.bounds
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        if not lenient:
            bounds = f"x {x0:g}..{x1:g}, y {y0:g}..{y1:g}"
            drop("outside", f"has coordinates outside the {width}x{height} px slide ({bounds})")
        inside = _polygonal(geom.intersection(box(0, 0, width, height)))
        if inside.is_empty or inside.area <= 0:
            tally.counts["outside"] += 1
            return None
        tally.counts["clipped"] += 1
        geom = inside
    return geom


class Spool:
    """Kept objects, in file order, on local disk: WKB geometry and external ids in files, and
    per object only fixed-size numbers in memory (bbox at the raster level, WKB offset, id
    hash, category code: 50 bytes), so the file's size and its geometry never sit in memory."""

    def __init__(self, workdir: Path, factor: int, shape: tuple[int, int]) -> None:
        self.path = workdir / "objects.wkb"
        self.ids_path = workdir / "external_ids.jsonl"
        self._fh = self.path.open("wb")
        self._ids = self.ids_path.open("w", encoding="utf-8")
        self.factor, self.shape = factor, shape
        self._offsets = array("q", [0])
        self._boxes = array("q")
        self._hashes = array("q")
        self._codes = array("h")
        self._index = array("q")
        self.category_names: list[str] = []  # code -> name (code -1: unclassified)
        self.category_colors: dict[str, str | None] = {}
        self._code_of: dict[str, int] = {}

    def add(self, obj: RawObject, geom: Any) -> None:
        raw = shapely.to_wkb(geom)
        self._fh.write(raw)
        self._offsets.append(self._offsets[-1] + len(raw))
        x0, y0, x1, y1 = geom.bounds
        f, (h, w) = self.factor, self.shape
        ry0, rx0 = int(np.floor(y0 / f)), int(np.floor(x0 / f))
        self._boxes.extend(
            (max(0, ry0), max(0, rx0), min(h, max(int(np.ceil(y1 / f)), ry0 + 1)),
             min(w, max(int(np.ceil(x1 / f)), rx0 + 1)))
        )  # fmt: skip
        digest = hashlib.blake2b(obj.external_id.encode(), digest_size=8).digest()
        self._hashes.append(int.from_bytes(digest, "little", signed=True))
        self._ids.write(json.dumps(obj.external_id) + "\n")
        code = -1
        if obj.category is not None:
            code = self._code_of.get(obj.category, -1)
            if code < 0:
                if len(self.category_names) >= 32000:
                    raise ImportRefused("more than 32000 distinct classifications", obj.where)
                code = self._code_of[obj.category] = len(self.category_names)
                self.category_names.append(obj.category)
            if self.category_colors.get(obj.category) is None:
                self.category_colors[obj.category] = obj.color
        self._codes.append(code)
        self._index.append(obj.index)

    def __len__(self) -> int:
        return len(self._index)

    def close(self) -> None:
        self._fh.close()
        self._ids.close()
        hashes = np.frombuffer(self._hashes, np.int64)
        order = np.argsort(hashes, kind="stable")
        same = np.flatnonzero(np.diff(hashes[order]) == 0)
        self.index = np.frombuffer(self._index, np.int64)
        if same.size:
            a, b = sorted((int(order[same[0]]), int(order[same[0] + 1])))
            ext = self.external_ids()
            dup = next(e for i, e in enumerate(ext) if i == b)
            raise ImportRefused(
                f"has the same id {dup!r} as object {self.index[a]}; ids must be unique",
                f"object {self.index[b]}",
            )
        self.boxes = np.frombuffer(self._boxes, np.int64).reshape(-1, 4)
        self.offsets = np.frombuffer(self._offsets, np.int64)
        self.codes = np.frombuffer(self._codes, np.int16)
        del self._hashes

    def external_ids(self) -> Iterator[str]:
        with self.ids_path.open(encoding="utf-8") as fh:
            for line in fh:
                yield json.loads(line)

    def geometry(self, data: np.ndarray, i: int) -> Any:
        """Object i (0-based) from the mapped spool."""
        return shapely.from_wkb(data[self.offsets[i] : self.offsets[i + 1]].tobytes())
