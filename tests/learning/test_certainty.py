"""Certainty metrics pinned on hand-computed probabilities, and BatchBALD against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from histolabel.learning import batchbald, certainty

P = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [1 / 3, 1 / 3, 1 / 3], [0.9, 0.05, 0.05]])


def test_confidence_is_top_probability() -> None:
    np.testing.assert_allclose(certainty.confidence(P), [0.7, 0.4, 1 / 3, 0.9], rtol=1e-6)


def test_margin_is_top1_minus_top2() -> None:
    np.testing.assert_allclose(certainty.margin(P), [0.5, 0.05, 0.0, 0.85], atol=1e-6)
    np.testing.assert_allclose(certainty.margin(np.array([[0.2, 0.8], [0.55, 0.45]])), [0.6, 0.1], atol=1e-6)


def test_negative_entropy_by_hand() -> None:
    expected = [
        -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1)),
        -(0.4 * math.log(0.4) + 0.35 * math.log(0.35) + 0.25 * math.log(0.25)),
        math.log(3),
        -(0.9 * math.log(0.9) + 2 * 0.05 * math.log(0.05)),
    ]
    np.testing.assert_allclose(certainty.negative_entropy(P), -np.array(expected), rtol=1e-5)


def test_bald_by_hand() -> None:
    # Two MC samples that disagree completely: H(mean)=log 2, mean H = 0, so BALD = log 2.
    mc = np.array([[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]]])
    np.testing.assert_allclose(certainty.bald(mc), [math.log(2), 0.0], atol=1e-6)


def test_certainty_dispatch_orders_least_certain_first() -> None:
    mc = P[None]
    for metric in ("confidence", "margin", "entropy"):
        order = certainty.least_certain(certainty.certainty(metric, mc))
        assert order[0] == 2 and order[-1] == 3, metric
    with pytest.raises(ValueError, match="unknown certainty metric"):
        certainty.certainty("coin", mc)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="classes"):
        certainty.confidence(np.ones(3))


def test_least_certain_topk_matches_full_sort_and_breaks_ties_by_index() -> None:
    rng = np.random.default_rng(1)
    v = rng.integers(0, 50, size=5000).astype(np.float32)  # many ties
    full = np.lexsort((np.arange(v.size), v))
    np.testing.assert_array_equal(certainty.least_certain(v), full)
    for k in (1, 7, 100, 4999):
        np.testing.assert_array_equal(certainty.least_certain(v, k), full[:k])


def _random_mc(k: int, n: int, c: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(k, n, c)) * 2 + rng.normal(size=(1, n, c)) * 2
    e = np.exp(logits - logits.max(axis=2, keepdims=True))
    return e / e.sum(axis=2, keepdims=True)


def _brute_force_greedy(mc: np.ndarray, b: int) -> tuple[list[int], list[float]]:
    cond = batchbald.conditional_entropy(mc)
    chosen: list[int] = []
    values: list[float] = []
    for _ in range(b):
        best, best_v = -1, -np.inf
        for j in range(mc.shape[1]):
            if j in chosen:
                continue
            v = batchbald.joint_entropy_exact(mc, [*chosen, j]) - cond[[*chosen, j]].sum()
            if v > best_v + 1e-12:
                best, best_v = j, v
        chosen.append(best)
        values.append(best_v)
    return chosen, values


def test_joint_entropy_exact_matches_explicit_sum() -> None:
    mc = _random_mc(4, 3, 3, 0)
    total = 0.0
    for ys in itertools.product(range(3), repeat=3):
        p = np.mean([np.prod([mc[w, i, y] for i, y in enumerate(ys)]) for w in range(4)])
        total -= p * math.log(p)
    assert batchbald.joint_entropy_exact(mc, [0, 1, 2]) == pytest.approx(total, rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batchbald_matches_brute_force_greedy(seed: int) -> None:
    mc = _random_mc(k=6, n=9, c=3, seed=seed)
    expected, values = _brute_force_greedy(mc, 4)
    got = batchbald.select(mc, 4, prefilter=None, max_configs=10_000, dtype=torch.float64)
    assert got.indices.tolist() == expected
    np.testing.assert_allclose(got.scores, values, rtol=1e-9)
    fast = batchbald.select(mc, 4, prefilter=None, max_configs=10_000)  # float32 default
    assert fast.indices.tolist() == expected
    np.testing.assert_allclose(fast.scores, values, rtol=1e-4)
    # The first pick is the top-BALD item: a batch of one is plain BALD.
    assert got.indices[0] == int(np.argmax(certainty.bald(mc)))


def test_batchbald_avoids_duplicates_that_bald_would_pick() -> None:
    # Items 0..2 are copies of one uncertain item; item 3 is a slightly less uncertain, different one.
    # BALD ranks the copies first; BatchBALD picks one copy, then the different item.
    a = np.array([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.1, 0.9]])
    b = np.array([[0.8, 0.2], [0.8, 0.2], [0.2, 0.8], [0.2, 0.8]])
    mc = np.stack([a, a, a, b], axis=1)
    got = batchbald.select(mc, 2, prefilter=None)
    assert got.indices[0] in (0, 1, 2) and got.indices[1] == 3


def test_batchbald_sampled_configs_close_to_exact() -> None:
    mc = _random_mc(k=12, n=40, c=2, seed=3)
    exact = batchbald.select(mc, 10, prefilter=None, max_configs=2**12)
    approx = batchbald.select(mc, 10, prefilter=None, max_configs=64, seed=5)

    # Both greedy batches carry about the same information.
    def value(idx: np.ndarray) -> float:
        return batchbald.joint_entropy_exact(mc, idx) - batchbald.conditional_entropy(mc)[idx].sum()

    assert value(approx.indices) >= 0.9 * value(exact.indices)
    assert len(set(approx.indices.tolist())) == 10


def test_batchbald_prefilter_exclude_and_determinism() -> None:
    mc = _random_mc(k=12, n=3000, c=2, seed=4)
    exclude = np.zeros(3000, bool)
    exclude[np.argsort(-certainty.bald(mc))[:5]] = True
    a = batchbald.select(mc, 16, prefilter=200, seed=1, exclude=exclude)
    b = batchbald.select(mc, 16, prefilter=200, seed=1, exclude=exclude)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not exclude[a.indices].any()
    assert len(set(a.indices.tolist())) == 16
    top200 = set(np.argsort(-np.where(exclude, -1, certainty.bald(mc)))[:200].tolist())
    assert set(a.indices.tolist()) <= top200
