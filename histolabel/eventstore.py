"""The event store port: what the service needs from any event store, and its errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from histolabel.events.envelope import StoredEvent


class AppendConflict(Exception):
    """Another writer appended to one of the streams first; retry on fresh state.

    `seen` holds what the store revealed of the winners ((stream) -> (seq, hash) of an event
    found at a seq we tried), so a retry can build on it without reading the head again;
    `streams` names the streams that moved (None: unknown, refresh everything)."""

    def __init__(
        self, seen: dict[str, tuple[int, str]] | None = None, streams: set[str] | None = None
    ) -> None:
        super().__init__("append conflict")
        self.seen = seen or {}
        self.streams = streams


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

    def streams_after(self, heads: dict[str, int]) -> set[str]:
        """The streams of `heads` (stream -> seq) that hold an event after that seq: one batched
        read for many streams, so a reader of many slides learns which moved without a Query each."""
        ...

    def append(
        self,
        events: list[StoredEvent],
        idempotency: tuple[str, dict[str, Any]] | None = None,
        guard: tuple[str, int] | None = None,
    ) -> None:
        """Write all events atomically, each only if its (stream, seq) is free; with an
        idempotency (stream, result) record too, only if that key was never used; with a guard
        (stream, seq), only while that seq is still free (the stream has not moved on)."""
        ...

    def idempotent_result(self, stream: str) -> dict[str, Any] | None: ...

    def label_streams(self, project_id: str, slide_id: str) -> list[str]:
        """The slide's member label streams (its directory), sorted; every one that has an event."""
        ...
