"""A read-only zarr store that answers every read of an object from one GET of the whole object.

zarr reads a region that covers part of a shard as one range request per chunk, one after the
other (zarr 3.1), plus one for the shard's index: a job window that crosses four shards of a
slide costs about seventy requests in series. A job reading a slide tile by tile wants most of
every shard it touches, and the next tiles want the rest, so it fetches each shard whole, once,
and keeps the last few in memory (a budget in bytes, least recently used dropped first).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import WrapperStore
from zarr.storage._utils import _normalize_byte_range_index


class WholeObjects(WrapperStore[Store]):
    def __init__(self, store: Store, budget: int) -> None:
        super().__init__(store)
        self.budget = budget
        self._kept: OrderedDict[str, Buffer | None] = OrderedDict()
        self._size = 0
        self._pending: dict[str, asyncio.Future[Buffer | None]] = {}

    def _with_store(self, store: Store) -> WholeObjects:
        return type(self)(store, self.budget)

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        whole = await self._whole(key, prototype)
        if whole is None or byte_range is None:
            return whole
        start, stop = _normalize_byte_range_index(whole, byte_range)
        return whole[start:stop]

    async def _whole(self, key: str, prototype: BufferPrototype) -> Buffer | None:
        if key in self._kept:
            self._kept.move_to_end(key)
            return self._kept[key]
        pending = self._pending.get(key)
        if pending is not None:  # another read of this object is fetching it: wait for that GET
            return await asyncio.shield(pending)
        future: asyncio.Future[Buffer | None] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            value = await self._store.get(key, prototype)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else need
            raise
        finally:
            self._pending.pop(key, None)
        future.set_result(value)
        self._keep(key, value)
        return value

    def _keep(self, key: str, value: Buffer | None) -> None:
        size = len(value) if value is not None else 0
        if size > self.budget:
            return
        self._kept[key] = value
        self._size += size
        while self._size > self.budget:
            _, dropped = self._kept.popitem(last=False)
            self._size -= len(dropped) if dropped is not None else 0
