"""A slide's label streams as one history: which streams there are, and their events read
together (in fold order, see histolabel/projections/labels.py).

A slide's label events live in one stream per member (`member_label_stream`), listed in the
slide's directory, and in the slide's own stream (`label_stream`), where every label event went
before streams were kept per member: it is still read, so older data folds as it did.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from histolabel.events.envelope import StoredEvent, label_stream
from histolabel.eventstore import EventStore
from histolabel.projections.labels import History, in_fold_order


def slide_streams(store: EventStore, project_id: str, slide_id: str) -> list[str]:
    """Every label stream of the slide: its own stream first, then the members' (sorted)."""
    return [label_stream(project_id, slide_id), *store.label_streams(project_id, slide_id)]


def read_after(
    store: EventStore, streams: Iterable[str], cursor: dict[str, int], upto: dict[str, int] | None = None
) -> Iterator[StoredEvent]:
    """The events of `streams` after the cursor's seq of each (up to `upto`'s, where given)."""
    for stream in streams:
        yield from store.read(stream, after=cursor.get(stream, 0), upto=(upto or {}).get(stream))


def slide_events(store: EventStore, project_id: str, slide_id: str) -> list[StoredEvent]:
    """All the slide's label events, in fold order."""
    events = read_after(store, slide_streams(store, project_id, slide_id), {})
    return [e for _key, e in in_fold_order({}, events)]


def history_of(store: EventStore) -> History:
    """What the fold refolds a late arrival from: each stream of the heads, up to its head."""

    def history(heads: dict[str, int]) -> Iterable[StoredEvent]:
        return read_after(store, sorted(heads), {}, upto=heads)

    return history


def stream_events(store: EventStore, project_id: str, slide_id: str) -> dict[str, list[StoredEvent]]:
    """stream -> its events in seq order, for each label stream of the slide that has any."""
    out = {}
    for stream in slide_streams(store, project_id, slide_id):
        events = list(store.read(stream))
        if events:
            out[stream] = events
    return out
