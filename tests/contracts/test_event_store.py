"""The event store contract against every adapter: in memory, and DynamoDB (with its KMS seals)
on the local cloud, or on AWS where AWS_ENDPOINT_URL points there. Deliberately broken stores
must fail it, or the contract proves nothing."""

from __future__ import annotations

from typing import Any

import pytest

from histolabel.adapters.memory import InMemoryEventStore
from tests.contracts.event_store import CHECKS, run_all


@pytest.fixture(params=["memory", "dynamodb"])
def make_store(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return InMemoryEventStore
    settings = request.getfixturevalue("cloud")
    from histolabel.adapters.dynamo_events import DynamoEventStore

    return lambda: DynamoEventStore(settings)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_contract(make_store: Any, name: str) -> None:
    CHECKS[name](make_store())


class Overwrites(InMemoryEventStore):
    """Writes whatever it is given: a lost update waiting to happen."""

    def append(self, events: Any, idempotency: Any = None, guard: Any = None) -> None:
        for e in events:
            self.streams.setdefault(e.stream, {})[e.seq] = e


class PartialWrites(InMemoryEventStore):
    """Checks each event as it writes it, so a conflict leaves the earlier ones behind."""

    def append(self, events: Any, idempotency: Any = None, guard: Any = None) -> None:
        for e in events:
            super().append([e])


class ForgetsKeys(InMemoryEventStore):
    """Never records an idempotency key: a retried command is applied twice."""

    def append(self, events: Any, idempotency: Any = None, guard: Any = None) -> None:
        super().append(events, None, guard)


class IgnoresGuard(InMemoryEventStore):
    def append(self, events: Any, idempotency: Any = None, guard: Any = None) -> None:
        super().append(events, idempotency, None)


@pytest.mark.parametrize(
    ("broken", "caught_by"),
    [
        (Overwrites, "a_taken_seq_is_refused_and_names_the_winner"),
        (PartialWrites, "an_append_is_all_or_nothing"),
        (ForgetsKeys, "an_idempotency_key_is_used_once"),
        (IgnoresGuard, "a_guard_refuses_once_its_stream_moved"),
    ],
)
def test_a_broken_store_fails_the_contract(broken: type, caught_by: str) -> None:
    failures = {name for name, exc in run_all(broken).items() if exc is not None}
    assert caught_by in failures, f"{broken.__name__} failed only {sorted(failures)}"
