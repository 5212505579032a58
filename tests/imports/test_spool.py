"""The disk spool and the row-band rasteriser on their own (no cloud): a later object wins the
pixels it shares, a covered one is dropped and the rest renumbered densely, an object across
block edges is whole in the table, and duplicate ids are found across buffer flushes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gpu_jobs.import_segmentation import TableFile, _objects_table, values_at
from histolabel.imports import rasterize, spool
from histolabel.imports.errors import ImportRefused
from histolabel.imports.objects import Tally, clean
from histolabel.imports.polygons import RawObject
from histolabel.imports.spool import Spool


def _square(i: int, ext: str, x0: int, y0: int, side: int, category: str | None = None) -> RawObject:
    ring = [[x0, y0], [x0 + side, y0], [x0 + side, y0 + side], [x0, y0 + side], [x0, y0]]
    return RawObject(i, ext, {"type": "Polygon", "coordinates": [ring]}, category, "#ff0000", "geojson")


def _spool(tmp: Path, objs: list[RawObject], shape: tuple[int, int]) -> Spool:
    s = Spool(tmp, 1, shape)
    tally = Tally()
    for o in objs:
        s.add(o, clean(o, shape[1], shape[0], False, tally))
    s.close()
    return s


def test_covered_objects_drop_and_ids_stay_dense(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool, "BUFFER", 2)  # records filed every two objects
    shape = (2500, 2300)  # 2 x 2 shard blocks
    objs = [
        _square(1, "a", 100, 100, 50),  # wholly under b: covered
        _square(2, "b", 90, 90, 80, "Tumor"),
        _square(3, "c", 2000, 2000, 100),  # across both block edges
        _square(4, "d", 2200, 2300, 40),
    ]
    s = _spool(tmp_path, objs, shape)
    raster = np.zeros(shape, np.uint32)

    def sink(y: int, x: int, ids: np.ndarray) -> None:
        raster[y : y + ids.shape[0], x : x + ids.shape[1]] = ids

    def read_back(y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        return raster[y0:y1, x0:x1].copy()

    out = TableFile(tmp_path / "t.parquet")
    pick = values_at(s.external_ids())
    drawn = rasterize.rasterize(
        s, shape, 0, sink, read_back, None, lambda ids: {"external_id": pick(ids)}, out
    )
    out.close()
    table = pq.read_table(out.path)
    assert drawn.count == 3 and drawn.table.dropped.tolist() == [1]
    assert table["external_id"].to_pylist() == ["b", "c", "d"]
    assert table["id"].to_pylist() == [1, 2, 3]
    assert sorted(np.unique(raster).tolist()) == [0, 1, 2, 3]
    row: dict[str, Any] = {k: v[1] for k, v in table.to_pydict().items()}  # c
    assert (row["y0"], row["x0"], row["y1"], row["x1"], row["area"]) == (2000, 2000, 2100, 2100, 10_000)
    assert (row["cy"], row["cx"]) == (2050.0, 2050.0)
    assert (raster[2000:2100, 2000:2100] == 2).all() and (raster[90:170, 90:170] == 1).all()

    objects = pa.Table.from_batches(list(_objects_table(s, drawn.table)))
    assert objects["id"].to_pylist() == [1, 2, 3]
    assert objects["external_id"].to_pylist() == ["b", "c", "d"]
    assert objects["category"].to_pylist() == ["Tumor", None, None]


def test_duplicate_ids_across_flushes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool, "BUFFER", 2)
    objs = [_square(1, "a", 0, 0, 5), _square(2, "b", 10, 0, 5), _square(3, "a", 20, 0, 5)]
    with pytest.raises(ImportRefused, match="object 3: has the same id 'a' as object 1"):
        _spool(tmp_path, objs, (100, 100))
