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


def test_large_predictions_are_a_redirect_to_one_shared_copy(api, cloud, monkeypatch):
    """Past the inline limit the answer is a 303 to a content-named copy in the data bucket: the
    same answer is written once, and a merge (another answer) gets its own copy."""
    import json
    import urllib.request

    from histolabel.adapters.aws import client

    cats = ["tumor", "stroma", "necrosis"]
    probs = _probs(4)
    version = publish_predictions(api.svc, cloud, {"s1": probs}, cats)
    inline = api.request("GET", f"{S1}/predictions", user="ana").json_body
    monkeypatch.setenv("HISTOLABEL_INLINE_RESPONSE_BYTES", "10000")
    first = api.request("GET", f"{S1}/predictions", user="ana")
    assert first.status_code == 303, first.body
    with urllib.request.urlopen(first.headers["Location"], timeout=10) as res:
        assert json.loads(res.read()) == inline
    again = api.request("GET", f"{S1}/predictions", user="audrey")
    assert again.status_code == 303
    s3 = client("s3", cloud)
    prefix = f"projects/proj/exports/predictions/s1/v{version}-"
    assert len(s3.list_objects_v2(Bucket=cloud.data_bucket, Prefix=prefix)["Contents"]) == 1
    api.svc.execute(MergeCategories(project_id="proj", sources=["stroma"], target="tumor"), OWNER)
    merged = api.request("GET", f"{S1}/predictions", user="ana")
    with urllib.request.urlopen(merged.headers["Location"], timeout=10) as res:
        assert "stroma" not in json.loads(res.read())["categories"]
    assert len(s3.list_objects_v2(Bucket=cloud.data_bucket, Prefix=prefix)["Contents"]) == 2
    assert api.request("GET", f"{S1}/predictions", user="oscar").status_code == 403


def test_predictions_follow_merges(api, cloud):
    probs = _probs(3)
    publish_predictions(api.svc, cloud, {"s1": probs}, ["tumor", "stroma", "necrosis"])
    api.svc.execute(MergeCategories(project_id="proj", sources=["stroma"], target="tumor"), OWNER)
    body = api.request("GET", f"{S1}/predictions", user="ana").json_body
    assert "stroma" not in body["categories"]
    got = [body["categories"][i] for i in body["classes"]]
    assert got == [["tumor", "tumor", "necrosis"][i] for i in probs.argmax(axis=1)]


def _queue(api, n=50):
    body = api.request("GET", f"{P}/queue?n={n}", user="ana").json_body
    return body, [(i["slide_id"], i["id"]) for i in body["items"]]


def test_queue_serves_least_certain_first_across_slides(api, cloud):
    from tests.unit.helpers import segmented

    api.request(
        "POST", f"{P}/slides", user="olivia", body={"name": "two", "slide_id": "s2", "filename": "a.svs"}
    )
    segmented(api.svc, "proj", "s2", N)
    cats = ["tumor", "stroma", "necrosis"]
    rng = np.random.default_rng(5)
    cert = {s: rng.random(N).astype(np.float32) for s in ("s1", "s2")}
    probs = {"s1": _probs(6), "s2": _probs(7)}
    version = publish_predictions(api.svc, cloud, probs, cats, certainty=cert)
    body, got = _queue(api)
    assert body["model_version"] == version
    everything = sorted((float(cert[s][i - 1]), s, i) for s in cert for i in range(1, N + 1))
    assert got == [(s, i) for _, s, i in everything[:50]]
    first = body["items"][0]
    assert first["prediction"] == cats[int(probs[first["slide_id"]][first["id"] - 1].argmax())]
    assert first["bbox"] is None  # the seeded slides have no superpixel table on S3
    # What is answered leaves the queue at once; an excluded category's predictions are skipped.
    s, i = got[0]
    api.request("POST", f"{P}/slides/{s}/labels", user="ana", body={"category_id": "tumor", "ids": [i]})
    api.request("POST", f"{P}/categories/necrosis/exclude", user="olivia")
    _, after = _queue(api)
    keep = [(c, s, i) for c, s, i in everything if int(probs[s][i - 1].argmax()) != 2 and (s, i) != got[0]]
    assert after == [(s, i) for _, s, i in keep[:50]]


def test_queue_keeps_batchbald_batches_together(api, cloud):
    probs = _probs(8)
    cert = np.linspace(0, 1, N, dtype=np.float32)
    batch = np.full(N, -1, np.int32)
    rank = np.zeros(N, np.int32)
    chosen = [4000, 10, 2500, 77]  # two batches of two, in acquisition order
    batch[[i - 1 for i in chosen]] = [0, 0, 1, 1]
    rank[[i - 1 for i in chosen]] = [0, 1, 0, 1]
    publish_predictions(api.svc, cloud, {"s1": probs}, ["tumor", "stroma", "necrosis"],
                        certainty={"s1": cert}, batches={"s1": (batch, rank)})  # fmt: skip
    _, got = _queue(api, n=6)
    rest = [i for i in range(1, N + 1) if i not in chosen]
    assert [i for _, i in got] == chosen + rest[:2]
