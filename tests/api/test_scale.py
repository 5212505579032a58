"""Scale: projects made by the scale generator (bench/scale_data.py: the product's events,
tables, predictions, ranking and label projections) in the local cloud, served by the app
in-process. The queue reads O(page): its store calls do not grow with the number of slides, and
a label just given is never offered again. The export job, started and polled through the API
and run by the local job runner, writes what GET .../export answers."""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from histolabel.adapters import pyramids
from histolabel.api import queue
from histolabel.api.ranking import RANKING_FILE
from histolabel.api.tables import SuperpixelTable
from histolabel.composition import service_from_env
from histolabel.leases import Lease

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


# ---- the rules, as plain functions ------------------------------------------------------------


def test_spread_order_is_a_fixed_permutation_computed_per_position() -> None:
    for count in (1, 2, 7, 1000, 4097):
        order = queue.spread_order("p", "s", count)
        assert sorted(order.tolist()) == list(range(1, count + 1))
    order = queue.spread_order("p", "s", 5000)
    assert np.array_equal(order, queue.spread_order("p", "s", 5000))
    assert not np.array_equal(order, queue.spread_order("p", "other", 5000))
    picked = np.array([3, 4999, 17])
    assert np.array_equal(queue.spread_ids("p", "s", 5000, picked), order[picked])
    assert abs(float(np.corrcoef(np.arange(5000), order)[0, 1])) < 0.05  # well mixed


def test_spread_queue_takes_runs_of_each_slide_in_turn_and_skips_labeled() -> None:
    slides = {"b": 100, "a": 40}
    first = queue.spread_order("p", "a", 40)[:3].tolist()
    items = queue.spread_queue("p", slides, {"a": set(first)}, 70)
    a_ids = [i.id for i in items if i.slide_id == "a"]
    assert [i.slide_id for i in items[: queue.SPREAD_RUN - 3]] == ["a"] * (queue.SPREAD_RUN - 3)
    assert not set(first) & set(a_ids)
    assert a_ids == [i for i in queue.spread_order("p", "a", 40).tolist() if i not in first][: len(a_ids)]


def test_overlap_draw_is_fixed_per_id_and_near_the_share() -> None:
    ids = np.arange(1, 20001)
    drawn = queue.doubled_ids("p", "s", ids, 0.2)
    assert np.array_equal(drawn, queue.doubled_ids("p", "s", ids, 0.2))
    assert 0.18 < drawn.mean() < 0.22
    assert queue.slots_for("p", "s", 7, 0.2) == (2 if drawn[6] else 1)
    assert not queue.doubled_ids("p", "s", ids, 0).any()


def test_lease_waves_keep_the_order_and_never_take_more_than_asked() -> None:
    items = [queue.QueueItem("s", i) for i in range(1, 40)]
    held_by_others = {3, 4, 10}  # every slot of these is someone else's
    taken: list[Lease] = []
    lock = threading.Lock()

    def take(lease: Lease, spent: str | None) -> bool:
        with lock:
            if lease.id in held_by_others:
                return False
            taken.append(lease)
            return True

    two_slots = {5}
    waves: list[int] = []
    asked: list[int] = []

    def take_all(attempts: list[tuple[Lease, str | None]]) -> list[bool]:
        waves.append(len(attempts))
        return [take(lease, spent) for lease, spent in attempts]

    def held(some: list[queue.QueueItem]) -> list[Lease]:
        asked.extend(i.id for i in some)
        return [Lease("s", 4, 0, "other", 2.0)] if any(i.id == 4 for i in some) else []

    out = queue.lease_items(
        items, labelers=lambda s, i: set(), slots=lambda s, i: 2 if i in two_slots else 1, user="u",
        take_all=take_all, until=1.0, n=8, held=held,
    )  # fmt: skip
    assert [i.id for i in out] == [1, 2, 5, 6, 7, 8, 9, 11]
    assert len(taken) == 8
    assert 4 not in {lease.id for lease in taken}  # known held: skipped without a write
    assert len(waves) <= 3 and max(waves) <= 8
    # Only the stretches the page reached (8, then twice that), not all 39.
    assert asked == list(range(1, 25))


