"""What changed in a project since a client last looked: the cheap read behind live updates.

A client remembers two sequence numbers, the project stream's (settings, members, categories,
slides, models) and the open slide's label stream's (labels and reviews), and asks for what came
after them. Nothing new costs two strongly consistent Queries that return no items. New label
events name the superpixels they touch; only the projection buckets of those superpixels are
loaded and caught up, so an answer is as large as the change, not as the slide.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from typing import Any

from pydantic import BaseModel, Field

from histolabel.api.views import resolved_entries
from histolabel.events.catalogue import Identifier
from histolabel.events.envelope import label_stream
from histolabel.eventstore import EventStore
from histolabel.projections.labels import SlideLabels, apply_label_event, buckets_of, event_ids

# More than this since the client's seq and it is cheaper for it to reload the slide's labels.
MAX_EVENTS = 500
MAX_IDS = 20_000


class ChangesQuery(BaseModel):
    model_config = {"extra": "forbid"}
    slide: Identifier | None = None
    labels_seq: int = Field(default=0, ge=0, description="the slide's label seq the client holds")


class ChangesOut(BaseModel):
    project_seq: int
    slide_id: str | None = None
    labels_seq: int | None = None
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
) -> dict[str, Any]:
    """The label entries (as GET .../labels answers them) of every superpixel touched after
    `since` on the slide's label stream, the ids left with nothing, and the seq they bring the
    client to. `load(buckets)` reads the slide's projection with those buckets only."""
    stream = label_stream(project_id, slide_id)
    new = list(islice(events.read(stream, after=since), MAX_EVENTS + 1))
    if not new:
        return {"labels_seq": since, "reload": False, "entries": [], "removed": []}
    ids: set[int] = set()
    for e in new:
        ids.update(event_ids(e))
    if len(new) > MAX_EVENTS or len(ids) > MAX_IDS:
        return {"labels_seq": since, "reload": True, "entries": [], "removed": []}
    labels = load(buckets_of(ids))
    # The fold never reads an entry its event does not name, so catching these buckets up
    # with the events the projector has not seen yet is exact for `ids`.
    behind = list(events.read(stream, after=labels.seq, upto=since)) if labels.seq < since else []
    for e in behind + [e for e in new if e.seq > labels.seq]:
        apply_label_event(labels, e)
    touched = {i: labels.entries[i] for i in ids if i in labels.entries}
    entries, _ = resolved_entries(touched, resolve)
    kept = {e["id"] for e in entries}
    return {
        "labels_seq": new[-1].seq,
        "reload": False,
        "entries": entries,
        "removed": sorted(ids - kept),
    }
