"""The table spooled to disk in id chunks equals the in-memory builder's (the segment job's),
drops ids without pixels and renumbers the rest densely, whatever the chunk size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from histolabel.segmentation import spooled
from histolabel.segmentation.spooled import SpooledTable
from histolabel.segmentation.table import TableBuilder
from histolabel.slides.pyramid import blocks


def _labels(seed: int, shape: tuple[int, int], count: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cells = rng.integers(1, count + 1, size=(shape[0] // 8 + 1, shape[1] // 8 + 1)).astype(np.uint32)
    return np.kron(cells, np.ones((8, 8), np.uint32))[: shape[0], : shape[1]]


@pytest.mark.parametrize("chunk", [7, 1000])
def test_spooled_rows_equal_the_builder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(spooled, "CHUNK", chunk)
    monkeypatch.setattr(spooled, "BUFFER_BYTES", 4096)  # many flushes
    labels = _labels(1, (300, 250), 120)
    count = int(labels.max())
    labels[labels == 5] = 0  # an id with no pixels is not dense: only the spooled table drops it
    dense = np.where(labels > 5, labels - 1, labels)
    builder, table = TableBuilder(count - 1, 1), SpooledTable(tmp_path, count, 1)
    for y, x, h, w in blocks(*labels.shape, side=64):
        builder.add(dense[y : y + h, x : x + w], y, x)
        table.add(labels[y : y + h, x : x + w], y, x)
    got = pa.Table.from_batches(list(table.batches(lambda ids: {"was": pa.array(ids, pa.int64())})))
    assert got.drop_columns(["was"]).equals(builder.table())
    assert table.kept == count - 1 and table.dropped.tolist() == [5]
    assert got["was"].to_pylist() == [i for i in range(1, count + 1) if i != 5]
    assert np.array_equal(table.dense(labels), dense)
