"""The parallel pyramid writer: level 0 from shards read in several threads, lower levels from
halves kept in memory, equal to halving each finished level and to one thread's bytes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.storage import MemoryStore

from histolabel.slides.ingest import ingest
from histolabel.slides.pyramid import SHARD, create_level, level_shapes, write_downsampled
from histolabel.slides.readers import open_slide


def _ingest(blob: bytes, vcpus: int, monkeypatch: pytest.MonkeyPatch) -> tuple[zarr.Group, MemoryStore]:
    monkeypatch.setenv("HISTOLABEL_JOB_VCPUS", str(vcpus))
    store = MemoryStore()
    group = zarr.open_group(store, mode="w", zarr_format=3)
    ingest(io.BytesIO(blob), group, "t")
    return group, store


@pytest.mark.parametrize("name", ["tcga-cr-7395-01a-01-ts1.svs", "pathml_small_dicom.dcm"])
def test_levels_equal_halving_each_finished_level_in_any_threads(
    name: str, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tcga: 3567 x 4443 (2 x 3 level-0 shards, odd sides from level 1 on); the DICOM reader
    # locks its file between threads.
    blob = (shared_data / "slides" / name).read_bytes()
    group, store = _ingest(blob, 3, monkeypatch)
    src = open_slide(io.BytesIO(blob))
    shapes = level_shapes(src.height, src.width)
    assert -(-src.height // SHARD) * -(-src.width // SHARD) > 1 and len(shapes) >= 3
    np.testing.assert_array_equal(
        np.moveaxis(np.asarray(group["0"][:]), 0, -1), src.read_region(0, 0, src.height, src.width)
    )
    for k in range(1, len(shapes)):
        expected = create_level(zarr.open_group(MemoryStore(), mode="w"), "x", (3, *shapes[k]), np.uint8)
        write_downsampled(group[str(k - 1)], expected)  # type: ignore[arg-type]
        np.testing.assert_array_equal(np.asarray(group[str(k)][:]), np.asarray(expected[:]))
    # One thread writes the same objects, byte for byte.
    _, one = _ingest(blob, 1, monkeypatch)
    assert one._store_dict.keys() == store._store_dict.keys()
    for key, value in store._store_dict.items():
        assert one._store_dict[key].to_bytes() == value.to_bytes(), key
