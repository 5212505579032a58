"""The predict job holds one slide's MC-dropout array at a time (issue 16: predict memory
bounded per child whatever the slide count), and what it publishes is what the whole-in-memory
acquisition published before: the same per-slide tables and the same merged ranking."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from histolabel.api import ranking
from histolabel.api.tables import Predictions
from histolabel.commands import AddCategory, CreateProject, LabelSuperpixels
from histolabel.events.catalogue import ProjectSettings
from histolabel.learning import batchbald, certainty, defaults, models
from histolabel.learning.queue import SlideScores
from tests.learning.helpers import OWNER, register_segmented

SLIDES = ("s1", "s2", "s3")
N = 400  # superpixels a slide: 3 x 400 BALD candidates overflow the joint pool's 500


def _reference_rank_slides(mc, labeled, metric, size, *, seed=0):
    """The acquisition as it was before it streamed (every slide's MC array at once): the
    reference the streamed one must equal."""
    cfg = defaults.ACQUISITION
    slides = sorted(mc)
    n = {s: mc[s].shape[1] for s in slides}
    out = {
        s: SlideScores(
            s, certainty.certainty(metric, mc[s]), np.full(n[s], -1, np.int32), np.zeros(n[s], np.int32)
        )
        for s in slides
    }
    if metric != "batchbald" or size <= 0 or not slides or mc[slides[0]].shape[0] < 2:
        return out
    cand_slide, cand_row, cand_bald = [], [], []
    for si, s in enumerate(slides):
        b = certainty.bald(mc[s])
        done = np.fromiter(labeled.get(s, ()), np.int64)
        b[done[(done >= 1) & (done <= b.size)] - 1] = -np.inf
        rows = np.argsort(-b, kind="stable")[: cfg.bb_candidates]
        rows = rows[np.isfinite(b[rows])]
        cand_slide.append(np.full(rows.size, si))
        cand_row.append(rows)
        cand_bald.append(b[rows])
    order = np.argsort(-np.concatenate(cand_bald), kind="stable")[: cfg.bb_candidates]
    c_slide, c_row = np.concatenate(cand_slide)[order], np.concatenate(cand_row)[order]
    pool = np.stack([mc[slides[si]][:, r] for si, r in zip(c_slide, c_row, strict=True)], axis=1)
    acq = batchbald.select(pool, size, prefilter=None, max_configs=cfg.bb_configs, seed=seed)
    for pick, i in enumerate(acq.indices.tolist()):
        scores = out[slides[c_slide[i]]]
        scores.batch[c_row[i]] = pick // cfg.bb_publish_batch
        scores.batch_rank[c_row[i]] = pick % cfg.bb_publish_batch
    return out


def _project(svc: Any, project_id: str, metric: str) -> dict[str, np.ndarray]:
    """Three slides with two-class blob vectors as FeaturesCompleted, and labels on each."""
    from histolabel.adapters import artifacts

    settings = ProjectSettings(certainty_metric=metric, feature_kind="handcrafted", model_kind="linear")
    svc.execute(CreateProject(project_id=project_id, name="stream", settings=settings), OWNER)
    for name in ("stroma", "nucleus"):
        svc.execute(AddCategory(project_id=project_id, name=name, category_id=name), OWNER)
    centers = np.random.default_rng(0).normal(size=(2, 6))
    truth = {}
    for k, sid in enumerate(SLIDES):
        rng = np.random.default_rng(k + 1)
        y = (rng.random(N) < 0.4).astype(np.int64)
        x = (centers[y] + rng.normal(size=(N, 6)) * 1.5).astype(np.float32)
        x[:40] = x[0]  # tied certainties: the ranking and the pool break ties by slide, then id
        base = f"{artifacts.project_prefix(project_id)}/slides/{sid}"
        register_segmented(svc, project_id, sid, f"{base}/x.tif", (64, 64, 1), N)
        uri = artifacts.features_uri(project_id, sid, "handcrafted")
        artifacts.write_features(uri, x)
        svc.record_job_event(
            project_id,
            "FeaturesCompleted",
            {"slide_id": sid, "kind": "handcrafted", "uri": uri, "dim": 6},
            "embed",
        )
        for c, name in enumerate(("stroma", "nucleus")):
            ids = (np.flatnonzero(y == c)[50:58] + 1).tolist()
            svc.execute(
                LabelSuperpixels(project_id=project_id, slide_id=sid, ids=ids, category_id=name), OWNER
            )
        truth[sid] = x
    return truth


def _train(svc: Any, project_id: str) -> None:
    from gpu_jobs import train

    svc.request_training(project_id, OWNER)
    req = next(
        r.request_id for r in svc.project_state(project_id).training.values() if r.status == "requested"
    )
    assert train.main(["--project", project_id, "--request", req, "--no-predict", "--max-epochs", "20"]) == 0


def _whole_in_memory(
    svc: Any, project_id: str, version: int, size: int
) -> tuple[dict[str, pa.Table], pa.Table]:
    """What the job published before it streamed: every slide's MC array, one rank_slides,
    tables from them, the ranking of every slide's whole predictions."""
    from histolabel.adapters import artifacts
    from histolabel.learning.features import Standardized, column_stats

    state = svc.project_state(project_id)
    weights, meta = artifacts.read_model(artifacts.model_prefix(project_id, version))
    model = models.from_bytes(weights, meta).to(models.device())
    metric = state.settings.certainty_metric
    mc = {}
    for sid in SLIDES:
        x = np.asarray(artifacts.open_features(state.slides[sid].features["handcrafted"]["uri"])[...])
        mc[sid] = models.predict_mc(
            model, Standardized(x, *column_stats(x)), samples=defaults.ACQUISITION.mc_samples,
            batch_size=262144, seed=version,
        )  # fmt: skip
    labeled = (
        {s: set(svc.slide_labels_fresh(project_id, s).current()) for s in SLIDES}
        if metric == "batchbald"
        else {}
    )
    picks = defaults.acquisition_size(state.settings.retrain_threshold)
    ranked = _reference_rank_slides(mc, labeled, metric, picks, seed=version)
    tables = {}
    for sid in SLIDES:
        mean = mc[sid].mean(axis=0)
        cols: dict[str, Any] = {"id": np.arange(1, N + 1, dtype=np.int64)}
        for i, cid in enumerate(meta["class_ids"]):
            cols[f"prob_{cid}"] = mean[:, i]
        cols.update(
            certainty=ranked[sid].certainty, batch=ranked[sid].batch, batch_rank=ranked[sid].batch_rank
        )
        tables[sid] = pa.table(cols)
    preds = {s: Predictions.from_arrow(t) for s, t in tables.items()}
    return tables, ranking.ranking_table(preds, labeled, size)


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["batchbald", "margin"])
def test_predict_streams_slides_and_publishes_what_the_whole_in_memory_round_did(
    cloud, svc, project_id, metric, monkeypatch
) -> None:
    from gpu_jobs import predict
    from histolabel.adapters import artifacts

    _project(svc, project_id, metric)
    _train(svc, project_id)
    # A ranking shorter than the slides' superpixels, so the streamed one has rows to drop.
    monkeypatch.setattr(ranking, "RANKING_SIZE", 300)
    alive: list[weakref.ref] = []
    most = [0]
    real = models.predict_mc

    def spy(*args: Any, **kwargs: Any) -> Any:
        gc.collect()
        most[0] = max(most[0], sum(r() is not None for r in alive))
        out = real(*args, **kwargs)
        alive.append(weakref.ref(out))
        return out

    monkeypatch.setattr(models, "predict_mc", spy)
    assert predict.main(["--project", project_id]) == 0
    monkeypatch.setattr(models, "predict_mc", real)
    assert len(alive) == len(SLIDES)
    # No earlier slide's MC array is alive when the next one is computed.
    assert most[0] == 0
    gc.collect()
    assert all(r() is None for r in alive)

    state = svc.project_state(project_id)
    version = state.predictions["model_version"]
    prefix = state.predictions["uri_prefix"]
    tables, ranked = _whole_in_memory(svc, project_id, version, 300)
    for sid in SLIDES:
        got = artifacts.read_predictions(f"{prefix}/{sid}.parquet")
        assert got.equals(tables[sid]), sid
    got = artifacts.read_predictions(f"{prefix}/{ranking.RANKING_FILE}")
    assert got.num_rows == 300
    assert got.select(ranked.column_names).equals(ranked)
    # These slides' superpixel tables were never written: their geometry is left to the queue.
    assert all(got.column(c).null_count == 300 for c in ranking.GEOMETRY_COLUMNS)
    if metric == "batchbald":
        picked = sum(int((t.column("batch").to_numpy() >= 0).sum()) for t in tables.values())
        assert picked == defaults.acquisition_size(state.settings.retrain_threshold)
        assert len({t.column("batch").to_numpy().max() >= 0 for t in tables.values()}) >= 1


