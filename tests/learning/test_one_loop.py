"""One loop, two drivers: `histolabel simulate` and the train/predict jobs call the same
training, acquisition and queue functions with the same defaults (issue 12 item 1)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from histolabel.events.catalogue import ProjectSettings
from histolabel.learning import acquisition, batchbald, defaults, simulation, training
from tests.learning.helpers import label as _label
from tests.learning.helpers import make_project as _project
from tests.learning.helpers import request as _request


def _images(n: int = 240, d: int = 6, count: int = 3) -> list[simulation.LabeledImage]:
    """Two-class blobs shaped like the simulation's images (standardized vectors, truth)."""
    out = []
    centers = np.random.default_rng(0).normal(size=(2, d)) * 1.2
    for i in range(count):
        rng = np.random.default_rng(i + 1)
        y = (rng.random(n) < 0.3).astype(np.int64)
        x = (centers[y] + rng.normal(size=(n, d))).astype(np.float32)
        out.append(simulation.LabeledImage(f"im{i}", x, y))
    return out


class Spy:
    def __init__(self, fn: Any) -> None:
        self.fn, self.calls, self.results = fn, [], []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        out = self.fn(*args, **kwargs)
        self.results.append(out)
        return out


def test_simulation_trains_acquires_and_queues_through_the_product_functions(monkeypatch) -> None:
    from histolabel.api import queue as api_queue

    fit, rank = Spy(training.fit_labels), Spy(acquisition.rank_slides)
    served = Spy(api_queue.uncertainty_queue)
    monkeypatch.setattr(training, "fit_labels", fit)
    monkeypatch.setattr(acquisition, "rank_slides", rank)
    monkeypatch.setattr(api_queue, "uncertainty_queue", served)
    curves = simulation.simulate(
        _images(), orders=("batchbald",), seeds=[0], folds=[0], cfg=simulation.SimConfig(budget=150)
    )
    cadence = ProjectSettings().retrain_threshold
    # The project's retrain cadence: a model every `retrain_threshold` labels.
    assert curves[0].labels == list(range(cadence, 151, cadence))
    assert len(fit.calls) == len(curves[0].labels) and len(rank.calls) == len(served.calls) == 2
    # What rank_slides published is what the queue served, in pick order.
    args, _ = rank.calls[0]
    assert args[3] == defaults.acquisition_size(cadence)
    picks = [(s, i + 1) for s, sc in rank.results[0].items() for i in np.flatnonzero(sc.batch >= 0)]
    order = sorted(
        picks,
        key=lambda p: (rank.results[0][p[0]].batch[p[1] - 1], rank.results[0][p[0]].batch_rank[p[1] - 1]),
    )
    assert [(q.slide_id, q.id) for q in served.results[0]] == order[:cadence]


@pytest.mark.slow
def test_a_change_in_the_shared_defaults_changes_both_drivers(
    cloud, svc, project_id, monuseg_crop, monkeypatch
) -> None:
    from gpu_jobs import train

    fit = Spy(training.fit_labels)
    monkeypatch.setattr(training, "fit_labels", fit)
    monkeypatch.setattr(defaults, "TRAINING", dataclasses.replace(defaults.TRAINING, linear_epochs=3))
    simulation.simulate(
        _images(), orders=("random",), seeds=[0], folds=[0], cfg=simulation.SimConfig(budget=50)
    )
    _project(svc, project_id, monuseg_crop)
    from gpu_jobs import embed

    assert embed.main(["--project", project_id, "--slide", "s1", "--kind", "handcrafted"]) == 0
    _label(svc, project_id, monuseg_crop[2], 20)
    assert train.main(["--project", project_id, "--request", _request(svc, project_id), "--no-predict"]) == 0
    job_metrics = svc.project_state(project_id).current_model["metrics"]
    assert len(fit.results) == 2  # one simulated model, one from the train job
    assert fit.results[0].metrics["epochs"] == job_metrics["epochs"] == 3
    assert job_metrics["heldout"] == "cross-validation" and job_metrics["heldout_n"] == 40
    assert job_metrics["few_heldout"] is True


def test_acquisition_is_one_greedy_batchbald_run_over_all_slides() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1, 300, 3)) * 2 + rng.normal(size=(12, 300, 3))
    mc = (np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)).astype(np.float32)
    by_slide = {"a": mc[:, :120], "b": mc[:, 120:]}
    ranked = acquisition.rank_slides(by_slide, {"a": {1, 2, 3}}, "batchbald", 40, seed=5)
    rows = [
        (sc.batch[i], sc.batch_rank[i], s, i)
        for s, sc in ranked.items()
        for i in np.flatnonzero(sc.batch >= 0)
    ]
    rows.sort()
    flat = [(0 if s == "a" else 120) + i for _, _, s, i in rows]
    # The same picks, in the same order, as one greedy BatchBALD of 40 over the whole pool
    # (so batch 1 is conditioned on batch 0), labeled items never picked.
    exclude = np.zeros(300, bool)
    exclude[[0, 1, 2]] = True
    ref = batchbald.select(
        mc, 40, exclude=exclude, prefilter=defaults.ACQUISITION.bb_candidates,
        max_configs=defaults.ACQUISITION.bb_configs, seed=5,
    )  # fmt: skip
    assert flat == ref.indices.tolist()
    assert [b for b, *_ in rows] == [0] * 32 + [1] * 8
    assert {0, 1, 2}.isdisjoint(flat)


@pytest.mark.parametrize("n", [20, 60, 499])
def test_small_label_sets_train_on_every_label_with_honest_metrics(n: int) -> None:
    x = np.concatenate([_images(n, count=1)[0].x])
    y = _images(n, count=1)[0].y
    y[:2] = [0, 1]
    res = training.fit_labels(x, y, ["a", "b"])
    m = res.metrics
    assert m["n_train"] == n and m["heldout"] == "cross-validation" and m["heldout_n"] == n
    assert m["epochs"] == defaults.TRAINING.linear_epochs
    assert m["few_heldout"] is (n < defaults.TRAINING.few_heldout)
    assert m["macro_f1"] > 0.7


def test_large_label_sets_stop_early_on_a_capped_split() -> None:
    rng = np.random.default_rng(3)
    n = 40_000
    y = (rng.random(n) < 0.3).astype(np.int64)
    x = (rng.normal(size=(n, 8)) + y[:, None]).astype(np.float32)
    m = training.fit_labels(x, y, ["a", "b"]).metrics
    assert m["heldout"] == "held-out split" and m["heldout_n"] == defaults.TRAINING.max_val
    assert m["few_heldout"] is False and m["n_train"] == n - m["heldout_n"]
    assert 1 <= m["epochs"] <= 300 and m["macro_f1"] > 0.7
