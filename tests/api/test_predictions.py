"""The per-slide predictions the web app colours the overlay with, and the guided queue once a
model has predicted: read from the parquet files the predict job writes."""

from __future__ import annotations

import numpy as np

from histolabel.commands import MergeCategories
from tests.api.conftest import publish_predictions
from tests.unit.helpers import OWNER

P = "/projects/proj"
S1 = P + "/slides/s1"
N = 5000


def _probs(seed: int, k: int = 3) -> np.ndarray:
    p = np.random.default_rng(seed).random((N, k)).astype(np.float32) + 0.01
    return p / p.sum(axis=1, keepdims=True)


def test_no_model_is_404_and_missing_slide_is_409(api, cloud):
    r = api.request("GET", f"{S1}/predictions", user="ana")
    assert r.status_code == 404 and r.json_body["error"] == "not_found"
    assert api.request("GET", f"{P}/slides/nope/predictions", user="ana").status_code == 404
    api.request(
        "POST", f"{P}/slides", user="olivia", body={"name": "two", "slide_id": "s2", "filename": "a.svs"}
    )
    publish_predictions(api.svc, cloud, {"s1": _probs(1)}, ["tumor", "stroma", "necrosis"])
    r = api.request("GET", f"{P}/slides/s2/predictions", user="ana")
    assert r.status_code == 409 and r.json_body["field"] == "slide_id"


def test_predictions_name_the_top_class_and_certainty(api, cloud):
    cats = ["tumor", "stroma", "necrosis"]
    first = publish_predictions(api.svc, cloud, {"s1": _probs(1)}, cats)
    probs = _probs(2)
    version = publish_predictions(api.svc, cloud, {"s1": probs}, cats)
    assert version == first + 1
    r = api.request("GET", f"{S1}/predictions", user="audrey")
    assert r.status_code == 200, r.body
    body = r.json_body
    assert body["model_version"] == version and body["ids"] == list(range(1, N + 1))
    got = [body["categories"][i] for i in body["classes"]]
    assert got == [cats[i] for i in probs.argmax(axis=1)]
    assert np.allclose(body["certainty"], probs.max(axis=1), atol=1e-4)


def test_predictions_follow_merges(api, cloud):
    probs = _probs(3)
    publish_predictions(api.svc, cloud, {"s1": probs}, ["tumor", "stroma", "necrosis"])
    api.svc.execute(MergeCategories(project_id="proj", sources=["stroma"], target="tumor"), OWNER)
    body = api.request("GET", f"{S1}/predictions", user="ana").json_body
    assert "stroma" not in body["categories"]
    got = [body["categories"][i] for i in body["classes"]]
    assert got == [["tumor", "tumor", "necrosis"][i] for i in probs.argmax(axis=1)]
