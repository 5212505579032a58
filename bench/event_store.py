"""Event store benchmark against the local cloud.

Prints appended commands/s with 1 and 16 writers next to raw put_item with as many writers,
100 annotators labeling one slide at once (throughput and p95 next to raw put_item with 100
writers, refused conditional writes per acknowledged command), both as fast as the answers come
(saturation: 100 requests always in flight) and at an annotator's pace (one command a second
each, the annotators joining over ten seconds; p95 next to raw put_item at the same pace),
projection lag (append ->
visible in the projection) next to a raw put -> get round trip, the projector's events/s over
a backlog on the stream (in its handler, and end to end with the local stream poller) and
what a restarted poller delivers again, and the rebuild time of a
project of 100k events next to reading those items raw. Every ratio is against a baseline
measured in the same run on the same server.

First, without the server: what a hot slide (100 annotators at a label a second, the declared
peak of infra/write_rates.py) costs DynamoDB, from the items the product itself builds (event
with its MAC, idempotency record, directory item, the project guard; the projector's summary
and buckets, and the batches the stream mapping makes): WCUs per append, WCU/s per partition
key, and the hottest key's share of a partition's 1,000 WCU/s. Member label streams are each
their own partition key, so the hottest is the slide's label projection `L#{project}#{slide}`.

    python bench/event_store.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from histolabel.composition import service_from_env

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from histolabel.adapters.aws import client
from histolabel.adapters.dynamo_events import DynamoEventStore, idempotency_item, items_of, to_item
from histolabel.adapters.dynamo_projections import _bucket_key, summary_item
from histolabel.adapters.memory import InMemoryEventStore, InMemoryProjectionStore
from histolabel.adapters.provision import provision
from histolabel.adapters.seals import MacKey, mac_with
from histolabel.audit.rebuild import rebuild
from histolabel.commands import (
    AddCategory,
    AddMember,
    CommandRejected,
    CreateProject,
    LabelSuperpixels,
    RegisterSlide,
)
from histolabel.config import Settings, get_settings, settings_from_env
from histolabel.events.catalogue import Actor
from histolabel.events.envelope import idempotency_stream, label_stream, member_of, project_stream
from histolabel.events.streams import slide_events, slide_streams
from histolabel.localcloud.poller import StreamPoller
from histolabel.localcloud.stack import local_environment, start_server
from histolabel.projections.labels import BUCKET_SIZE
from histolabel.projections.projector import Projector
from histolabel.projections.store import all_buckets, encode_bucket
from histolabel.runtime.projector_lambda import ProjectorRuntime
from histolabel.service import MAX_ATTEMPTS, HistoLabel
from infra.functions import lambdas
from infra.write_rates import PEAK

OWNER = Actor(user="olivia", site="nyc")
# A fast annotator's pace in guided mode: a hotkey a second (a brush stroke is one command too).
HUMAN_PACE_S = 1.0
# Over how long the paced annotators sit down to work: a member's first label on a slide, and a
# process's first append (its MAC data key), cost three more round trips, and 100 of them in the
# same second queue up behind each other (p50 1.2 s for those first labels; 11 ms after).
JOIN_S = {"full": 10.0, "quick": 2.0}


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


def run_writers(writers: int, per_writer: int, writer) -> float:  # type: ignore[no-untyped-def]
    """`writer(n)` in a thread per writer, all at once; returns commands per second."""
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return writers * per_writer / (time.perf_counter() - t0)


def parallel(writers: int, per_writer: int, work) -> float:  # type: ignore[no-untyped-def]
    return run_writers(writers, per_writer, lambda n: [work(n, i) for i in range(per_writer)])


def paced(writers: int, per_writer: int, work, interval: float, join: float) -> float:  # type: ignore[no-untyped-def]
    """Like `parallel`, but each writer starts its next command `interval` seconds after the last
    one started (an annotator's pace), the writers joining at random over the first `join`
    seconds; returns the achieved rate."""

    def writer(n: int) -> None:
        rng = random.Random(n)
        time.sleep(rng.uniform(0, join))
        for i in range(per_writer):
            t0 = time.perf_counter()
            work(n, i)
            time.sleep(max(0.0, interval - (time.perf_counter() - t0)))

    return run_writers(writers, per_writer, writer)


def bench_appends(settings: Settings, writers: int, per_writer: int) -> tuple[float, float]:
    ddb = client("dynamodb", settings)
    payload = "x" * 300

    def raw(n: int, i: int) -> None:
        ddb.put_item(TableName=settings.events_table,
                     Item={"stream": {"S": f"raw{writers}#{n % 8}"}, "seq": {"N": str(n * 1_000_000 + i)},
                           "data": {"S": payload}})  # fmt: skip

    raw_rate = parallel(writers, per_writer, raw)
    project = f"bench{writers}"
    setup_project(service_from_env(settings), project, slides=8)
    services = [service_from_env(settings) for _ in range(writers)]

    def append(n: int, i: int) -> None:
        cmd = LabelSuperpixels(
            project_id=project, slide_id=f"s{(n + i) % 8}", ids=[i + 1], category_id="tumor"
        )
        services[n].execute(cmd, OWNER, idempotency_key=f"{n}-{i}")

    return parallel(writers, per_writer, append), raw_rate


def bench_hot_slide(
    settings: Settings, annotators: int, per_annotator: int, pace: float | None = None, join: float = 0.0
) -> dict[str, float]:
    """`annotators` members label distinct superpixels of one slide at the same time: each as
    fast as the answers come (saturation), or with `pace` one command every `pace` seconds."""
    ddb = client("dynamodb", settings)
    payload = "x" * 300

    raw_latencies: list[float] = []

    def raw(n: int, i: int) -> None:
        item = {"stream": {"S": f"rawhot#{n}"}, "seq": {"N": str(i)}, "data": {"S": payload}}
        t0 = time.perf_counter()
        ddb.put_item(TableName=settings.events_table, Item=item)
        raw_latencies.append(time.perf_counter() - t0)

    run = parallel if pace is None else (lambda w, k, work: paced(w, k, work, pace, join))
    raw_rate = run(annotators, per_annotator, raw)
    project = "hot" if pace is None else "hot-paced"
    owner_svc = service_from_env(settings)
    setup_project(owner_svc, project, slides=1)
    users = [Actor(user=f"annotator{n:03d}", site=f"site{n % 4}") for n in range(annotators)]
    for actor in users:
        owner_svc.execute(
            AddMember(project_id=project, user=actor.user, role="annotator", site=actor.site), OWNER
        )
    services = [service_from_env(settings) for _ in range(annotators)]
    for svc in services:
        svc.project_state(project)  # each client has read the project, as a signed-in browser has
    latencies: list[float] = []
    refused, gave_up = [0], [0]
    lock = threading.Lock()

    def label(n: int, i: int) -> None:
        cmd = LabelSuperpixels(
            project_id=project, slide_id="s0", ids=[1 + n * per_annotator + i], category_id="tumor"
        )
        t0 = time.perf_counter()
        try:
            result = services[n].execute(cmd, users[n], idempotency_key=f"hot-{n}-{i}")
        except CommandRejected:  # 503 contention: the client gave up after MAX_ATTEMPTS
            with lock:
                gave_up[0] += 1
                refused[0] += MAX_ATTEMPTS
            return
        elapsed = time.perf_counter() - t0
        with lock:
            latencies.append(elapsed)
            refused[0] += result.attempts - 1

    rate = run(annotators, per_annotator, label)
    acked = annotators * per_annotator - gave_up[0]
    latencies = latencies or [float("nan")]
    return {
        "gave_up": gave_up[0],
        "rate": rate,
        "raw_rate": raw_rate,
        "p50_ms": pct(latencies, 50) * 1000,
        "p95_ms": pct(latencies, 95) * 1000,
        "raw_p95_ms": pct(raw_latencies, 95) * 1000,
        "refused_per_ack": refused[0] / max(acked, 1),
    }


def bench_projector(settings: Settings, events: int, positions: Path) -> tuple[float, float, int]:
    """A backlog of `events` label events (4 slides, 100 annotators) on the stream, applied by
    the projector runtime through the poller; then a restarted poller given one more event.
    Returns (events/s in the projector handler, events/s end to end with the local poller's
    GetRecords calls, records the restarted poller delivered)."""
    mem = HistoLabel(settings, InMemoryEventStore(), InMemoryProjectionStore())
    project, slides = "projector", 4
    setup_project(mem, project, slides=slides)
    for n in range(100):
        mem.execute(
            AddMember(project_id=project, user=f"annotator{n:03d}", role="annotator", site="nyc"), OWNER
        )
    for i in range(events):
        sp = 1 + (i * 7919) % 99_991
        cmd = LabelSuperpixels(project_id=project, slide_id=f"s{i % slides}", ids=[sp], category_id="tumor")
        mem.execute(cmd, Actor(user=f"annotator{i % 100:03d}", site="nyc"))
    stored = sorted(
        (e for stream in mem.events.streams.values() for e in stream.values()),  # type: ignore[attr-defined]
        key=lambda e: (e.stream[0] != "P", e.seq),
    )
    svc = service_from_env(settings)
    runtime = ProjectorRuntime(svc)
    in_handler = [0.0]

    def handle(event: dict, context: object) -> dict:  # type: ignore[type-arg]
        t0 = time.perf_counter()
        try:
            return runtime.handle(event, context)
        finally:
            in_handler[0] += time.perf_counter() - t0

    poller = StreamPoller(
        settings, handle, start_at="LATEST", idle_sleep=0.005, positions=positions, batch_size=1000
    )
    poller.poll_once()  # takes its position before the backlog is written
    ddb = client("dynamodb", settings)
    store_raw(ddb, settings, stored)
    t0 = time.perf_counter()
    poller.drain(timeout=600, quiet=0.5)
    elapsed = time.perf_counter() - t0 - 0.5  # less the quiet period that ends the drain
    expected = len(slide_events(mem.events, project, "s0"))
    assert svc.projections.load_slide(project, "s0", buckets=set()).seq == expected
    rate = len(stored) / elapsed
    handler_rate = len(stored) / in_handler[0]
    # A restart: the new poller starts after the saved position, not at the stream's start.
    restarted = StreamPoller(settings, runtime.handle, start_at="TRIM_HORIZON", positions=positions)
    # One more label by a member who has labeled s0 already (a first label would also list
    # her stream in the slide's directory: a second record).
    more = LabelSuperpixels(project_id=project, slide_id="s0", ids=[99_999], category_id="tumor")
    svc.execute(more, Actor(user="annotator000", site="nyc"))
    restarted.drain(timeout=60, quiet=0.3)
    return handler_rate, rate, restarted.delivered


def bench_lag(settings: Settings, samples: int) -> tuple[list[float], list[float]]:
    svc = service_from_env(settings)
    setup_project(svc, "lag", slides=1)
    runtime = ProjectorRuntime(service_from_env(settings))
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
    store_raw(ddb, settings, stored)
    store = DynamoEventStore(settings)
    t0 = time.perf_counter()
    streams = ["P#rebuild"] + [s for i in range(slides) for s in slide_streams(store, "rebuild", f"s{i}")]
    n = sum(1 for s in streams for _ in store.read(s))
    raw_read = time.perf_counter() - t0
    assert n == len(stored)
    svc = service_from_env(settings)
    t0 = time.perf_counter()
    folded, _ = rebuild(svc, "rebuild", write=True)
    rebuild_s = time.perf_counter() - t0
    assert folded == len(stored)
    t0 = time.perf_counter()
    _, differences = rebuild(svc, "rebuild", write=False)
    check_s = time.perf_counter() - t0
    assert differences == [], differences
    return rebuild_s, raw_read, check_s


def store_raw(ddb, settings: Settings, stored: list) -> None:  # type: ignore[no-untyped-def]
    """Events made in memory written to the table as they are, with their directory entries."""
    items = [i for e in stored for i in items_of(e)]
    for start in range(0, len(items), 25):
        request = {settings.events_table: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]}
        while request:
            request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


# DynamoDB's per-partition throughput (a partition key's items, a single item at most).
PARTITION_WCU_PER_S, PARTITION_RCU_PER_S = 1000, 3000


def item_bytes(item: dict) -> int:  # type: ignore[type-arg]
    """DynamoDB's size of an item: every attribute's name and value (strings and binaries by
    their bytes, numbers about a byte per two significant digits plus one)."""
    size = 0
    for name, value in item.items():
        ((kind, v),) = value.items()
        if kind == "N":
            digits = len(v.lstrip("-").replace(".", "").strip("0")) or 1
            size += len(name.encode()) + (digits + 1) // 2 + 1
        else:
            size += len(name.encode()) + len(v.encode() if kind == "S" else v)
    return size


def write_units(item: dict, transactional: bool = True) -> int:  # type: ignore[type-arg]
    """WCUs of writing `item`: one per started KB, twice that in a transaction."""
    units = max(1, math.ceil(item_bytes(item) / 1024))
    return 2 * units if transactional else units


def read_units(item: dict) -> int:  # type: ignore[type-arg]
    """RCUs of a strongly consistent read: one per started 4 KB."""
    return max(1, math.ceil(item_bytes(item) / 4096))


def hot_slide_capacity(annotators: int, labels_each: int) -> dict[str, float | str]:
    """What a hot slide costs DynamoDB per second, from the items the product writes: each of
    `annotators` members labels `labels_each` random superpixels of one slide (in memory, through
    the same commands a browser sends, with an idempotency key), then the projector folds them.
    Rates are the declared peak (infra/write_rates.py): every annotator at a label a second."""
    mem = HistoLabel(Settings(stage="bench"), InMemoryEventStore(), InMemoryProjectionStore())
    project, slide, superpixels = "capacity", "s0", 100_000
    setup_project(mem, project, slides=1, count=superpixels)
    users = [Actor(user=f"annotator{n:03d}", site=f"site{n % 4}") for n in range(annotators)]
    for actor in users:
        mem.execute(AddMember(project_id=project, user=actor.user, role="annotator", site=actor.site), OWNER)
    rng = random.Random(7)
    picked = rng.sample(range(1, superpixels), annotators * labels_each)
    for i, sp in enumerate(picked):
        cmd = LabelSuperpixels(project_id=project, slide_id=slide, ids=[sp], category_id="tumor")
        mem.execute(cmd, users[i % annotators], idempotency_key=f"cap-{i}")
    key = MacKey(uuid.uuid4().hex, "2026-12-01T00:00:00.000000Z", b"", os.urandom(32))
    events = [e for stream, ev in mem.events.streams.items() if member_of(stream) for e in ev.values()]  # type: ignore[attr-defined]

    def command_units(event) -> tuple[int, int]:  # type: ignore[no-untyped-def]
        """(WCUs of the command's transaction, WCUs of its event item) as DynamoEventStore.append
        writes them: the event with its MAC, its idempotency record, the directory item on the
        member's first label, and the ConditionCheck on the project stream's next seq (the guard,
        billed as a transactional write of a key)."""
        item = {**to_item(event), "mac": {"S": mac_with(key, event.hash)}}
        idem_stream = idempotency_stream(project, event.idem)
        idem = idempotency_item(idem_stream, mem.events.idem[idem_stream])  # type: ignore[attr-defined]
        guard = guard_key(project)
        listed = items_of(event)[1:]
        units = sum(write_units(i) for i in [item, idem, guard, *listed])
        return units, write_units(item)

    steady = [command_units(e) for e in events if e.seq > 1]
    first = [command_units(e) for e in events if e.seq == 1]
    event_bytes = statistics.mean(item_bytes(to_item(e)) + len(f"mac{mac_with(key, e.hash)}") for e in events)
    append_wcu = statistics.mean(u for u, _ in steady)
    first_wcu = statistics.mean(u for u, _ in first)
    event_wcu = statistics.mean(u for _, u in steady)

    # The projection: the projector's fold, then a bucket filled as a brush over a region does.
    projector = Projector(mem.projections, mem.events)
    projector.handle_all(mem.events.read(project_stream(project)))
    projector.handle_all(slide_events(mem.events, project, slide))
    for i in range(BUCKET_SIZE):
        sp = BUCKET_SIZE * 3 + i
        cmd = LabelSuperpixels(project_id=project, slide_id=slide, ids=[sp], category_id="tumor")
        mem.execute(cmd, users[i % annotators])
    projector.handle_all(slide_events(mem.events, project, slide))
    state = mem.projections.load_slide(project, slide)
    pk = {"pk": {"S": label_stream(project, slide)}}
    summary = summary_item(state)
    buckets = {b: {**pk, "sk": {"S": _bucket_key(b)}, "body": {"S": encode_bucket(state, b)}}
               for b in all_buckets(state)}  # fmt: skip
    full = buckets.pop(3)
    bucket_wcu = statistics.mean(write_units(i) for i in buckets.values())
    bucket_bytes = statistics.mean(item_bytes(i) for i in buckets.values())

    # How often the projector saves the slide: once per stream batch holding its records (one
    # shard, the mapping's batch size and window), each save the summary and one bucket a label.
    mapping = lambdas(Settings(stage="bench"), 7)["ProjectorStream"]["Properties"]
    labels_per_s = annotators * PEAK.labels_per_s
    records_per_s = labels_per_s * PEAK.records_per_label
    saves_per_s = max(records_per_s / mapping["BatchSize"], 1 / mapping["MaximumBatchingWindowInSeconds"])
    projection_wcu = saves_per_s * write_units(summary) + labels_per_s * bucket_wcu
    worst_wcu = labels_per_s * (write_units(summary) + bucket_wcu)  # a save per label: many shards
    full_wcu = saves_per_s * write_units(summary) + labels_per_s * write_units(full)
    projection_rcu = saves_per_s * read_units(summary) + labels_per_s * statistics.mean(
        read_units(i) for i in buckets.values()
    )
    return {
        "annotators": annotators,
        "labels": len(events),
        "event_bytes": event_bytes,
        "append_wcu": append_wcu,
        "first_wcu": first_wcu,
        "event_wcu": event_wcu,
        "events_wcu_per_s": labels_per_s * append_wcu,
        "member_stream_wcu_per_s": PEAK.labels_per_s * event_wcu,
        "guard_wcu_per_s": labels_per_s * write_units(guard_key(project)),
        "summary_bytes": item_bytes(summary),
        "bucket_bytes": bucket_bytes,
        "full_bucket_bytes": item_bytes(full),
        "saves_per_s": saves_per_s,
        "projection_wcu_per_s": projection_wcu,
        "projection_rcu_per_s": projection_rcu,
        "worst_wcu_per_s": worst_wcu,
        "full_wcu_per_s": full_wcu,
    }


def guard_key(project: str) -> dict:  # type: ignore[type-arg]
    return {"stream": {"S": project_stream(project)}, "seq": {"N": "1000"}}


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100)[int(p) - 1] if len(values) > 1 else values[0]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a run under a minute")
    args = parser.parse_args()
    per_writer_1, per_writer_16, lag_samples, rebuild_events = (
        (20, 2, 10, 500) if args.quick else (1000, 100, 200, 100_000)
    )
    per_annotator, projector_events = (3, 1_000) if args.quick else (10, 20_000)
    paced_per_annotator = 4 if args.quick else 30  # at one a second, all 100 at work for a while
    cap = hot_slide_capacity(100, 3 if args.quick else 20)
    print(f"capacity of a hot slide ({cap['annotators']} annotators, a label a second each, "
          f"sizes from {cap['labels']} labels): a label append {cap['append_wcu']:.1f} WCU "
          f"({cap['first_wcu']:.1f} on a member's first label, with its directory item), "
          f"{cap['events_wcu_per_s']:.0f} WCU/s on the events table spread over "
          f"{cap['annotators']} member streams ({cap['member_stream_wcu_per_s']:.0f} WCU/s each) and "
          f"the project stream's guard ({cap['guard_wcu_per_s']:.0f} WCU/s on P#); the projection "
          f"L#project#slide: {cap['saves_per_s']:.0f} saves/s of a {cap['summary_bytes']:.0f} B summary "
          f"and a {cap['bucket_bytes']:.0f} B bucket a label = {cap['projection_wcu_per_s']:.0f} WCU/s "
          f"(a save per label: {cap['worst_wcu_per_s']:.0f}; full {cap['full_bucket_bytes']:.0f} B buckets: "
          f"{cap['full_wcu_per_s']:.0f}) of {PARTITION_WCU_PER_S} WCU/s a partition", flush=True)  # fmt: skip
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
        hot = bench_hot_slide(settings, 100, per_annotator)
        join = JOIN_S["quick" if args.quick else "full"]
        calm = bench_hot_slide(settings, 100, paced_per_annotator, pace=HUMAN_PACE_S, join=join)
        print(f"100 annotators on one slide, one command each per {HUMAN_PACE_S:g} s, "
              f"joining over {join:g} s: "
              f"{calm['rate']:.0f} commands/s, p95 {calm['p95_ms']:.0f} ms "
              f"(raw put_item at that pace p95 {calm['raw_p95_ms']:.0f} ms), "
              f"{calm['refused_per_ack']:.2f} refused writes per acknowledged one", flush=True)  # fmt: skip
        print(f"100 annotators on one slide: {hot['rate']:.0f} commands/s "
              f"(raw put_item {hot['raw_rate']:.0f}/s), "
              f"p50 {hot['p50_ms']:.0f} ms p95 {hot['p95_ms']:.0f} ms "
              f"(raw put_item p95 {hot['raw_p95_ms']:.0f} ms), "
              f"{hot['refused_per_ack']:.2f} refused writes per acknowledged one", flush=True)  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            projector_rate, end_to_end, replayed = bench_projector(
                settings, projector_events, Path(tmp) / "positions.json"
            )
        print(f"projector: {projector_rate:.0f} events/s in its handler over a backlog of {projector_events} "
              f"({end_to_end:.0f}/s with the local poller's GetRecords); "
              f"a restarted poller delivered {replayed} record(s) for 1 new event", flush=True)  # fmt: skip
        lags, raw = bench_lag(settings, lag_samples)
        print(f"projection lag p50 {pct(lags, 50) * 1000:.1f} ms p95 {pct(lags, 95) * 1000:.1f} ms; "
              f"raw put+get p50 {pct(raw, 50) * 1000:.1f} ms", flush=True)  # fmt: skip
        rebuild_s, raw_read, check_s = bench_rebuild(settings, rebuild_events)
        print(f"rebuild of {rebuild_events} events: {rebuild_s:.1f} s (check only {check_s:.1f} s); "
              f"raw read of the same items {raw_read:.1f} s", flush=True)  # fmt: skip
    finally:
        server.stop()
    hottest = max(
        [("L#project#slide", cap["projection_wcu_per_s"]), ("P#project", cap["guard_wcu_per_s"]),
         ("L#project#slide#member", cap["member_stream_wcu_per_s"])], key=lambda kv: kv[1],
    )  # fmt: skip
    print(f"hot_slide_label_event_item_bytes: {cap['event_bytes']:.0f}")
    print(f"hot_slide_label_append_wcu: {cap['append_wcu']:.1f}")
    print(f"hot_slide_label_append_wcu_first: {cap['first_wcu']:.1f}")
    print(f"hot_slide_wcu_per_s: {cap['events_wcu_per_s']:.0f}")
    print(f"hot_slide_member_stream_wcu_per_s: {cap['member_stream_wcu_per_s']:.0f}")
    print(f"hot_slide_project_guard_wcu_per_s: {cap['guard_wcu_per_s']:.0f}")
    print(f"hot_slide_projection_summary_bytes: {cap['summary_bytes']:.0f}")
    print(f"hot_slide_projection_bucket_bytes: {cap['bucket_bytes']:.0f}")
    print(f"hot_slide_projection_saves_per_s: {cap['saves_per_s']:.1f}")
    print(f"hot_slide_projection_wcu_per_s: {cap['projection_wcu_per_s']:.0f}")
    print(f"hot_slide_projection_rcu_per_s: {cap['projection_rcu_per_s']:.0f}")
    print(f"hot_slide_projection_wcu_per_s_save_per_label: {cap['worst_wcu_per_s']:.0f}")
    print(f"hot_slide_projection_wcu_per_s_full_buckets: {cap['full_wcu_per_s']:.0f}")
    print(f"hot_slide_hottest_partition: {hottest[0]}")
    print(f"hot_slide_partition_share: {hottest[1] / PARTITION_WCU_PER_S:.2f}")
    print(f"hot_slide_partition_read_share: {cap['projection_rcu_per_s'] / PARTITION_RCU_PER_S:.2f}")
    print(f"hot_slide_partition_share_save_per_label: {cap['worst_wcu_per_s'] / PARTITION_WCU_PER_S:.2f}")
    print(f"hot_slide_partition_share_full_buckets: {cap['full_wcu_per_s'] / PARTITION_WCU_PER_S:.2f}")
    print(f"append_rate_1_writer: {one:.1f}")
    print(f"append_vs_raw_put_1_writer: {one / raw_one:.2f}")
    print(f"append_rate_16_writers: {sixteen:.1f}")
    print(f"append_vs_raw_put_16_writers: {sixteen / raw_sixteen:.2f}")
    print("hot_slide_annotators: 100")
    print(f"hot_slide_rate: {hot['rate']:.1f}")
    print(f"hot_slide_vs_raw_put: {hot['rate'] / hot['raw_rate']:.2f}")
    print(f"hot_slide_p95_ms: {hot['p95_ms']:.1f}")
    print(f"hot_slide_raw_put_p95_ms: {hot['raw_p95_ms']:.1f}")
    print(f"hot_slide_p95_vs_raw_put_p95: {hot['p95_ms'] / hot['raw_p95_ms']:.2f}")
    print(f"hot_slide_refused_per_ack: {hot['refused_per_ack']:.2f}")
    print(f"hot_slide_gave_up: {hot['gave_up']}")
    print(f"hot_slide_paced_rate: {calm['rate']:.1f}")
    print(f"hot_slide_paced_p95_ms: {calm['p95_ms']:.1f}")
    print(f"hot_slide_paced_raw_put_p95_ms: {calm['raw_p95_ms']:.1f}")
    print(f"hot_slide_paced_refused_per_ack: {calm['refused_per_ack']:.2f}")
    print(f"projector_events_per_s: {projector_rate:.1f}")
    print(f"projector_end_to_end_events_per_s: {end_to_end:.1f}")
    print(f"projector_restart_redelivered: {replayed}")
    print(f"projection_lag_p50_ms: {pct(lags, 50) * 1000:.1f}")
    print(f"projection_lag_p95_ms: {pct(lags, 95) * 1000:.1f}")
    print(f"projection_lag_p50_vs_raw_put_get: {pct(lags, 50) / pct(raw, 50):.2f}")
    print(f"rebuild_events: {rebuild_events}")
    print(f"rebuild_seconds: {rebuild_s:.2f}")
    print(f"rebuild_vs_raw_read: {rebuild_s / raw_read:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
