"""Whole shards of a pyramid level, encoded in the calling thread and stored in one write.

zarr 3.1 writes a shard on its one I/O thread: it first reads the shard back (a GET, 404 for a
new one), copies every chunk into a buffer there and encodes from it. The ingest job writes
each shard once and whole, from several threads, so the shard is built where its pixels are:
the chunks zstd-encoded here (zstd releases the GIL), in zarr's order (Morton) with zarr's
index (offsets and lengths, then its CRC32C), and stored as one object. The bytes are zarr's
own, which tests/slides/test_shards.py compares.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr
from numcodecs import Zstd
from zarr.codecs import BytesCodec, ShardingCodec, ZstdCodec
from zarr.codecs.sharding import ShardingCodecIndexLocation, _ShardIndex
from zarr.core.buffer import default_buffer_prototype
from zarr.core.indexing import morton_order_iter
from zarr.core.sync import sync


def write_shard(array: zarr.Array, i: int, j: int, block: np.ndarray) -> None:
    """Shard (i, j) of a (c, y, x) level made by `pyramid.create_level(..., dense=True)`: `block`
    is its pixels (c, h, w), clipped to the array as the shard is. Every chunk is written, as
    zarr writes a dense array's; a sparse one (all-fill chunks left out) is refused."""
    sharding: Any = array.metadata.codecs[0]  # type: ignore[union-attr]
    inner: tuple[Any, ...] = tuple(getattr(sharding, "codecs", ()))
    if not (
        isinstance(sharding, ShardingCodec)
        and len(inner) == 2
        and isinstance(inner[0], BytesCodec)
        and isinstance(inner[1], ZstdCodec)
        and sharding.index_location == ShardingCodecIndexLocation.end
        and array.config.write_empty_chunks
    ):
        raise ValueError(f"{array.path}: not a dense level as create_level makes it ({sharding})")
    channels, ch, cw = sharding.chunk_shape
    _, sh, sw = array.shards or array.chunks
    height, width = array.shape[1:]
    y0, x0 = i * sh, j * sw
    expected = (channels, min(sh, height - y0), min(sw, width - x0))
    if block.shape != expected or block.dtype != array.dtype:
        raise ValueError(
            f"shard ({i}, {j}) of {array.path} is {expected} {array.dtype}, not {block.shape} {block.dtype}"
        )
    codec = Zstd(level=inner[1].level, checksum=inner[1].checksum)
    grid = (1, sh // ch, sw // cw)
    index = _ShardIndex.create_empty(grid)
    parts: list[bytes] = []
    start = 0
    for coords in morton_order_iter(grid):
        _, a, b = coords
        if a * ch >= expected[1] or b * cw >= expected[2]:
            continue  # beyond the array: zarr writes no chunk there
        piece = block[:, a * ch : (a + 1) * ch, b * cw : (b + 1) * cw]
        if piece.shape[1:] != (ch, cw):  # an edge chunk is stored whole, the rest fill value
            whole = np.full((channels, ch, cw), array.fill_value, block.dtype)
            whole[:, : piece.shape[1], : piece.shape[2]] = piece
            piece = whole
        data = codec.encode(np.ascontiguousarray(piece))
        parts.append(bytes(data))
        index.set_chunk_slice(coords, slice(start, start + len(data)))
        start += len(data)
    parts.append(sync(sharding._encode_shard_index(index)).to_bytes())
    key = array.metadata.encode_chunk_key((0, i, j))
    body = default_buffer_prototype().buffer.from_bytes(b"".join(parts))
    sync((array.store_path / key).set(body))