def test_rebuild_encodes_every_bucket_as_the_projector_does_in_one_pass() -> None:
    from histolabel.projections.labels import SlideLabels
    from histolabel.projections.store import all_buckets, encode_bucket, encode_buckets

    rng = np.random.default_rng(0)
    state = SlideLabels("p", "s")
    for i in rng.choice(np.arange(1, 200_000), 3000, replace=False).tolist():
        state.entries[int(i)] = {"l": {"u": ["c", "t"]}, "c": "c", "cb": "u", "ca": "t", "r": None}
    assert encode_buckets(state, all_buckets(state)) == {
        b: encode_bucket(state, b) for b in all_buckets(state)
    }


def test_prediction_lookup_of_a_page_equals_the_slide_wide_lookup() -> None:
    import pyarrow as pa

    from histolabel.api.tables import Predictions

    probs = np.random.default_rng(1).dirichlet([1, 1, 1], 500).astype(np.float32)
    table = pa.table({"id": np.arange(1, 501), **{f"prob_{c}": probs[:, k] for k, c in enumerate("abc")}})
    pred = Predictions.from_arrow(table)
    full = pred.lookup()
    assert pred.lookup([7, 499, 1000, 3]) == {i: full[i] for i in (7, 499, 3)}


def test_the_ranking_carries_the_geometry_it_was_given_and_reads_rankings_without_it() -> None:
    import pyarrow as pa

    from histolabel.api import ranking
    from histolabel.api.tables import Predictions

    rng = np.random.default_rng(2)
    preds = {}
    for s in ("a", "b"):
        probs = rng.dirichlet([1, 1], 50).astype(np.float32)
        preds[s] = Predictions.from_arrow(pa.table({"id": np.arange(1, 51), "prob_x": probs[:, 0],
                                                    "prob_y": probs[:, 1]}))  # fmt: skip
    table = ranking.ranking_table(preds, {}, 30)
    asked: list[tuple[str, list[int]]] = []

    def geometry(slide_id: str, ids: list[int]) -> SuperpixelTable:
        asked.append((slide_id, sorted(ids)))
        have = np.array(sorted(i for i in ids if i % 3), np.int64)  # ids divisible by 3: not in the table
        return SuperpixelTable(have, np.stack([have, have + 1, have + 2, have + 3], 1),
                               np.stack([have + 0.5, have + 1.5], 1))  # fmt: skip

    items = ranking.ranking_items(ranking.with_geometry(table, geometry))
    assert [(i.slide_id, i.id, i.prediction, i.certainty) for i in items] == [
        (i.slide_id, i.id, i.prediction, i.certainty) for i in ranking.ranking_items(table)
    ]
    assert sorted(s for s, _ids in asked) == sorted({i.slide_id for i in items})  # one read a slide
    for item in items:
        if item.id % 3:
            assert item.bbox == (item.id, item.id + 1, item.id + 2, item.id + 3)
            assert item.centroid == (item.id + 0.5, item.id + 1.5)
        else:
            assert item.bbox is None and item.centroid is None
    # A ranking published before it carried geometry: its items have none.
    assert all(i.bbox is None for i in ranking.ranking_items(table))


# ---- through the API, on the local cloud ----------------------------------------------------


