"""A project's state in many small items: 1,000 slides and 500 training runs in one project,
every item under 100 KB, the project read back in one Query, GET /projects/{p} timed.

The events are made as the product makes them (the service's append path, sealed and chained) in
memory, then written to the local cloud's events table in bulk; the projector folds them into the
local cloud's projection table reading them from that in-memory copy (the emulator needs ~12 ms to
return each stored event, which would make this test take minutes, not its subject)."""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import pytest

from histolabel.adapters.aws import client
from histolabel.adapters.dynamo_events import to_item
from histolabel.adapters.memory import InMemoryEventStore, InMemoryProjectionStore
from histolabel.composition import service_from_env
from histolabel.events import catalogue as ev
from histolabel.events.catalogue import Actor, NewEvent
from histolabel.events.envelope import StoredEvent, project_stream
from histolabel.projections.project import ProjectState, fold_project
from histolabel.projections.projector import Projector
from histolabel.service import HistoLabel
from tests.api.conftest import POOL, Signer
from tests.integration.conftest import OWNER, make_project

SLIDES, RUNS = 1000, 500
PER_COMMAND = 90  # events in one transaction, with room for the stream guard
ITEM_LIMIT = 100_000
JOB = Actor(user="job:bulk", site="batch")


def slide_events(project_id: str, i: int) -> list[NewEvent]:
    p = project_stream(project_id)
    sid = f"slide-{i:04d}"
    uri = f"s3://histolabel-test-data/projects/{project_id}/slides/{sid}"
    return [
        NewEvent(p, ev.SlideRegistered(slide_id=sid, name=f"{sid}.svs", source_uri=f"{uri}/source/{sid}.svs"))
    ]


def run_events(project_id: str, i: int) -> list[NewEvent]:
    p = project_stream(project_id)
    rid, job_id = f"t{i:06d}", f"0f6c1f9e-{i:04d}-4c3e-9a59-5b8d3a7f{i:04d}"
    models = f"s3://histolabel-test-data/projects/{project_id}/models"
    per_class = {c: {"precision": 0.8, "recall": 0.8, "f1": 0.8} for c in ("tumor", "stroma")}
    metrics = {"macro_f1": 0.8, "accuracy": 0.85, "n_train": 400, "n_val": 100, "per_class": per_class}
    return [
        NewEvent(p, ev.TrainingRequested(request_id=rid, reason="threshold", labels_total=50 * i)),
        NewEvent(p, ev.TrainingStarted(request_id=rid, job_id=f"histolabel-train-{project_id}-{rid}")),
        NewEvent(p, ev.TrainingCompleted(request_id=rid, model_version=i + 1, metrics=metrics,
                                         model_uri=f"{models}/{i + 1}/model.safetensors",
                                         label_count=50 * i)),
        NewEvent(p, ev.JobEnded(job="train", job_id=job_id, status="SUCCEEDED", cause="succeeded",
                                reason="succeeded", exit_code=0, request_id=rid)),
    ]  # fmt: skip


def append_in_bulk(svc: HistoLabel, project_id: str, events: list[NewEvent]) -> None:
    for start in range(0, len(events), PER_COMMAND):
        chunk = events[start : start + PER_COMMAND]
        svc.append_decided(project_id, lambda _s, c=chunk: list(c), JOB, None)


