"""The pyramid writer's own shard encoder gives zarr's bytes, for inner, edge and tiny shards."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from zarr.storage import MemoryStore

from histolabel.slides.pyramid import SHARD, blocks, create_level
from histolabel.slides.shards import write_shard


@pytest.mark.parametrize("shape", [(3, 5000, 4500), (3, 300, 2049), (1, 17, 9), (3, 2048, 2048)])
def test_shards_are_zarrs_own_bytes_and_read_back(shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    image[:, : shape[1] // 2] //= 64  # runs that compress, beside noise that does not
    theirs_store, ours_store = MemoryStore(), MemoryStore()
    theirs = create_level(zarr.open_group(theirs_store, mode="w"), "0", shape, np.uint8, dense=True)
    ours = create_level(zarr.open_group(ours_store, mode="w"), "0", shape, np.uint8, dense=True)
    theirs[:] = image
    for y, x, h, w in blocks(shape[1], shape[2]):
        write_shard(ours, y // SHARD, x // SHARD, image[:, y : y + h, x : x + w])
    assert ours_store._store_dict.keys() == theirs_store._store_dict.keys()
    for key, value in theirs_store._store_dict.items():
        assert ours_store._store_dict[key].to_bytes() == value.to_bytes(), key
    np.testing.assert_array_equal(np.asarray(ours[:]), image)


def test_a_block_of_the_wrong_size_is_refused_and_nothing_written() -> None:
    store = MemoryStore()
    level = create_level(zarr.open_group(store, mode="w"), "0", (3, 3000, 3000), np.uint8, dense=True)
    before = set(store._store_dict)
    with pytest.raises(ValueError, match="shard"):
        write_shard(level, 1, 1, np.zeros((3, 2048, 2048), np.uint8))  # the edge shard is 952 x 952
    assert set(store._store_dict) == before


def test_a_sparse_level_is_refused() -> None:
    """zarr leaves a sparse level's all-fill chunks out; write_shard writes every chunk, so its
    bytes would not be zarr's there."""
    store = MemoryStore()
    labels = create_level(zarr.open_group(store, mode="w"), "0", (1, 100, 100), np.uint32)
    before = set(store._store_dict)
    with pytest.raises(ValueError, match="dense"):
        write_shard(labels, 0, 0, np.zeros((1, 100, 100), np.uint32))
    assert set(store._store_dict) == before
