"""The label stream's fold: per superpixel the current label, every user's own label and the
last review; per slide the counts by category, by user and by review action.

Entries are grouped in buckets of consecutive ids so a store can load and save only the
buckets an event touches; the fold never reads an entry the event does not name, which is what
lets the projector work on such a partial view.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from histolabel.events.catalogue import upcast
from histolabel.events.envelope import GENESIS_HASH, StoredEvent

BUCKET_SIZE = 256

Entry = dict[str, Any]  # {"l": {user: [category, at]}, "c": category|None, "cb": user, "ca": at, "r": review}


def bucket_of(superpixel_id: int) -> int:
    return superpixel_id // BUCKET_SIZE


def buckets_of(ids: Iterable[int]) -> set[int]:
    return {i // BUCKET_SIZE for i in ids}


@dataclass
class SlideLabels:
    project_id: str
    slide_id: str
    seq: int = 0
    hash: str = GENESIS_HASH
    entries: dict[int, Entry] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    user_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    review_counts: dict[str, int] = field(default_factory=dict)
    label_actions: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "hash": self.hash,
            "counts": self.counts,
            "user_counts": self.user_counts,
            "review_counts": self.review_counts,
            "label_actions": self.label_actions,
        }

    def bucket(self, b: int) -> dict[int, Entry]:
        lo = b * BUCKET_SIZE
        return {i: e for i, e in self.entries.items() if lo <= i < lo + BUCKET_SIZE}

    def current(self) -> dict[int, str]:
        return {i: e["c"] for i, e in self.entries.items() if e["c"] is not None}


def _bump(counter: dict[str, int], key: str | None, delta: int) -> None:
    if key is None:
        return
    n = counter.get(key, 0) + delta
    if n:
        counter[key] = n
    else:
        counter.pop(key, None)


def _account(state: SlideLabels, entry: Entry, sign: int) -> None:
    _bump(state.counts, entry["c"], sign)
    for user, (cat, _at) in entry["l"].items():
        per_user = state.user_counts.setdefault(user, {})
        _bump(per_user, cat, sign)
        if not per_user:
            del state.user_counts[user]
    if entry["r"] is not None:
        _bump(state.review_counts, entry["r"]["a"], sign)


def resolved(entry: Entry, resolve: Callable[[str | None], str | None]) -> Entry:
    """`entry` with its categories as the project knows them now (`resolve`: merged -> target,
    deleted -> None); per-user labels of a deleted category drop out. The stored entry keeps the
    category each label was given: events are never rewritten."""
    review = entry["r"]
    return {
        **entry,
        "c": resolve(entry["c"]),
        "l": {u: [c, at] for u, (cat, at) in entry["l"].items() if (c := resolve(cat)) is not None},
        "r": None if review is None else {**review, "c": resolve(review.get("c"))},
    }


def _new_entry() -> Entry:
    return {"l": {}, "c": None, "cb": None, "ca": None, "r": None}


def apply_label_event(state: SlideLabels, event: StoredEvent) -> SlideLabels:
    """Fold one label-stream event into `state` (updated in place and returned)."""
    d = upcast(event.type, event.v, event.payload)
    user, at, t = event.actor_user, event.at, event.type
    for sp in d["ids"]:
        entry = state.entries.get(sp)
        if entry is None:
            entry = _new_entry()
        else:
            _account(state, entry, -1)
        if t == "SuperpixelsLabeled":
            entry["l"].pop(user, None)
            entry["l"][user] = [d["category_id"], at]
            entry["c"], entry["cb"], entry["ca"], entry["r"] = d["category_id"], user, at, None
        elif t == "SuperpixelsUnlabeled":
            if user in entry["l"]:
                del entry["l"][user]
                if entry["cb"] == user:
                    # The label shown falls back to the latest remaining user's label.
                    if entry["l"]:
                        last_user = next(reversed(entry["l"]))
                        entry["c"], entry["ca"] = entry["l"][last_user]
                        entry["cb"] = last_user
                    else:
                        entry["c"] = entry["cb"] = entry["ca"] = None
                    entry["r"] = None
        elif t == "LabelsReviewed":
            action = d["action"]
            if action == "approve":
                if entry["c"] is not None:
                    entry["r"] = {"by": user, "a": "approve", "c": entry["c"], "at": at}
            elif action == "change":
                entry["c"] = d["category_id"]
                entry["r"] = {"by": user, "a": "change", "c": d["category_id"], "at": at}
            else:
                entry["c"] = None
                entry["r"] = {"by": user, "a": "clear", "c": None, "at": at}
        if not entry["l"] and entry["c"] is None and entry["r"] is None:
            state.entries.pop(sp, None)
        else:
            state.entries[sp] = entry
            _account(state, entry, +1)
    if t == "SuperpixelsLabeled":
        state.label_actions += len(d["ids"])
    state.seq = event.seq
    state.hash = event.hash
    return state


def fold_labels(project_id: str, slide_id: str, events: Iterable[StoredEvent]) -> SlideLabels:
    state = SlideLabels(project_id=project_id, slide_id=slide_id)
    for event in events:
        apply_label_event(state, event)
    return state


def event_ids(event: StoredEvent) -> list[int]:
    return list(event.payload.get("ids", []))
