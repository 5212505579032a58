"""Embed, train and predict jobs against the local cloud, on a real MoNuSeg crop written as an
ingested + segmented slide (the ingest/segment jobs are tested by their owners)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.learning.helpers import OWNER
from tests.learning.helpers import label as _label
from tests.learning.helpers import make_project as _project
from tests.learning.helpers import request as _request

pytestmark = pytest.mark.slow


def test_embed_train_predict_and_queue(cloud, svc, project_id, monuseg_crop, capsys, monkeypatch) -> None:
    from gpu_jobs import embed, predict, train
    from histolabel.adapters import artifacts
    from histolabel.learning.queue import guided_order

    _rgb, labels, truth = monuseg_crop
    n = int(labels.max())
    _project(svc, project_id, monuseg_crop)
    for kind in ("handcrafted", "patch"):
        assert embed.main(["--project", project_id, "--slide", "s1", "--kind", kind, "--tile", "256"]) == 0
    state = svc.project_state(project_id)
    feats = state.slides["s1"].features
    assert feats["handcrafted"]["dim"] > 20 and feats["patch"]["dim"] == 3 * 64 * 64
    hc = artifacts.read_features(feats["handcrafted"]["uri"])
    assert hc.shape == (n, feats["handcrafted"]["dim"]) and np.isfinite(hc).all()
    assert artifacts.read_features(feats["patch"]["uri"]).dtype == np.uint8

    _label(svc, project_id, truth, 25)
    request = _request(svc, project_id)
    assert train.main(["--project", project_id, "--request", request]) == 0
    state = svc.project_state(project_id)
    model = state.current_model
    assert model is not None and model["model_version"] == 1 and model["label_count"] == 50
    m = model["metrics"]
    assert {"stroma", "nucleus", "macro_f1", "n_train", "n_val", "epochs"} <= set(m)
    assert m["macro_f1"] > 0.6 and m["nucleus"]["support"] > 0
    assert state.training[request].status == "completed"

    pred = state.predictions
    assert (
        pred is not None
        and pred["model_version"] == 1
        and pred["slides"] == ["s1"]
        and pred["metric"] == "margin"
    )
    table = artifacts.read_predictions(f"{pred['uri_prefix']}/s1.parquet")
    assert table.num_rows == n
    p_nuc = table.column("prob_nucleus").to_numpy()
    # The model separates nuclei from stroma on the whole crop, not just the 50 labels.
    assert p_nuc[truth == 1].mean() > p_nuc[truth == 0].mean() + 0.3
    cert = table.column("certainty").to_numpy()
    p = np.stack([table.column("prob_stroma").to_numpy(), p_nuc], axis=1)
    np.testing.assert_allclose(cert, np.abs(p[:, 0] - p[:, 1]), atol=1e-5)

    labeled = svc.training_labels(project_id)
    queue = guided_order([artifacts.slide_scores(pred["uri_prefix"], "s1")], labeled, limit=20)
    assert len(queue) == 20 and not {q.superpixel_id for q in queue} & set(labeled["s1"])
    assert [q.certainty for q in queue] == sorted(q.certainty for q in queue)
    assert queue[0].certainty <= np.sort(cert)[60]

    # The same inputs give the same predictions (seeded MC dropout): the queue is stable.
    assert predict.main(["--project", project_id, "--version", "1", "--no-events"]) == 0
    again = artifacts.read_predictions(f"{pred['uri_prefix']}/s1.parquet")
    np.testing.assert_array_equal(again.column("certainty").to_numpy(), cert)
    # Read a batch at a time, standardized with statistics gathered chunk by chunk (the path
    # of slides too large to read whole): the same predictions.
    from histolabel.learning.features import column_stats

    mean, scale = column_stats(artifacts.open_features(feats["handcrafted"]["uri"]))
    np.testing.assert_allclose(mean, hc.astype(np.float64).mean(axis=0), rtol=1e-6, atol=1e-6)
    std = hc.astype(np.float64).std(axis=0)
    np.testing.assert_allclose(scale, np.where(std > 1e-9, std, 1.0), rtol=1e-6, atol=1e-6)
    monkeypatch.setattr(predict, "IN_MEMORY_BYTES", 0)
    assert predict.main(["--project", project_id, "--version", "1", "--no-events"]) == 0
    lazy = artifacts.read_predictions(f"{pred['uri_prefix']}/s1.parquet")
    np.testing.assert_allclose(lazy.column("certainty").to_numpy(), cert, atol=1e-5)


def test_batchbald_predictions_carry_batches(cloud, svc, project_id, monuseg_crop) -> None:
    from gpu_jobs import embed, train
    from histolabel.adapters import artifacts
    from histolabel.learning.queue import guided_order

    _project(svc, project_id, monuseg_crop, metric="batchbald")
    assert embed.main(["--project", project_id, "--slide", "s1", "--kind", "handcrafted"]) == 0
    _label(svc, project_id, monuseg_crop[2], 15)
    assert train.main(["--project", project_id, "--request", _request(svc, project_id), "--no-predict"]) == 0
    from gpu_jobs import predict

    # One greedy acquisition of 40, published as display batches of 32 and 8.
    assert predict.main(["--project", project_id, "--acquire", "40"]) == 0
    pred = svc.project_state(project_id).predictions
    t = artifacts.read_predictions(f"{pred['uri_prefix']}/s1.parquet")
    batch = t.column("batch").to_numpy()
    assert (batch == 0).sum() == 32 and (batch == 1).sum() == 8
    queue = guided_order([artifacts.slide_scores(pred["uri_prefix"], "s1")], svc.training_labels(project_id))
    assert [q.batch for q in queue[:40]] == [0] * 32 + [1] * 8 and queue[40].batch == -1
    # By default the acquisition is the labels until the next retrain (the project's threshold).
    assert predict.main(["--project", project_id]) == 0
    pred = svc.project_state(project_id).predictions
    t = artifacts.read_predictions(f"{pred['uri_prefix']}/s1.parquet")
    assert (t.column("batch").to_numpy() >= 0).sum() == svc.project_state(
        project_id
    ).settings.retrain_threshold


def test_training_failures_keep_the_previous_model(cloud, svc, project_id, monuseg_crop, capsys) -> None:
    from gpu_jobs import embed, train

    truth = monuseg_crop[2]
    _project(svc, project_id, monuseg_crop)

    def attempt() -> str:
        request = _request(svc, project_id)
        assert train.main(["--project", project_id, "--request", request, "--no-predict"]) == 1
        run = svc.project_state(project_id).training[request]
        assert run.status == "failed"
        return str(run.reason_failed)

    _label(svc, project_id, truth, 10)
    assert "features are missing for slide(s) s1" in attempt()
    assert "run the embed job" in capsys.readouterr().err
    assert embed.main(["--project", project_id, "--slide", "s1", "--kind", "handcrafted"]) == 0
    request = _request(svc, project_id)
    assert train.main(["--project", project_id, "--request", request, "--no-predict"]) == 0
    assert svc.project_state(project_id).current_model["model_version"] == 1

    from histolabel.commands import ExcludeCategory

    svc.execute(ExcludeCategory(project_id=project_id, category_id="stroma"), OWNER)
    assert "at least 2 trainable categories" in attempt()
    state = svc.project_state(project_id)
    assert state.current_model["model_version"] == 1 and len(state.models) == 1


def test_training_without_labels_and_bad_job_input(cloud, svc, project_id, monuseg_crop, capsys) -> None:
    from gpu_jobs import embed, train

    _project(svc, project_id, monuseg_crop)
    request = _request(svc, project_id)
    assert train.main(["--project", project_id, "--request", request]) == 1
    assert "no labeled superpixels" in svc.project_state(project_id).training[request].reason_failed
    assert svc.project_state(project_id).current_model is None
    # Bad job input: one line, exit 2, nothing written.
    assert embed.run(embed.main, ["--project", project_id, "--slide", "nope", "--kind", "handcrafted"]) == 2
    assert "not registered" in capsys.readouterr().err
    assert embed.run(embed.main, ["--project", project_id, "--slide", "s1", "--kind", "foundation"]) == 2
    assert "HISTOLABEL_FOUNDATION_WEIGHTS" in capsys.readouterr().err
    assert svc.project_state(project_id).slides["s1"].features == {}


def test_foundation_features_from_weights_on_s3(cloud, svc, project_id, monuseg_crop, tmp_path) -> None:
    import torch

    from gpu_jobs import embed
    from histolabel.adapters import artifacts
    from histolabel.learning import vit

    torch.manual_seed(0)
    model = vit.VisionTransformer(
        vit.ViTConfig(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=4)
    )
    vit.save_local(model, tmp_path / "tiny.safetensors")
    weights = f"{artifacts.project_prefix(project_id)}/weights/tiny.safetensors"
    artifacts.write_bytes(weights, (tmp_path / "tiny.safetensors").read_bytes())
    _project(svc, project_id, monuseg_crop)
    assert (
        embed.main(["--project", project_id, "--slide", "s1", "--kind", "foundation", "--weights", weights])
        == 0
    )
    info = svc.project_state(project_id).slides["s1"].features["foundation"]
    values = artifacts.read_features(info["uri"])
    assert info["dim"] == 48 and values.shape == (int(monuseg_crop[1].max()), 48)
    assert np.isfinite(values).all() and values.std(axis=0).mean() > 0


def test_small_cnn_on_masked_patches(cloud, svc, project_id, monuseg_crop) -> None:
    from gpu_jobs import embed, predict, train
    from histolabel.adapters import artifacts

    _project(svc, project_id, monuseg_crop, metric="entropy", model_kind="cnn")
    assert (
        embed.main(["--project", project_id, "--slide", "s1", "--kind", "patch", "--patch-size", "32"]) == 0
    )
    # The streamed array holds every superpixel's patch; train reads labeled rows alone.
    uri = svc.project_state(project_id).slides["s1"].features["patch"]["uri"]
    full = artifacts.read_features(uri)
    assert (
        full.shape == (int(monuseg_crop[1].max()), 3, 32, 32)
        and full.reshape(len(full), -1).any(axis=1).all()
    )
    rows = np.array([5, 0, 5, full.shape[0] - 1, 17])
    np.testing.assert_array_equal(artifacts.feature_rows(artifacts.open_features(uri), rows), full[rows])
    _label(svc, project_id, monuseg_crop[2], 12)
    request = _request(svc, project_id)
    assert (
        train.main(["--project", project_id, "--request", request, "--max-epochs", "3", "--no-predict"]) == 0
    )
    model = svc.project_state(project_id).current_model
    assert model["metrics"]["epochs"] <= 3
    _, meta = artifacts.read_model(model["model_uri"])
    assert meta["model_kind"] == "cnn" and meta["feature_kind"] == "patch"
    assert predict.main(["--project", project_id, "--samples", "4"]) == 0
    pred = svc.project_state(project_id).predictions
    t = artifacts.read_predictions(f"{pred['uri_prefix']}/s1.parquet")
    cert = t.column("certainty").to_numpy()
    assert (
        t.num_rows == int(monuseg_crop[1].max()) and (cert <= 0).all() and (cert >= -np.log(2) - 1e-5).all()
    )
