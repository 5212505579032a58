"""Event store benchmark against the local cloud.

Prints appended commands/s with 1 and 16 writers next to raw put_item with as many writers,
projection lag (append -> visible in the projection) next to a raw put -> get round trip, and
the rebuild time of a project of 100k events next to reading those items raw. Every ratio is
against a baseline measured in the same run on the same server.

    python bench/event_store.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from histolabel.adapters.aws import client
from histolabel.adapters.dynamo_events import DynamoEventStore, to_item
from histolabel.adapters.provision import provision
from histolabel.auditing import rebuild
from histolabel.commands import AddCategory, CreateProject, LabelSuperpixels, RegisterSlide
from histolabel.config import Settings, get_settings, settings_from_env
from histolabel.events.catalogue import Actor
from histolabel.eventstore import InMemoryEventStore
from histolabel.localcloud.poller import StreamPoller
from histolabel.localcloud.stack import local_environment, start_server
from histolabel.projections.store import InMemoryProjectionStore
from histolabel.runtime.projector import ProjectorRuntime
from histolabel.service import HistoLabel

OWNER = Actor(user="olivia", site="nyc")


def setup_project(svc: HistoLabel, project: str, slides: int, count: int = 100_000) -> None:
    svc.execute(CreateProject(project_id=project, name=project), OWNER)
    svc.execute(AddCategory(project_id=project, name="tumor"), OWNER)
    for s in range(slides):
        svc.execute(
            RegisterSlide(project_id=project, slide_id=f"s{s}", name="s", source_uri="s3://b-x/s"), OWNER
        )
        svc.record_job_event(project, "SegmentationCompleted",
                             {"slide_id": f"s{s}", "count": count, "labels_uri": "s3://b/l", "table_uri": "s3://b/t",
                              "superpixel_size": 64, "compactness": 10}, job="segment")  # fmt: skip


def parallel(writers: int, per_writer: int, work) -> float:  # type: ignore[no-untyped-def]
    threads = [
        threading.Thread(target=lambda n=n: [work(n, i) for i in range(per_writer)]) for n in range(writers)
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return writers * per_writer / (time.perf_counter() - t0)


def bench_appends(settings: Settings, writers: int, per_writer: int) -> tuple[float, float]:
    ddb = client("dynamodb", settings)
    payload = "x" * 300

    def raw(n: int, i: int) -> None:
        ddb.put_item(TableName=settings.events_table,
                     Item={"stream": {"S": f"raw{writers}#{n % 8}"}, "seq": {"N": str(n * 1_000_000 + i)},
                           "data": {"S": payload}})  # fmt: skip

    raw_rate = parallel(writers, per_writer, raw)
    project = f"bench{writers}"
    setup_project(HistoLabel.from_env(settings), project, slides=8)
    services = [HistoLabel.from_env(settings) for _ in range(writers)]

    def append(n: int, i: int) -> None:
        cmd = LabelSuperpixels(
            project_id=project, slide_id=f"s{(n + i) % 8}", ids=[i + 1], category_id="tumor"
        )
        services[n].execute(cmd, OWNER, idempotency_key=f"{n}-{i}")

    return parallel(writers, per_writer, append), raw_rate


def bench_lag(settings: Settings, samples: int) -> tuple[list[float], list[float]]:
    svc = HistoLabel.from_env(settings)
    setup_project(svc, "lag", slides=1)
    runtime = ProjectorRuntime(HistoLabel.from_env(settings))
    poller = StreamPoller(settings, runtime.handle, start_at="LATEST", idle_sleep=0.005).start()
    lags = []
    for i in range(samples):
        t0 = time.perf_counter()
        result = svc.execute(
            LabelSuperpixels(project_id="lag", slide_id="s0", ids=[i + 1], category_id="tumor"), OWNER
        )
        seq = result.events[0]["seq"]
        while svc.projections.load_slide("lag", "s0", buckets=set()).seq < seq:
            time.sleep(0.002)
        lags.append(time.perf_counter() - t0)
    poller.stop()
    ddb = client("dynamodb", settings)
    raw = []
    for i in range(samples):
        key = {"stream": {"S": "rawlag"}, "seq": {"N": str(i)}}
        t0 = time.perf_counter()
        ddb.put_item(TableName=settings.events_table, Item={**key, "data": {"S": "x"}})
        ddb.get_item(TableName=settings.events_table, Key=key, ConsistentRead=True)
        raw.append(time.perf_counter() - t0)
    return lags, raw


def bench_rebuild(settings: Settings, events: int) -> tuple[float, float, float]:
    """Make `events` label events in memory (the same commands a client sends), store them raw,
    then time the rebuild against reading the items raw."""
    mem = HistoLabel(settings, InMemoryEventStore(), InMemoryProjectionStore())
    slides = 4
    setup_project(mem, "rebuild", slides=slides)
    for i in range(events - 2 - 2 * slides - 1):
        sp = 1 + (i * 7919) % 99_991
        cmd = LabelSuperpixels(project_id="rebuild", slide_id=f"s{i % slides}", ids=[sp], category_id="tumor")
        mem.execute(cmd, OWNER)
    stored = [e for stream in mem.events.streams.values() for e in stream.values()]  # type: ignore[attr-defined]
    ddb = client("dynamodb", settings)
    for start in range(0, len(stored), 25):
        request = {
            settings.events_table: [{"PutRequest": {"Item": to_item(e)}} for e in stored[start : start + 25]]
        }
        while request:
            request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
    store = DynamoEventStore(settings)
    t0 = time.perf_counter()
    n = sum(1 for s in ["P#rebuild"] + [f"L#rebuild#s{i}" for i in range(slides)] for _ in store.read(s))
    raw_read = time.perf_counter() - t0
    assert n == len(stored)
    svc = HistoLabel.from_env(settings)
    t0 = time.perf_counter()
    folded, _ = rebuild(svc, "rebuild", write=True)
    rebuild_s = time.perf_counter() - t0
    assert folded == len(stored)
    t0 = time.perf_counter()
    _, differences = rebuild(svc, "rebuild", write=False)
    check_s = time.perf_counter() - t0
    assert differences == [], differences
    return rebuild_s, raw_read, check_s


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100)[int(p) - 1] if len(values) > 1 else values[0]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a run under a minute")
    args = parser.parse_args()
    per_writer_1, per_writer_16, lag_samples, rebuild_events = (
        (100, 10, 30, 5_000) if args.quick else (1000, 100, 200, 100_000)
    )
    server = start_server()
    try:
        os.environ.update(local_environment(server.endpoint, Settings(stage="bench")))
        get_settings.cache_clear()
        settings = settings_from_env()
        provision(settings)
        one, raw_one = bench_appends(settings, 1, per_writer_1)
        print(f"1 writer: {one:.0f} commands/s, raw put_item {raw_one:.0f}/s", flush=True)
        sixteen, raw_sixteen = bench_appends(settings, 16, per_writer_16)
        print(f"16 writers: {sixteen:.0f} commands/s, raw put_item {raw_sixteen:.0f}/s", flush=True)
        lags, raw = bench_lag(settings, lag_samples)
        print(f"projection lag p50 {pct(lags, 50) * 1000:.1f} ms p95 {pct(lags, 95) * 1000:.1f} ms; "
              f"raw put+get p50 {pct(raw, 50) * 1000:.1f} ms", flush=True)  # fmt: skip
        rebuild_s, raw_read, check_s = bench_rebuild(settings, rebuild_events)
        print(f"rebuild of {rebuild_events} events: {rebuild_s:.1f} s (check only {check_s:.1f} s); "
              f"raw read of the same items {raw_read:.1f} s", flush=True)  # fmt: skip
    finally:
        server.stop()
    print(f"append_rate_1_writer: {one:.1f}")
    print(f"append_vs_raw_put_1_writer: {one / raw_one:.2f}")
    print(f"append_rate_16_writers: {sixteen:.1f}")
    print(f"append_vs_raw_put_16_writers: {sixteen / raw_sixteen:.2f}")
    print(f"projection_lag_p50_ms: {pct(lags, 50) * 1000:.1f}")
    print(f"projection_lag_p95_ms: {pct(lags, 95) * 1000:.1f}")
    print(f"projection_lag_p50_vs_raw_put_get: {pct(lags, 50) / pct(raw, 50):.2f}")
    print(f"rebuild_events: {rebuild_events}")
    print(f"rebuild_seconds: {rebuild_s:.2f}")
    print(f"rebuild_vs_raw_read: {rebuild_s / raw_read:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
