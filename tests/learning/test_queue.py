"""Guided-labeling order: least certain first across slides, labeled/skipped out, BatchBALD
batches together, stable."""

from __future__ import annotations

import numpy as np

from histolabel.learning.queue import SlideScores, guided_order


def _ids(items: list) -> list[tuple[str, int]]:
    return [(i.slide_id, i.superpixel_id) for i in items]


def test_least_certain_first_across_slides_with_labeled_out() -> None:
    a = SlideScores("a", np.array([0.9, 0.2, 0.5], np.float32))
    b = SlideScores("b", np.array([0.1, 0.6, 0.3], np.float32))
    order = guided_order([b, a], {"b": {1}})
    assert _ids(order) == [("a", 2), ("b", 3), ("a", 3), ("b", 2), ("a", 1)]
    assert order[0].certainty == np.float32(0.2) and order[0].batch == -1
    assert _ids(guided_order([a, b], {"b": [1]}, skip={"a": [2]}, limit=2)) == [("b", 3), ("a", 3)]


def test_ties_break_by_slide_then_id_and_order_is_stable() -> None:
    a = SlideScores("a", np.array([0.5, 0.5], np.float32))
    b = SlideScores("b", np.array([0.5, 0.5], np.float32))
    assert _ids(guided_order([b, a], {})) == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]
    rng = np.random.default_rng(0)
    many = [SlideScores(f"s{i}", rng.random(500).astype(np.float32)) for i in range(5)]
    assert guided_order(many, {}, limit=50) == guided_order(list(reversed(many)), {}, limit=50)
    assert guided_order(many, {}, limit=50) == guided_order(many, {})[:50]


def test_batchbald_batches_stay_together_in_acquisition_order() -> None:
    cert = np.array([-0.9, -0.1, -0.8, -0.7, -0.2], np.float32)
    batch = np.array([-1, 0, -1, 1, 0], np.int32)
    rank = np.array([0, 1, 0, 0, 0], np.int32)
    s = SlideScores("a", cert, batch, rank)
    other = SlideScores(
        "b", np.array([-0.95, -0.3], np.float32), np.array([1, -1], np.int32), np.array([1, 0], np.int32)
    )
    order = guided_order([s, other], {})
    # batch 0 (ids 5 then 2), batch 1 (a:4 then b:1), then the rest by certainty.
    assert _ids(order) == [("a", 5), ("a", 2), ("a", 4), ("b", 1), ("a", 1), ("a", 3), ("b", 2)]
    # A labeled member drops out; the rest of its batch stays in place.
    assert _ids(guided_order([s, other], {"a": [5]}))[:2] == [("a", 2), ("a", 4)]


def test_empty_and_out_of_range_ids() -> None:
    assert guided_order([], {}) == []
    s = SlideScores("a", np.array([0.3, np.nan], np.float32))
    assert _ids(guided_order([s], {"a": [7, 0]})) == [("a", 1)]
