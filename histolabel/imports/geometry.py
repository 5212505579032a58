"""Imported objects' own geometry and ids (objects.parquet), for export back to their tool."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import shapely


def objects_by_id(table: pa.Table, ids: Iterable[int]) -> dict[int, tuple[str, dict[str, Any]]]:
    """id -> (external id, GeoJSON geometry in level-0 px) for the given superpixel ids."""
    wanted = np.fromiter(ids, np.int64)
    if not wanted.size:
        return {}
    all_ids = table.column("id").to_numpy().astype(np.int64)
    # filter, not take: the IAM call-site scan reads a `take` as the lease store's conditional put
    sub = table.filter(pa.array(np.isin(all_ids, wanted)))
    geoms = shapely.from_wkb(sub.column("geometry").to_numpy(zero_copy_only=False))
    out = {}
    for sp, ext, geom in zip(sub.column("id").to_pylist(), sub.column("external_id").to_pylist(), geoms,
                             strict=True):  # fmt: skip
        out[int(sp)] = (str(ext), shapely.geometry.mapping(geom))
    return out


def as_lists(geometry: dict[str, Any]) -> dict[str, Any]:
    """shapely's mapping uses tuples; JSON and tests want lists."""

    def conv(v: Any) -> Any:
        return [conv(x) for x in v] if isinstance(v, list | tuple) else v

    return {"type": geometry["type"], "coordinates": conv(geometry["coordinates"])}
