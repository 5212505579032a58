"""Objects as other tools write them: QuPath GeoJSON (FeatureCollection, a bare Feature list, or
one Feature) and Histomics / large_image annotation JSON (an annotation document, a list of
them, or bare elements). Each becomes a `RawObject` with its geometry in level-0 px."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from histolabel.imports.errors import ImportRefused
from histolabel.imports.jsonstream import Cursor


@dataclass(frozen=True)
class RawObject:
    index: int  # 1-based position in the file
    external_id: str  # the file's id for it, or "#<index>" when it has none
    geometry: dict[str, Any] | None  # a GeoJSON geometry (level-0 px), None when it has none
    category: str | None  # classification name
    color: str | None  # "#rrggbb"
    kind: str  # "geojson" | "histomics"

    @property
    def where(self) -> str:
        ident = "" if self.external_id.startswith("#") else f" (id {self.external_id!r})"
        return f"object {self.index}{ident}"


def _hex(rgb: list[int] | tuple[int, ...]) -> str:
    return "#" + "".join(f"{max(0, min(255, int(c))):02x}" for c in rgb[:3])


_RGB = re.compile(r"^rgba?\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)")


def parse_color(value: Any) -> str | None:
    """QuPath writes [r, g, b] (or a packed ARGB int in old versions); Histomics "rgb(r,g,b)"
    or "#rrggbb"."""
    if isinstance(value, list) and len(value) >= 3 and all(isinstance(c, int | float) for c in value[:3]):
        return _hex(value)
    if isinstance(value, int) and not isinstance(value, bool):
        v = value & 0xFFFFFF
        return _hex(((v >> 16) & 255, (v >> 8) & 255, v & 255))
    if isinstance(value, str):
        s = value.strip()
        if re.fullmatch(r"#[0-9a-fA-F]{6}", s):
            return s.lower()
        m = _RGB.match(s)
        if m:
            return _hex(tuple(int(g) for g in m.groups()))
    return None


def _external_id(value: Any, index: int) -> str:
    if value is None or value == "":
        return f"#{index}"
    if isinstance(value, int | str) and not isinstance(value, bool):
        return str(value)[:200]
    raise ImportRefused(f"id must be a string or an integer, not {type(value).__name__}", f"object {index}")


def _from_feature(f: Any, index: int) -> RawObject:
    if not isinstance(f, dict) or f.get("type") != "Feature":
        raise ImportRefused("is not a GeoJSON Feature", f"object {index}")
    props = f.get("properties") or {}
    if not isinstance(props, dict):
        raise ImportRefused("properties must be an object", f"object {index}")
    ext = _external_id(f.get("id", props.get("id", props.get("object_id"))), index)
    cls = props.get("classification")
    name, color = None, None
    if isinstance(cls, dict):
        name = cls.get("name")
        color = parse_color(cls.get("color", cls.get("colorRGB")))
    elif isinstance(cls, str):
        name = cls
    if name is not None and not isinstance(name, str):
        raise ImportRefused("classification.name must be a string", f"object {index}")
    geometry = f.get("geometry")
    if geometry is not None and not isinstance(geometry, dict):
        raise ImportRefused("geometry must be an object", f"object {index}")
    return RawObject(index, ext, geometry, name or None, color, "geojson")


def _ring(points: Any, index: int) -> list[list[float]]:
    if not isinstance(points, list):
        raise ImportRefused("points must be a list of [x, y(, z)]", f"object {index}")
    ring = []
    for p in points:
        if not isinstance(p, list) or len(p) < 2:
            raise ImportRefused("points must be a list of [x, y(, z)]", f"object {index}")
        ring.append([p[0], p[1]])
    if ring and ring[0] != ring[-1]:
        ring.append(ring[0])
    return ring


def _from_element(e: Any, index: int) -> RawObject:
    if not isinstance(e, dict):
        raise ImportRefused("is not an annotation element", f"object {index}")
    kind = e.get("type")
    geometry: dict[str, Any] | None
    if kind == "polyline":
        if not e.get("closed", False):
            geometry = {"type": "LineString", "coordinates": _ring(e.get("points"), index)}
        else:
            rings = [_ring(e.get("points"), index)] + [_ring(h, index) for h in e.get("holes") or []]
            geometry = {"type": "Polygon", "coordinates": rings}
    elif kind == "rectangle":
        try:
            cx, cy = float(e["center"][0]), float(e["center"][1])
            w, h, a = float(e["width"]), float(e["height"]), float(e.get("rotation", 0.0))
        except (KeyError, TypeError, ValueError, IndexError):
            raise ImportRefused("a rectangle needs center, width and height", f"object {index}") from None
        cos, sin = math.cos(a), math.sin(a)
        corners = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2), (-w / 2, -h / 2)]
        ring = [[cx + x * cos - y * sin, cy + x * sin + y * cos] for x, y in corners]
        geometry = {"type": "Polygon", "coordinates": [ring]}
    elif kind == "pixelmap":  # Histomics Label's labels of its superpixel image, by index
        geometry = {"type": "pixelmap", "values": e.get("values"), "categories": e.get("categories")}
    else:
        geometry = {"type": str(kind)}  # point, arrow, circle...: not an area object
    label = e.get("label")
    name = e.get("group") or (label.get("value") if isinstance(label, dict) else None)
    color = parse_color(e.get("fillColor")) or parse_color(e.get("lineColor"))
    ext = _external_id(e.get("id"), index)
    return RawObject(index, ext, geometry, str(name) if name else None, color, "histomics")


def read_objects(fh: IO[bytes], name: str) -> Iterator[RawObject]:
    """Every object of the file, streamed; invalid JSON is refused with its position."""
    cur = Cursor(fh, name)
    counter = iter(range(1, 1 << 62))
    first = cur.peek()
    if first == "[":
        for item in cur.items("item"):
            yield from _item(item, counter)
    elif first == "{":
        seen_type = None
        for key in cur.fields():
            if key == "features":
                for f in cur.items("feature"):
                    yield _from_feature(f, next(counter))
            elif key == "annotation":
                yield from _annotation(cur, counter)
            elif key == "elements":
                for e in cur.items("element"):
                    yield _from_element(e, next(counter))
            else:
                value = cur.value(f"the {key!r} field")
                if key == "type":
                    seen_type = value
        if seen_type == "Feature":
            raise ImportRefused("a single Feature: wrap it in a FeatureCollection", name)
    else:
        raise ImportRefused("is not a JSON document (expected '{' or '[')", name)
    cur.end()


def _annotation(cur: Cursor, counter: Iterator[int]) -> Iterator[RawObject]:
    for key in cur.fields():
        if key == "elements":
            for e in cur.items("element"):
                yield _from_element(e, next(counter))
        else:
            cur.value(f"the annotation's {key!r} field")


def _item(item: Any, counter: Iterator[int]) -> Iterator[RawObject]:
    if isinstance(item, dict) and item.get("type") == "Feature":
        yield _from_feature(item, next(counter))
    elif isinstance(item, dict) and isinstance(item.get("annotation"), dict):
        for e in item["annotation"].get("elements") or []:
            yield _from_element(e, next(counter))
    elif isinstance(item, dict) and item.get("type") == "FeatureCollection":
        for f in item.get("features") or []:
            yield _from_feature(f, next(counter))
    else:
        yield _from_element(item, next(counter))
