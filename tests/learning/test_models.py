"""Linear head and small CNN: training learns, fails clearly, MC dropout varies, round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from histolabel.learning import models, training


def _blobs(n: int, d: int, seed: int, imbalance: float = 0.5, draw: int = 0) -> tuple[np.ndarray, np.ndarray]:
    centers = np.random.default_rng(seed).normal(size=(2, d)) * 1.5
    rng = np.random.default_rng([seed, draw])
    y = (rng.random(n) < imbalance).astype(np.int64)
    x = centers[y] + rng.normal(size=(n, d))
    return (x * 10 + 100).astype(np.float32), y  # far from standardized, on purpose


def test_linear_head_learns_and_scores_each_class() -> None:
    x, y = _blobs(600, 8, 0, imbalance=0.15)
    res = training.train(x, y, ["stroma", "nucleus"])
    m = res.metrics
    assert m["macro_f1"] > 0.85
    assert set(m["nucleus"]) == {"precision", "recall", "f1", "support"}
    assert m["nucleus"]["support"] + m["stroma"]["support"] == m["n_val"] > 0
    assert m["n_train"] == 600 and 1 <= m["epochs"] <= 300
    xt, yt = _blobs(3000, 8, 0, imbalance=0.15, draw=1)
    pred = models.predict_mc(res.model, xt, samples=1)[0].argmax(1)
    assert training.per_class_scores(yt, pred, ["s", "n"])["per_class"]["n"]["f1"] > 0.85


def test_class_balancing_finds_more_of_the_rare_class() -> None:
    x, y = _blobs(400, 3, 7, imbalance=0.1)
    xt, yt = _blobs(4000, 3, 7, imbalance=0.1, draw=1)
    recall = {}
    for balance in (True, False):
        res = training.train(x, y, ["s", "n"], training.TrainConfig(balance=balance))
        pred = models.predict_mc(res.model, xt, samples=1)[0].argmax(1)
        recall[balance] = training.per_class_scores(yt, pred, ["s", "n"])["per_class"]["n"]["recall"]
    assert recall[True] > recall[False] + 0.02


def test_training_refuses_bad_inputs_with_reasons() -> None:
    x, y = _blobs(50, 4, 1)
    with pytest.raises(training.TrainingError, match="at least 2 trainable categories"):
        training.train(x, np.zeros(50, np.int64), ["only"])
    with pytest.raises(training.TrainingError, match="no labeled superpixels"):
        training.train(x[:0], y[:0], ["a", "b"])
    with pytest.raises(training.TrainingError, match="only one category"):
        training.train(x, np.zeros(50, np.int64), ["a", "b"])
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(training.TrainingError, match="NaN"):
        training.train(bad, y, ["a", "b"])


def test_mc_dropout_samples_differ_and_are_reproducible() -> None:
    x, y = _blobs(300, 6, 2)
    res = training.train(x, y, ["a", "b"], training.TrainConfig(dropout=0.5))
    a = models.predict_mc(res.model, x[:50], samples=12, seed=3)
    b = models.predict_mc(res.model, x[:50], samples=12, seed=3)
    assert a.shape == (12, 50, 2)
    np.testing.assert_array_equal(a, b)
    assert a.std(axis=0).mean() > 1e-3
    np.testing.assert_allclose(a.sum(axis=2), 1.0, rtol=1e-5)


def test_save_and_load_round_trip_gives_same_predictions() -> None:
    x, y = _blobs(200, 5, 4)
    res = training.train(x, y, ["a", "b"])
    again = models.from_bytes(models.to_bytes(res.model), res.meta)
    np.testing.assert_allclose(
        models.predict_mc(again, x, samples=4, seed=1), models.predict_mc(res.model, x, samples=4, seed=1)
    )
    with pytest.raises(ValueError, match="class_ids"):
        models.from_bytes(models.to_bytes(res.model), {"model_kind": "linear"})


def test_small_cnn_learns_patch_colour() -> None:
    rng = np.random.default_rng(0)
    n = 160
    y = rng.integers(0, 2, n)
    patches = rng.integers(0, 60, size=(n, 3, 32, 32)).astype(np.uint8)
    patches[y == 1, 2] += 120  # class 1: blue-ish (haematoxylin-like)
    cfg = training.TrainConfig(model_kind="cnn", max_epochs=30, patience=8, lr=3e-3, batch_size=32, width=8)
    res = training.train(patches, y, ["stroma", "nucleus"], cfg)
    assert res.metrics["macro_f1"] > 0.8
    probs = models.predict_mc(res.model, patches[:20], samples=3, batch_size=64)
    assert probs.shape == (3, 20, 2)
    again = models.from_bytes(models.to_bytes(res.model), res.meta)
    np.testing.assert_allclose(
        models.predict_mc(again, patches[:8], samples=1),
        models.predict_mc(res.model, patches[:8], samples=1),
        rtol=1e-5,
    )


def test_stacked_fold_heads_train_as_each_would_alone() -> None:
    """The k-fold heads of a small label set train side by side as one stacked model; without
    dropout (the only randomness in a step) each head ends where its own training would."""
    from dataclasses import replace

    import torch

    rng = np.random.default_rng(3)
    x = rng.normal(size=(240, 12)).astype(np.float32)
    y = (x[:, 0] + 0.7 * rng.normal(size=240) > 0.4).astype(np.int64)  # imbalanced: weights differ
    cfg = replace(training.config_for("linear"), dropout=0.0)
    xt, yt, dev = torch.as_tensor(x), torch.as_tensor(y), torch.device("cpu")
    rows = [np.arange(240), *(tr for tr, _te in training._folds(y, 5, 0))]
    torch.manual_seed(0)
    stacked = training._fit_linear_together(xt, yt, rows, cfg, 60, 2, dev)
    torch.manual_seed(0)
    alone = []
    for r in rows:
        head = models.build("linear", 2, dim=12, dropout=0.0)
        head.set_standardization(xt[r])
        alone.append(head)
    alone = [
        training._fit(h, xt[r], yt[r], training._class_weights(y[r], 2), cfg, 60)[0]
        for h, r in zip(alone, rows, strict=True)
    ]
    for a, b in zip(stacked, alone, strict=True):
        torch.testing.assert_close(a.state_dict(), b.state_dict(), atol=1e-5, rtol=1e-4)
    # and the stacked heads are not all one head
    assert not torch.allclose(stacked[0].fc.weight, stacked[1].fc.weight)
