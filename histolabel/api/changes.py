"""What changed in a project since a client last looked: the cheap read behind live updates.

A client remembers the project stream's seq (settings, members, categories, slides, models) and,
for the open slide, a label cursor: the seq it holds of each of the slide's label streams (one
per member, see histolabel/events/streams.py), as GET .../labels and this route hand it out.
It asks for what came after them. Nothing new costs a Query of the project stream, one of the
slide's stream directory and one per label stream of the slide, each returning no items. New
label events name the superpixels they touch; only the projection buckets of those superpixels
are loaded and caught up, so an answer is as large as the change, not as the slide.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from itertools import islice
from typing import Any

from pydantic import BaseModel, Field, field_validator

from histolabel.api.views import resolved_entries
from histolabel.events.catalogue import Identifier
from histolabel.events.envelope import label_stream, member_of
from histolabel.events.streams import history_of, read_after, slide_streams
from histolabel.eventstore import EventStore
from histolabel.projections.labels import SlideLabels, buckets_of, catch_up, event_ids

# More than this since the client's seq and it is cheaper for it to reload the slide's labels.
MAX_EVENTS = 500
MAX_IDS = 20_000
MAX_CURSOR = 16_384
Cursor = dict[str, int]  # label stream -> seq


def encode_cursor(cursor: Cursor) -> str:
    """member -> seq ("" for the slide's own stream) as URL-safe base64 of compact JSON."""
    members = {member_of(stream): seq for stream, seq in sorted(cursor.items()) if seq}
    raw = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> dict[str, int]:
    """member -> seq, or ValueError naming what is wrong."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        members = json.loads(raw)
    except (binascii.Error, ValueError):
        raise ValueError("labels_cursor is not a cursor this API handed out") from None
    if not isinstance(members, dict) or not all(
        isinstance(m, str) and "#" not in m and type(q) is int and q >= 0 for m, q in members.items()
    ):
        raise ValueError("labels_cursor is not a cursor this API handed out")
    return members


def stream_cursor(project_id: str, slide_id: str, members: dict[str, int]) -> Cursor:
    own = label_stream(project_id, slide_id)
    return {(f"{own}#{m}" if m else own): q for m, q in members.items()}


class ChangesQuery(BaseModel):
    model_config = {"extra": "forbid"}
    slide: Identifier | None = None
    labels_seq: int = Field(
        default=0,
        ge=0,
        description="the slide's label seq the client holds (GET .../labels 'seq'); without "
        "labels_cursor, anything but 0 answers reload",
    )
    labels_cursor: str | None = Field(
        default=None,
        max_length=MAX_CURSOR,
        pattern=r"^[A-Za-z0-9_-]*$",
        description="the label cursor the client holds (GET .../labels 'cursor', or the last "
        "answer's); one this API did not hand out answers reload",
    )

    @field_validator("labels_cursor")
    @classmethod
    def _cursor(cls, value: str | None) -> str | None:
        return value or None  # an empty parameter is no cursor


class ChangesOut(BaseModel):
    project_seq: int
    slide_id: str | None = None
    labels_seq: int | None = None
    labels_cursor: str | None = None
    reload: bool = False
    entries: list[dict[str, Any]] = []
    removed: list[int] = []


def label_changes(
    events: EventStore,
    load: Callable[[set[int]], SlideLabels],
    project_id: str,
    slide_id: str,
    since: int,
    resolve: Callable[[str | None], str | None],
    cursor_text: str | None = None,
) -> dict[str, Any]:
    """The label entries (as GET .../labels answers them) of every superpixel touched after the
    client's cursor on the slide's label streams, the ids left with nothing, and the cursor and
    seq they bring the client to. `load(buckets)` reads the slide's projection with those
    buckets only. A client with a seq but no cursor is told to reload."""
    try:
        members = decode_cursor(cursor_text) if cursor_text else {}
    except ValueError:
        members = None  # not a cursor this API handed out: start again from GET .../labels
    if members is None or (cursor_text is None and since):
        return {"labels_seq": since, "reload": True, "entries": [], "removed": []}
    cursor = stream_cursor(project_id, slide_id, members)
    streams = slide_streams(events, project_id, slide_id)
    new = list(islice(read_after(events, streams, cursor), MAX_EVENTS + 1))
    unchanged = {"labels_seq": sum(cursor.values()), "labels_cursor": encode_cursor(cursor)}
    if not new:
        return {**unchanged, "reload": False, "entries": [], "removed": []}
    ids: set[int] = set()
    for e in new:
        ids.update(event_ids(e))
    if len(new) > MAX_EVENTS or len(ids) > MAX_IDS:
        return {**unchanged, "reload": True, "entries": [], "removed": []}
    labels = load(buckets_of(ids))
    # The fold never reads an entry its event does not name, so catching these buckets up
    # with the events the projector has not seen yet is exact for `ids`.
    folded = labels.cursor()
    behind_upto = {s: q for s, q in cursor.items() if folded.get(s, 0) < q}
    behind = list(read_after(events, sorted(behind_upto), folded, upto=behind_upto))
    catch_up(labels, behind + new, history_of(events))
    touched = {i: labels.entries[i] for i in ids if i in labels.entries}
    entries, _ = resolved_entries(touched, resolve)
    kept = {e["id"] for e in entries}
    for e in new:
        cursor[e.stream] = max(cursor.get(e.stream, 0), e.seq)
    return {
        "labels_seq": sum(cursor.values()),
        "labels_cursor": encode_cursor(cursor),
        "reload": False,
        "entries": entries,
        "removed": sorted(ids - kept),
    }
