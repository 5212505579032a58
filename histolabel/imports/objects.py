"""Geometry checks for imported objects, and the on-disk spool they wait in before rasterising.

Strict (the default): an empty, self-intersecting, non-polygon or out-of-slide object refuses
the whole import, naming it. Lenient: self-intersections are repaired (shapely's make_valid,
polygonal parts kept), objects crossing the slide edge are clipped to it, and empty, wholly
outside or non-polygon objects are dropped; every such object is counted by reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
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
