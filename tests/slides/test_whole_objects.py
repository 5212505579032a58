"""A job's window reader (`WholeObjects`) reads each shard in one GET and gives zarr's values."""

from __future__ import annotations

import asyncio

import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import MemoryStore, WrapperStore

from histolabel.adapters.whole_objects import WholeObjects
from histolabel.slides.pyramid import create_level


class CountingStore(WrapperStore[MemoryStore]):
    """A memory store that lists its reads, whole or ranged (its read-only copies too)."""

    def __init__(self, store: MemoryStore | None = None, reads: list | None = None) -> None:  # type: ignore[type-arg]
        super().__init__(store if store is not None else MemoryStore())
        self.reads: list[tuple[str, object]] = reads if reads is not None else []

    def _with_store(self, store: MemoryStore) -> CountingStore:
        return CountingStore(store, self.reads)

    async def get(self, key, prototype, byte_range=None):  # type: ignore[no-untyped-def]
        self.reads.append((key, byte_range))
        return await self._store.get(key, prototype, byte_range)


def _slide(store: CountingStore) -> np.ndarray:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (3, 5000, 4500), dtype=np.uint8)
    array = create_level(
        zarr.open_group(store, mode="w", zarr_format=3), "0", image.shape, np.uint8, dense=True
    )
    array[:] = image
    return image


def test_windows_read_equal_and_each_shard_once():
    store = CountingStore()
    image = _slide(store)
    windows = [(100, 1900, 2300, 4200), (0, 0, 700, 900), (4900, 4400, 5000, 4500), (1500, 1800, 4200, 2600)]
    store.reads.clear()
    plain = zarr.open_group(store, mode="r", zarr_format=3)["0"]
    for y0, x0, y1, x1 in windows:
        np.testing.assert_array_equal(plain[:, y0:y1, x0:x1], image[:, y0:y1, x0:x1])
    ranged = [key for key, byte_range in store.reads if byte_range is not None]

    store.reads.clear()
    whole = WholeObjects(store, budget=64 * 2**20)
    array = zarr.open_group(whole, mode="r", zarr_format=3)["0"]
    for y0, x0, y1, x1 in windows:
        np.testing.assert_array_equal(array[:, y0:y1, x0:x1], image[:, y0:y1, x0:x1])
    assert all(byte_range is None for _, byte_range in store.reads)
    shard_reads = [key for key, _ in store.reads if key.startswith("0/c/")]
    touched = set(shard_reads)
    assert sorted(shard_reads) == sorted(touched)  # each shard fetched once, kept after
    assert len(ranged) > 10 * len(touched)  # zarr alone: a request per chunk and per index


def test_budget_drops_the_least_recently_used_and_reads_again():
    store = CountingStore()
    image = _slide(store)
    shard = len(asyncio.run(store.get("0/c/0/0/0", default_buffer_prototype())))
    whole = WholeObjects(store, budget=int(shard * 1.5))  # room for one shard
    array = zarr.open_group(whole, mode="r", zarr_format=3)["0"]
    store.reads.clear()
    for _ in range(2):
        np.testing.assert_array_equal(array[:, 0:10, 0:10], image[:, 0:10, 0:10])
        np.testing.assert_array_equal(array[:, 0:10, 2048:2058], image[:, 0:10, 2048:2058])
    shard_reads = [key for key, _ in store.reads if key.startswith("0/c/")]
    assert shard_reads == ["0/c/0/0/0", "0/c/0/0/1"] * 2


def test_concurrent_reads_of_one_object_share_one_get():
    store = CountingStore()
    _slide(store)
    whole = WholeObjects(store, budget=64 * 2**20)
    proto = default_buffer_prototype()

    async def both():  # type: ignore[no-untyped-def]
        from zarr.abc.store import RangeByteRequest

        return await asyncio.gather(
            whole.get("0/c/0/0/0", proto, RangeByteRequest(0, 10)),
            whole.get("0/c/0/0/0", proto, RangeByteRequest(5, 20)),
        )

    store.reads.clear()
    a, b = asyncio.run(both())
    full = asyncio.run(store.get("0/c/0/0/0", proto))
    assert a.to_bytes() == full.to_bytes()[0:10] and b.to_bytes() == full.to_bytes()[5:20]
    assert store.reads[:-1] == [("0/c/0/0/0", None)]