def test_the_ranking_built_a_slide_at_a_time_is_the_ranking_of_every_slide() -> None:
    rng = np.random.default_rng(3)
    cats = ["a", "b", "c"]
    whole, labeled = {}, {}
    for s in ("m", "n", "o", "p"):
        n = int(rng.integers(100, 300))
        probs = rng.dirichlet(np.ones(3), n).astype(np.float32)
        cert = np.round(probs.max(axis=1), 2).astype(np.float32)  # many ties
        cert[rng.random(n) < 0.05] = np.nan
        batch, rank = np.full(n, -1, np.int32), np.zeros(n, np.int32)
        whole[s] = Predictions(np.arange(1, n + 1), cats, probs, cert, batch, rank)
        labeled[s] = set(rng.choice(np.arange(1, n + 1), 20, replace=False).tolist())
    # Picks: some among the least certain, some not, spread over two slides.
    picks = [("n", 5), ("p", 7), ("n", 90), ("m", 11), ("p", 2)]
    picks = [(s, i) for s, i in picks if i not in labeled[s]]
    for k, (s, i) in enumerate(picks):
        whole[s].batch[i - 1], whole[s].batch_rank[i - 1] = k // 2, k % 2
    for size in (50, 400, 5000):
        builder = ranking.RankingBuilder(size, reserve=len(picks))
        for s in sorted(whole):
            p = whole[s]
            builder.add(s, Predictions(p.ids, cats, p.probs, p.certainty, np.full_like(p.batch, -1),
                                       np.zeros_like(p.batch_rank)), labeled[s])  # fmt: skip
        for s in sorted({s for s, _ in picks}):
            builder.add_picks(s, whole[s])
        assert builder.table().equals(ranking.ranking_table(whole, labeled, size)), size
    with pytest.raises(ValueError, match="sorted order"):
        builder.add("a", whole["m"], ())


class _CountingArray:
    """A chunked [n, d] array that counts the rows read from it."""

    def __init__(self, values: np.ndarray, chunk: int) -> None:
        self.values, self.chunks, self.read = values, (chunk, values.shape[1]), 0
        self.shape, self.dtype = values.shape, values.dtype

    def __getitem__(self, key: slice) -> np.ndarray:
        out = self.values[key]
        self.read += out.shape[0]
        return out


def test_train_takes_a_slides_labeled_rows_and_statistics_from_one_read() -> None:
    from histolabel.learning.features import column_stats, stats_and_rows

    x = np.random.default_rng(1).normal(size=(1003, 7)).astype(np.float32)
    rows = np.array([0, 5, 99, 100, 101, 550, 1002])
    arr = _CountingArray(x, 100)
    mean, scale, picked = stats_and_rows(arr, rows)
    assert arr.read == x.shape[0]  # every row once: no second read for the labeled rows
    np.testing.assert_array_equal(picked, x[rows])
    ref_mean, ref_scale = column_stats(x, 100)
    np.testing.assert_array_equal(mean, ref_mean)
    np.testing.assert_array_equal(scale, ref_scale)