def copy_to_cloud(events: list[StoredEvent], cloud: Any) -> None:
    """Bulk-write sealed events into the events table (each item as the event store writes it)."""
    ddb = client("dynamodb", cloud)
    items = [to_item(e) for e in events]
    for start in range(0, len(items), 25):
        request = {cloud.events_table: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]}
        while request:
            request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def item_sizes(svc: HistoLabel, project_id: str) -> dict[str, int]:
    """Every projection item of the project: its partition, and its entry in the project list."""
    ddb, table = svc.projections.ddb, svc.settings.projections_table  # type: ignore[attr-defined]
    items: list[dict[str, Any]] = []
    values = {":p": {"S": project_stream(project_id)}}
    kwargs: dict[str, Any] = {"TableName": table, "KeyConditionExpression": "pk = :p",
                              "ExpressionAttributeValues": values}  # fmt: skip
    while True:
        page = ddb.query(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    listed = ddb.get_item(TableName=table, Key={"pk": {"S": "PROJECTS"}, "sk": {"S": project_id}})["Item"]
    # DynamoDB's item size: attribute names plus values (UTF-8).
    size = lambda item: sum(len(k) + len(json.dumps(v)) for k, v in item.items())  # noqa: E731
    return {f"{i['pk']['S']}/{i['sk']['S']}": size(i) for i in [*items, listed]}


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


@pytest.mark.slow
def test_a_project_with_1000_slides_and_500_runs_stays_in_small_items(cloud, svc, project_id):
    memory = HistoLabel(cloud, InMemoryEventStore(), InMemoryProjectionStore())
    make_project(memory, project_id, slides=())
    events = [e for i in range(SLIDES) for e in slide_events(project_id, i)]
    events += [e for i in range(RUNS) for e in run_events(project_id, i)]
    append_in_bulk(memory, project_id, events)
    stream = list(memory.events.read(project_stream(project_id)))
    started = time.perf_counter()
    copy_to_cloud(stream, cloud)
    written = time.perf_counter() - started

    # The projector as the stream delivers the last event: it catches up on the whole stream.
    started = time.perf_counter()
    Projector(svc.projections, memory.events).handle(stream[-1])
    projected = time.perf_counter() - started
    sizes = item_sizes(svc, project_id)
    largest = max(sizes, key=sizes.__getitem__)
    print(f"\n{len(stream)} events: appended in {written:.1f} s, projected in {projected:.1f} s; "
          f"{len(sizes)} items, largest {largest} {sizes[largest]} B")  # fmt: skip
    assert len(sizes) >= SLIDES + 3 * RUNS
    assert sizes[largest] < ITEM_LIMIT

    # Read back in one Query and equal to a fold of the stream from zero.
    stored = svc.projections.load_project(project_id)
    assert stored is not None and stored.seq == stream[-1].seq
    assert stored.model_dump() == fold_project(stream, ProjectState()).model_dump()
    assert len(stored.slides) == SLIDES and len(stored.training) == RUNS and len(stored.models) == RUNS

    # One more event, appended to the cloud's events table through the service, is one small
    # save: the entry it changed and the checkpoint.
    extra = svc.append_decided(project_id, lambda _s: slide_events(project_id, SLIDES)[:1], JOB, None)
    last = next(iter(svc.events.read(project_stream(project_id), after=stream[-1].seq)))
    Projector(svc.projections, svc.events).handle(last)
    assert extra.appended == 1 and len(svc.projections.load_project(project_id).slides) == SLIDES + 1

    from app import app
    from chalice.test import Client
    from chalicelib.context import SERVICES

    signer = Signer("project-items-key")
    SERVICES.pool, SERVICES.jwks = POOL, (lambda kid: signer.jwk if kid == signer.kid else None)
    headers = {"Authorization": f"Bearer {signer.token(OWNER.user)}"}
    http = Client(app).http
    timings: dict[str, list[float]] = {"cold": [], "warm": []}
    try:
        for kind, n in (("cold", 5), ("warm", 10)):
            SERVICES.service = service_from_env(cloud)
            if kind == "warm":  # the container's first call read the projection; then its cache
                assert http.request("GET", f"/projects/{project_id}", headers=headers).status_code == 200
            for _ in range(n):
                if kind == "cold":  # a fresh container: no cached state, the projection read first
                    SERVICES.service = service_from_env(cloud)
                t0 = time.perf_counter()
                answer = http.request("GET", f"/projects/{project_id}", headers=headers)
                timings[kind].append(time.perf_counter() - t0)
                assert answer.status_code == 200, answer.body
                assert len(json.loads(answer.body)["slides"]) == SLIDES + 1
    finally:
        SERVICES.service = SERVICES.pool = SERVICES.jwks = None
    for kind, samples in timings.items():
        p50, high = statistics.median(samples) * 1000, p95(samples) * 1000
        print(f"GET /projects/{{p}} {kind} (n={len(samples)}): p50 {p50:.0f} ms, p95 {high:.0f} ms")
    # The emulator's Query time dominates the cold read and swings with the machine's load, so
    # the bound is the one a deployment has: API Gateway's 29 s.
    assert p95(timings["cold"]) < 29 and p95(timings["warm"]) < 29
