"""The event store contract, as `eventsourcing`'s recorder tests: each check takes a fresh store
and asserts one promise of the port (`histolabel.eventstore.EventStore`). The same checks run
against every adapter (test_event_store.py), and a store that breaks a promise fails them."""

from __future__ import annotations

import threading
import uuid

import pytest

from histolabel.events.envelope import (
    GENESIS_HASH,
    StoredEvent,
    idempotency_stream,
    label_stream,
    project_stream,
)
from histolabel.eventstore import AppendConflict, DuplicateCommand, EventStore
from tests.contracts.checks import Checks


def new_stream(kind: str = "project") -> str:
    pid = f"c{uuid.uuid4().hex[:12]}"
    return project_stream(pid) if kind == "project" else label_stream(pid, "s1")


def event(stream: str, seq: int, prev: str, n: int = 0) -> StoredEvent:
    return StoredEvent(
        stream=stream, seq=seq, type="ProjectRenamed", v=1, data=f'{{"n":{n}}}', project=stream.split("#")[1],
        actor_user="alice", actor_site="site-a", at=f"2026-12-01T00:00:{seq % 60:02d}.000000Z", idem="",
        cmd=f"cmd-{uuid.uuid4().hex[:8]}", prev_hash=prev,
    ).sealed()  # fmt: skip


def chain(stream: str, count: int, after: tuple[int, str] = (0, GENESIS_HASH)) -> list[StoredEvent]:
    seq, prev = after
    out = []
    for i in range(count):
        e = event(stream, seq + i + 1, prev, n=i)
        out.append(e)
        prev = e.hash
    return out


CHECKS = Checks()
check = CHECKS.check


@check
def empty_stream_has_genesis_head(store: EventStore) -> None:
    s = new_stream()
    assert store.head(s) == (0, GENESIS_HASH)
    assert list(store.read(s)) == []


@check
def appended_events_read_back_in_order(store: EventStore) -> None:
    s = new_stream()
    events = chain(s, 3)
    store.append(events)
    assert [e.as_dict() for e in store.read(s)] == [e.as_dict() for e in events]
    assert store.head(s) == (3, events[-1].hash)
    assert [e.seq for e in store.read(s, after=1)] == [2, 3]
    assert [e.seq for e in store.read(s, after=0, upto=2)] == [1, 2]


@check
def a_taken_seq_is_refused_and_names_the_winner(store: EventStore) -> None:
    s = new_stream()
    first = chain(s, 1)
    store.append(first)
    rival = event(s, 1, GENESIS_HASH, n=99)
    with pytest.raises(AppendConflict) as raised:
        store.append([rival])
    assert raised.value.streams in ({s}, None)
    if raised.value.seen:
        assert raised.value.seen[s] == (1, first[0].hash)
    assert [e.hash for e in store.read(s)] == [first[0].hash]


@check
def an_append_is_all_or_nothing(store: EventStore) -> None:
    project, labels = new_stream(), new_stream("labels")
    store.append(chain(labels, 1))
    # A command's events on two streams, the second of which lost its seq to another writer.
    with pytest.raises(AppendConflict):
        store.append([*chain(project, 2), event(labels, 1, GENESIS_HASH, n=5)])
    assert list(store.read(project)) == []
    assert store.head(project) == (0, GENESIS_HASH)


@check
def an_idempotency_key_is_used_once(store: EventStore) -> None:
    s = new_stream()
    key = idempotency_stream(s.split("#")[1], "k1")
    store.append(chain(s, 1), idempotency=(key, {"answer": 1}))
    again = chain(s, 1, after=store.head(s))
    with pytest.raises(DuplicateCommand) as raised:
        store.append(again, idempotency=(key, {"answer": 2}))
    assert raised.value.result == {"answer": 1}
    assert store.idempotent_result(key) == {"answer": 1}
    assert store.head(s)[0] == 1


@check
def a_guard_refuses_once_its_stream_moved(store: EventStore) -> None:
    project, labels = new_stream(), new_stream("labels")
    store.append(chain(project, 1))
    with pytest.raises(AppendConflict) as raised:
        store.append(chain(labels, 1), guard=(project, 1))
    assert raised.value.streams in ({project}, None)
    assert list(store.read(labels)) == []
    store.append(chain(labels, 1), guard=(project, 2))  # the seq the stream has not reached
    assert store.head(labels)[0] == 1


@check
def concurrent_writers_never_share_a_seq(store: EventStore) -> None:
    s = new_stream()
    won: list[int] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        for _ in range(20):
            head = store.head(s)
            if head[0] >= 12:
                return
            try:
                store.append([event(s, head[0] + 1, head[1], n=n)])
            except AppendConflict:
                continue
            with lock:
                won.append(head[0] + 1)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = list(store.read(s))
    assert sorted(won) == [e.seq for e in stored] == list(range(1, len(stored) + 1))
    prev = GENESIS_HASH
    for e in stored:  # every winner chained onto the event actually stored before it
        assert e.prev_hash == prev
        prev = e.hash


run_all = CHECKS.run_all