@pytest.fixture
def scale_api(cloud: Any, signer: Any) -> Iterator[Any]:
    from app import app
    from chalice.test import Client
    from chalicelib.context import SERVICES

    from tests.api.conftest import POOL

    svc = service_from_env(cloud)
    SERVICES.service, SERVICES.pool = svc, POOL
    SERVICES.jwks = lambda kid: signer.jwk if kid == signer.kid else None
    client = Client(app)

    def call(method: str, path: str, user: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {signer.token(user)}", "Content-Type": "application/json"}
        return client.http.request(method, path, headers=headers, body=json.dumps(body) if body else b"")

    call.svc = svc  # type: ignore[attr-defined]
    yield call
    SERVICES.service = SERVICES.submitter = SERVICES.pool = SERVICES.jwks = None


def store_calls(fn: Any) -> tuple[Any, int]:
    """fn() and the AWS API calls it made (DynamoDB, S3, KMS)."""
    from botocore.client import BaseClient

    count = [0]
    original = BaseClient._make_api_call

    def counted(self: Any, operation: str, params: Any) -> Any:
        count[0] += 1
        return original(self, operation, params)

    BaseClient._make_api_call = counted  # type: ignore[method-assign]
    try:
        return fn(), count[0]
    finally:
        BaseClient._make_api_call = original  # type: ignore[method-assign]


def recorded(fn: Any, uris: list[str]) -> Any:
    def call(uri: str, *args: Any, **kwargs: Any) -> Any:
        uris.append(uri)
        return fn(uri, *args, **kwargs)

    return call


def assert_table_geometry(svc: Any, project_id: str, items: list[dict[str, Any]]) -> None:
    """Each queue item's box and centroid are its slide table's own."""
    state = svc.project_state(project_id)
    for item in items:
        seg = state.slides[item["slide_id"]].segmentation
        table = SuperpixelTable.from_arrow(pyramids.read_table(seg["table_uri"]))
        row = int(table.rows(np.array([item["id"]]))[0])
        assert item["bbox"] == table.bbox[row].tolist(), item
        assert item["centroid"] == table.centroid[row].tolist(), item


def test_queue_store_calls_do_not_grow_with_slides_and_labels_are_never_offered_again(
    scale_api, monkeypatch
) -> None:
    from chalicelib import data
    from scale_data import generate, publish_predictions

    svc = scale_api.svc
    # Small row groups, so a spread page's ids span several of a slide's groups (read at once).
    monkeypatch.setattr(pyramids, "TABLE_ROW_GROUP", 128)
    calls: dict[int, dict[str, int]] = {}
    for slides in (1, 5):
        made = generate(svc, slides, 1000, labeled=0.05, annotators=2, predictions=False)
        user = made.annotators[0]
        path = f"/projects/{made.project_id}/queue?n=10"
        scale_api("GET", path, user)  # a container's first read of a table
        spread, calls_spread = store_calls(lambda p=path, u=user: scale_api("GET", p, u))
        assert spread.status_code == 200, spread.body
        assert len(spread.json_body["items"]) == 10 and spread.json_body["model_version"] is None
        assert_table_geometry(svc, made.project_id, spread.json_body["items"])
        publish_predictions(svc, made)
        # A container's first ranked page reads the ranking and no superpixel table: the predict
        # job published each ranked item's geometry with it.
        data._cache.clear()
        data._small.clear()
        read: list[str] = []
        with monkeypatch.context() as m:
            for name in ("read_table", "read_row_group", "table_row_groups"):
                m.setattr(pyramids, name, recorded(getattr(pyramids, name), read))
            assert scale_api("GET", path, user).status_code == 200
        assert read and all(uri.endswith(RANKING_FILE) for uri in read), read
        ranked, calls_ranked = store_calls(lambda p=path, u=user: scale_api("GET", p, u))
        body = ranked.json_body
        assert ranked.status_code == 200 and len(body["items"]) == 10 and body["model_version"] == 1
        assert_table_geometry(svc, made.project_id, body["items"])
        # The merged ranking's order (least confident first), minus what is labeled.
        certainty = [i["certainty"] for i in body["items"]]
        assert certainty == sorted(certainty)
        labeled = {
            (sid, sp)
            for sid in made.slides
            for sp, e in svc.slide_labels_current(made.project_id, sid).entries.items()
            if e["l"]
        }
        assert not {(i["slide_id"], i["id"]) for i in body["items"]} & labeled
        calls[slides] = {"spread": calls_spread, "ranked": calls_ranked}
    # No store call per slide the page touches (a directory Query each, once): the label buckets,
    # the streams' heads and the leases are batched reads, the leases' writes one transaction.
    assert calls[5]["spread"] <= calls[1]["spread"] + 1, calls
    assert calls[5]["ranked"] <= calls[1]["ranked"] + 1, calls

    # Labeling the first item (no projector runs here): the next page leaves it out.
    first = body["items"][0]
    state = svc.project_state(made.project_id)
    cat = next(iter(state.categories))
    r = scale_api("POST", f"/projects/{made.project_id}/slides/{first['slide_id']}/labels", user,
                  {"category_id": cat, "ids": [first["id"]], "source": "guided"})  # fmt: skip
    assert r.status_code in (200, 201), r.body
    again = scale_api("GET", path, user).json_body["items"]
    assert (first["slide_id"], first["id"]) not in {(i["slide_id"], i["id"]) for i in again}


@pytest.mark.slow
def test_export_job_writes_what_the_export_route_answers(scale_api, tmp_path) -> None:
    from chalicelib.context import SERVICES
    from scale_data import generate

    from histolabel.composition import job_events_handler
    from histolabel.localcloud.job_runner import LocalJobRunner

    SERVICES.submitter = LocalJobRunner(directory=tmp_path, on_state_change=job_events_handler)
    made = generate(scale_api.svc, 1, 600, labeled=0.5, annotators=2, label_pyramids=1)
    pid = made.project_id
    started = scale_api("POST", f"/projects/{pid}/exports", made.owner, {"format": "geojson"})
    assert started.status_code == 202, started.body
    status_path = started.json_body["status_path"]
    assert scale_api("POST", f"/projects/{pid}/exports", made.annotators[0], {}).status_code == 403
    jobs_before = set(scale_api.svc.project_state(pid).jobs)
    for bad in ({"anonymize": 0}, {"anonymize": "yes"}, {"format": "xlsx"}):
        refused = scale_api("POST", f"/projects/{pid}/exports", made.owner, bad)
        assert refused.status_code == 422 and refused.json_body["field"] == next(iter(bad)), refused.body
    assert set(scale_api.svc.project_state(pid).jobs) == jobs_before  # a refused export starts nothing
    deadline = time.time() + 240
    while time.time() < deadline:
        status = scale_api("GET", status_path, made.owner).json_body
        if status["state"] in ("done", "failed"):
            break
        time.sleep(1)
    assert status["state"] == "done", status
    with urllib.request.urlopen(status["url"]) as resp:  # the presigned link, as a browser follows it
        from_job = json.loads(resp.read())
    inline = scale_api("GET", f"/projects/{pid}/export?format=geojson", made.owner)
    assert inline.status_code == 200, inline.body[:300]
    from_route = json.loads(inline.body)
    assert status["rows"] == len(from_job["features"]) == made.labels
    by_id = {f["id"]: f for f in from_route["features"]}
    assert {f["id"] for f in from_job["features"]} == set(by_id)
    for f in from_job["features"]:
        assert f["geometry"] == by_id[f["id"]]["geometry"]
        assert f["properties"]["classification"] == by_id[f["id"]]["properties"]["classification"]
    # The runner reports the job's end as for every job kind: JobEnded on the project.
    job_id = started.json_body["job_id"]
    while time.time() < deadline and not scale_api.svc.project_state(pid).jobs[job_id].get("status"):
        time.sleep(0.5)
    assert scale_api.svc.project_state(pid).jobs[job_id]["status"] == "SUCCEEDED"
    unknown = scale_api("GET", f"/projects/{pid}/exports/nope", made.owner)
    assert unknown.status_code == 404 and unknown.json_body["field"] == "job_id"
