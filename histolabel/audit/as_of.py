"""The one "as of" rule: a moment named at any door (CLI, API, web) is included whole, and an
event counts when its time is at or before the moment's last instant."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from histolabel.events.envelope import StoredEvent


def as_of_instant(value: str) -> str:
    """The last instant an "as of" names, in the store's form (UTC, microseconds, Z) for string
    comparison with event times. The moment named is included whole, at every door (CLI, API, web):
    a date means the end of that day, a minute its last microsecond, a second likewise; a time
    without an offset is UTC, one with an offset is converted. ValueError for no ISO-8601 time."""
    text = value.strip().replace("z", "Z")
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    _, sep, time = re.split(r"([T ])", text, maxsplit=1) if re.search(r"[T ]", text) else (text, "", "")
    clock = re.split(r"[Z+-]", time, maxsplit=1)[0]
    if not sep:
        whole = timedelta(days=1)
    elif "." in clock:
        whole = timedelta(microseconds=1)
    else:
        whole = {0: timedelta(hours=1), 1: timedelta(minutes=1)}.get(clock.count(":"), timedelta(seconds=1))
    end = parsed + whole - timedelta(microseconds=1)
    return end.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def counts(event: StoredEvent, instant: str | None) -> bool:
    """Whether `event` is part of the state as of `instant` (an `as_of_instant`; None: now)."""
    return instant is None or event.at <= instant


def upto(events: Iterable[StoredEvent], instant: str | None) -> list[StoredEvent]:
    return [e for e in events if counts(e, instant)]
