"""Patches stream out a chunk at a time (embed), labeled rows are read alone (train), and
prediction reads patches a batch at a time: a slide's patches never sit in memory at once."""

from __future__ import annotations

import numpy as np
import torch
import zarr

from histolabel.learning import embedding, models
from histolabel.learning.embedding import ChunkedRows


def _bboxes(labels: np.ndarray) -> np.ndarray:
    from skimage.measure import regionprops

    n = int(labels.max())
    boxes = np.zeros((n, 4), np.int64)
    for p in regionprops(labels):
        boxes[p.label - 1] = p.bbox
    return boxes


def test_chunked_rows_write_each_chunk_once_and_hold_few(monuseg_crop) -> None:
    """Streaming a real crop's masked patches gives the in-memory array exactly, writes each
    chunk once, and holds a small part of the rows at any time."""
    rgb, labels, _ = monuseg_crop
    labels = labels.copy()
    labels[labels == 7] = 8  # id 7 unused: its row stays zero and does not hold its chunk back
    boxes = _bboxes(labels)
    n = boxes.shape[0]

    def rgb_win(y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        return rgb[y0:y1, x0:x1]

    def lab_win(y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        return labels[y0:y1, x0:x1]

    whole = embedding.patches_slide(rgb_win, lab_win, labels.shape, boxes, size=32, tile=128)
    assert whole is not None and whole.shape == (n, 3, 32, 32)
    out = np.full_like(whole, 255)
    writes: list[int] = []

    def write(start: int, block: np.ndarray) -> None:
        writes.append(start)
        out[start : start + block.shape[0]] = block

    rows = ChunkedRows(n, 16, embedding.present(boxes), write)
    got = embedding.patches_slide(rgb_win, lab_win, labels.shape, boxes, size=32, tile=128, sink=rows.put)
    rows.close()
    assert got is None
    np.testing.assert_array_equal(out, whole)
    assert not out[6].any()
    assert sorted(writes) == list(range(0, n, 16))  # every chunk, once
    assert rows.peak_rows < n / 2, (rows.peak_rows, n)


def test_chunked_rows_flush_partial_chunks_at_close() -> None:
    got: dict[int, np.ndarray] = {}
    rows = ChunkedRows(10, 4, np.ones(10, bool), lambda start, block: got.__setitem__(start, block.copy()))
    rows.put(np.array([0, 1, 2, 3, 9]), np.arange(5)[:, None] + 1)
    assert list(got) == [0]  # the first chunk is complete; rows 8 and 9 wait
    rows.close()
    assert sorted(got) == [0, 8] and got[8][:, 0].tolist() == [0, 5]


def test_predict_reads_a_lazy_array_a_batch_at_a_time() -> None:
    """A Zarr array of patches predicts exactly as the same patches in memory, and is only ever
    sliced one batch at a time."""
    torch.manual_seed(0)
    model = models.build("cnn", 3, width=8)
    patches = np.random.default_rng(1).integers(0, 255, (50, 3, 16, 16), dtype=np.uint8)
    arr = zarr.create_array(
        store=zarr.storage.MemoryStore(), shape=patches.shape, dtype=np.uint8, chunks=(8, 3, 16, 16)
    )
    arr[...] = patches
    reads: list[int] = []

    class Counted:
        shape = arr.shape

        def __getitem__(self, key: slice) -> np.ndarray:
            reads.append(key.stop - key.start)
            return arr[key]

    eager = models.predict_mc(model, patches, samples=4, batch_size=40, seed=3)
    lazy = models.predict_mc(model, Counted(), samples=4, batch_size=40, seed=3)
    np.testing.assert_array_equal(lazy, eager)
    assert max(reads) == 10 and sum(reads) == 50


def test_column_stats_match_standardize_per_slide_in_any_blocks() -> None:
    from histolabel.learning.features import ColumnStats, Standardized, standardize_per_slide

    rng = np.random.default_rng(2)
    x = rng.normal(size=(1003, 5)) * [1, 10, 0.01, 1, 1] + [0, 1e4, -3, 0, 0]
    x[:, 3] = 7.0  # a constant feature: scale 1, not a division by zero
    stats = ColumnStats()
    for start, stop in ((0, 1), (1, 400), (400, 401), (401, 1003)):
        stats.add(x[start:stop])
    mean, scale = stats.result(5)
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-12)
    assert scale[3] == 1.0
    whole = standardize_per_slide(x)
    lazy = Standardized(x, mean, scale)
    np.testing.assert_allclose(np.concatenate([lazy[0:500], lazy[500:1003]]), whole, rtol=1e-5, atol=1e-5)
    assert ColumnStats().result(3)[1].tolist() == [1.0, 1.0, 1.0]
