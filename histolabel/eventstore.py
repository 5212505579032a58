"""The event store port: what the service needs from any event store, and its errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from histolabel.events.envelope import StoredEvent


class AppendConflict(Exception):
    """Another writer appended to one of the streams first; retry on fresh state."""


class DuplicateCommand(Exception):
    """The idempotency key was used before; carries the first run's result."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__("command already applied")
        self.result = result


class EventStore(Protocol):
    def head(self, stream: str) -> tuple[int, str]:
        """(last seq, last hash) of a stream; (0, genesis) when empty. Strongly consistent."""
        ...

    def read(self, stream: str, after: int = 0, upto: int | None = None) -> Iterator[StoredEvent]: ...

    def append(
        self, events: list[StoredEvent], idempotency: tuple[str, dict[str, Any]] | None = None
    ) -> None:
        """Write all events atomically, each only if its (stream, seq) is free; with an
        idempotency (stream, result) record too, only if that key was never used."""
        ...

    def idempotent_result(self, stream: str) -> dict[str, Any] | None: ...


class InMemoryEventStore:
    """The same contract in memory: for unit tests and the auditor's offline replay."""

    def __init__(self) -> None:
        import threading

        from histolabel.events.envelope import GENESIS_HASH

        self._genesis = GENESIS_HASH
        self.streams: dict[str, dict[int, StoredEvent]] = {}
        self.idem: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def head(self, stream: str) -> tuple[int, str]:
        events = self.streams.get(stream)
        if not events:
            return 0, self._genesis
        last = max(events)
        return last, events[last].hash

    def read(self, stream: str, after: int = 0, upto: int | None = None) -> Iterator[StoredEvent]:
        events = self.streams.get(stream, {})
        for seq in sorted(events):
            if seq > after and (upto is None or seq <= upto):
                yield events[seq]

    def append(self, events: list[StoredEvent], idempotency: tuple[str, dict[str, Any]] | None = None) -> None:
        with self._lock:
            if idempotency is not None and idempotency[0] in self.idem:
                raise DuplicateCommand(self.idem[idempotency[0]])
            if any(e.seq in self.streams.get(e.stream, {}) for e in events):
                raise AppendConflict()
            for e in events:
                self.streams.setdefault(e.stream, {})[e.seq] = e
            if idempotency is not None:
                self.idem[idempotency[0]] = idempotency[1]

    def idempotent_result(self, stream: str) -> dict[str, Any] | None:
        return self.idem.get(stream)
