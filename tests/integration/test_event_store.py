"""The event store and projector against the local cloud."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest

from histolabel.adapters.dynamo_events import DynamoEventStore
from histolabel.commands import AddMember, LabelSuperpixels
from histolabel.composition import service_from_env
from histolabel.events.catalogue import Actor
from histolabel.events.envelope import member_label_stream, verify_chain
from histolabel.events.streams import slide_events
from histolabel.projections.labels import fold_labels
from tests.integration.conftest import ANNOTATOR, OWNER, make_project


def test_labels_flow_through_stream_into_projection(svc, poller, project_id):
    make_project(svc, project_id)
    svc.execute(
        LabelSuperpixels(project_id=project_id, slide_id="s1", ids=[1, 2, 3], category_id="tumor"), ANNOTATOR
    )
    svc.execute(
        LabelSuperpixels(project_id=project_id, slide_id="s1", ids=[3, 4], category_id="stroma"), ANNOTATOR
    )
    poller.drain()
    labels = svc.slide_labels(project_id, "s1")
    assert labels.current() == {1: "tumor", 2: "tumor", 3: "stroma", 4: "stroma"}
    assert labels.counts == {"tumor": 2, "stroma": 2}
    assert svc.labels_total(project_id) == 5
    assert svc.projections.load_project(project_id).categories.keys() == {"tumor", "stroma"}


def test_idempotent_retry_stores_nothing_new(svc, project_id):
    make_project(svc, project_id)
    cmd = LabelSuperpixels(project_id=project_id, slide_id="s1", ids=[7], category_id="tumor")
    first = svc.execute(cmd, ANNOTATOR, idempotency_key="click-7")
    second = svc.execute(cmd, ANNOTATOR, idempotency_key="click-7")
    assert second.duplicate and second.events == first.events
    assert [e.seq for e in slide_events(svc.events, project_id, "s1")] == [1]


@pytest.mark.slow
def test_concurrent_writers_store_every_command_exactly_once(cloud, project_id):
    """6 writers x 25 commands, all as one member (her tabs and scripts) on two slides, so all of
    them race for two streams' seqs: every accepted command stored once, seqs gap-free, races
    retried. (Each command costs a KMS MAC; more commands prove nothing more.)"""
    setup = service_from_env(cloud)
    slides = ("s1", "s2")
    make_project(setup, project_id, slides=slides)
    writers, per_writer = 6, 25
    accepted: list[tuple[str, int, str]] = []
    retried = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        svc = service_from_env(cloud)  # each writer its own process-like cache
        rng = random.Random(n)
        actor = Actor(user=ANNOTATOR.user, site=f"site{n}")
        try:
            for i in range(per_writer):
                slide = rng.choice(slides)
                cmd = LabelSuperpixels(
                    project_id=project_id, slide_id=slide, ids=[rng.randint(1, 20_000)], category_id="tumor"
                )
                result = svc.execute(cmd, actor, idempotency_key=f"w{n}-{i}")
                with lock:
                    for e in result.events:
                        accepted.append((e["stream"], e["seq"], result.command_id))
                    retried[result.attempts > 1] += 1
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(accepted) == writers * per_writer
    store = DynamoEventStore(cloud)
    streams = [member_label_stream(project_id, slide, ANNOTATOR.user) for slide in slides]
    for stream in streams:
        events = list(store.read(stream))
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert verify_chain(events) is None
        mine = sorted((s, q) for s, q, _ in accepted if s == stream)
        assert [q for _, q in mine] == [e.seq for e in events]
        assert {e.cmd for e in events} == {c for s, _, c in accepted if s == stream}
    assert retried[True] > 0, "6 writers on 2 streams should have lost some races"
    assert sum(len(list(store.read(s))) for s in streams) == writers * per_writer
    assert [store.label_streams(project_id, s) for s in slides] == [[s] for s in streams]


def test_projection_equals_fold_after_redelivery(svc, poller, project_id):
    make_project(svc, project_id)
    for i in range(20):
        svc.execute(
            LabelSuperpixels(project_id=project_id, slide_id="s1", ids=[i + 1, i + 300], category_id="tumor"),
            ANNOTATOR,
        )
    poller.drain()
    # Re-deliver the whole history as a Lambda batch would after a retry.
    events = slide_events(svc.events, project_id, "s1")
    for e in events:
        poller.handler(
            {
                "Records": [
                    {"eventName": "INSERT", "dynamodb": {"NewImage": _image(e), "SequenceNumber": str(e.seq)}}
                ]
            },
            None,
        )
    live = svc.slide_labels(project_id, "s1")
    fresh = fold_labels(project_id, "s1", events)
    assert live.entries == fresh.entries and live.summary() == fresh.summary()
    assert svc.labels_total(project_id) == 40


def _image(event):
    from histolabel.adapters.dynamo_events import to_item

    return to_item(event)


def test_partial_batch_failure_is_redelivered_and_projects_once(cloud, svc, project_id):
    """A record that fails is reported in batchItemFailures; the poller delivers again from it,
    and the records after it (delivered twice) still count once."""
    from histolabel.localcloud.poller import StreamPoller
    from histolabel.runtime.projector_lambda import ProjectorRuntime

    runtime = ProjectorRuntime(svc)
    failures = {"left": 1}
    original = runtime.projector.handle_stream

    def flaky(events):
        stream = member_label_stream(project_id, "s1", ANNOTATOR.user)
        hit = any(e.stream == stream and e.seq == 3 for e in events)
        if hit and failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("transient failure")
        return original(events)

    runtime.projector.handle_stream = flaky
    seen_failures = []

    def handler(event, context):
        result = runtime.handle(event, context)
        seen_failures.extend(result.get("batchItemFailures", []))
        return result

    poller = StreamPoller(cloud, handler, start_at="LATEST")
    make_project(svc, project_id)
    for i in range(6):
        svc.execute(
            LabelSuperpixels(project_id=project_id, slide_id="s1", ids=[i + 1], category_id="tumor"),
            ANNOTATOR,
        )
    poller.drain()
    assert seen_failures and poller.failures >= 1 and failures["left"] == 0
    labels = svc.slide_labels(project_id, "s1")
    assert labels.current() == {i + 1: "tumor" for i in range(6)}
    assert labels.label_actions == 6 == svc.labels_total(project_id)


def test_a_slides_current_labels_read_only_the_streams_that_moved(svc, poller, project_id):
    """Six annotators' streams on one slide, projected; then one of them labels again. The
    current labels (what GET .../labels serves) read that one stream, not all seven, and equal
    a fresh fold of the slide's events."""
    make_project(svc, project_id)
    members = [Actor(user=f"member{n}", site="nyc") for n in range(6)]
    for m in members:
        svc.execute(AddMember(project_id=project_id, user=m.user, role="annotator", site=m.site), OWNER)
        svc.execute(
            LabelSuperpixels(
                project_id=project_id, slide_id="s1", ids=[1 + len(m.user)], category_id="tumor"
            ),
            m,
        )
    poller.drain()
    again = LabelSuperpixels(project_id=project_id, slide_id="s1", ids=[77], category_id="stroma")
    svc.execute(again, members[3])
    reads: list[str] = []
    original = svc.events.read

    def counted(stream, after=0, upto=None):
        reads.append(stream)
        return original(stream, after, upto)

    svc.events.read = counted  # type: ignore[method-assign]
    current = svc.slide_labels_current(project_id, "s1")
    assert reads == [member_label_stream(project_id, "s1", members[3].user)]
    fresh = fold_labels(project_id, "s1", slide_events(svc.events, project_id, "s1"))
    assert current.entries == fresh.entries and 77 in current.entries
