"""The label streams' fold: per superpixel the current label, every user's own label and the
last review; per slide the counts by category, by user and by review action.

A slide's label events live in several streams: one per member (who appends only to their own,
so writers on one slide never race for a sequence), and the slide's own stream that held every
label event before (still read). The fold takes them in one total order, the *fold order*:
by (effective time, member, seq), where an event's effective time is the latest `at` of its
stream up to it (so a stream's events keep their seq order even if a writer's clock stepped
back) and the member is "" for the slide's own stream. Every input of the key is stored in the
event and hashed, so every reader (projector, API catch-up, audit replay, rebuild) folds the same
events in the same order, whatever order they were delivered in; with one stream the order is
its seq order, the fold of before.

Events of different members can arrive out of fold order (they are appended in parallel).
Each entry remembers the key of the last event folded into it ("k"), kept even when the entry
ends up empty; an event that arrives behind an entry's key is not applied on top of it: those
superpixels are folded again from the streams' history up to the heads (rare: two members on
one superpixel within the same instant).

Entries are grouped in buckets of consecutive ids so a store can load and save only the
buckets an event touches; the fold never reads an entry the event does not name, which is what
lets the projector work on such a partial view.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from histolabel.events.catalogue import (
    LABEL_EVENT_TYPES,
    EventData,
    LabelEvent,
    LabelsReviewed,
    SuperpixelsLabeled,
    SuperpixelsUnlabeled,
    model_for,
    upcast,
)
from histolabel.events.envelope import GENESIS_HASH, StoredEvent, member_of

BUCKET_SIZE = 256

# {"l": {user: [category, at]}, "c": category|None, "cb": user, "ca": at, "r": review, "k": key}
Entry = dict[str, Any]
Key = tuple[str, str, int]  # fold order: (effective time, member, seq)
NO_KEY: Key = ("", "", 0)  # entries folded before keys were kept
# (stream heads -> every event of those streams up to their heads), for refolding late arrivals
History = Callable[[dict[str, int]], Iterable[StoredEvent]]


def bucket_of(superpixel_id: int) -> int:
    return superpixel_id // BUCKET_SIZE


def buckets_of(ids: Iterable[int]) -> set[int]:
    return {i // BUCKET_SIZE for i in ids}


@dataclass
class SlideLabels:
    project_id: str
    slide_id: str
    seq: int = 0  # events folded, all the slide's streams together (the sum of the heads' seqs)
    hash: str = GENESIS_HASH  # of the last event in fold order
    entries: dict[int, Entry] = field(default_factory=dict)
    # stream -> [seq, hash, effective time] of its last event folded in
    heads: dict[str, list[Any]] = field(default_factory=dict)
    # superpixel -> key of the event that left its entry empty (entries hold only what is left)
    gone: dict[int, Key] = field(default_factory=dict)
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
            "heads": self.heads,
        }

    def cursor(self) -> dict[str, int]:
        """stream -> seq folded: what a reader asks the event store for events after."""
        return {stream: int(h[0]) for stream, h in self.heads.items()}

    def bucket(self, b: int) -> dict[int, Entry]:
        """The bucket as stored: its entries, and a bare {"k": key} for each emptied one."""
        return self.buckets({b}).get(b, {})

    def buckets(self, wanted: set[int]) -> dict[int, dict[int, Entry]]:
        """Several buckets as stored, in one pass over the entries (not one per bucket)."""
        out: dict[int, dict[int, Entry]] = {b: {} for b in wanted}
        for i, e in self.entries.items():
            if (b := i // BUCKET_SIZE) in out:
                out[b][i] = e
        for i, k in self.gone.items():
            if (b := i // BUCKET_SIZE) in out:
                out[b][i] = {"k": list(k)}
        return out

    def load_bucket(self, stored: dict[int, Entry]) -> None:
        for i, e in stored.items():
            if "l" in e:
                self.entries[i] = e
            else:
                self.gone[i] = entry_key(e)

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


def recount(state: SlideLabels) -> None:
    """The slide's counts from its entries, in one pass: a fold from zero counts once at the end
    instead of un- and re-counting an entry at every event (half a 10^6-label rebuild's time)."""
    entries = state.entries.values()
    by_user: dict[str, dict[str, int]] = {}
    for (user, cat), n in Counter((u, c) for e in entries for u, (c, _at) in e["l"].items()).items():
        if cat is not None:
            by_user.setdefault(user, {})[cat] = n
    state.counts = dict(Counter(c for e in entries if (c := e["c"]) is not None))
    state.user_counts = by_user
    state.review_counts = dict(Counter(r["a"] for e in entries if (r := e["r"]) is not None))


def resolved(entry: Entry, resolve: Callable[[str | None], str | None]) -> Entry:
    """`entry` with its categories as the project knows them now (`resolve`: merged -> target,
    deleted -> None); per-user labels of a deleted category drop out. The stored entry keeps the
    category each label was given: events are never rewritten."""
    review = entry["r"]
    shown = {k: v for k, v in entry.items() if k != "k"}
    return {
        **shown,
        "c": resolve(entry["c"]),
        "l": {u: [c, at] for u, (cat, at) in entry["l"].items() if (c := resolve(cat)) is not None},
        "r": None if review is None else {**review, "c": resolve(review.get("c"))},
    }


def _new_entry() -> Entry:
    return {"l": {}, "c": None, "cb": None, "ca": None, "r": None}


def entry_key(entry: Entry) -> Key:
    k = entry.get("k")
    return (k[0], k[1], int(k[2])) if k else NO_KEY


def in_fold_order(
    heads: dict[str, list[Any]], events: Iterable[StoredEvent]
) -> list[tuple[Key, StoredEvent]]:
    """`events` (of any of a slide's streams, each continuing its head) with their keys, in fold
    order; events at or below their stream's head are duplicates and left out."""
    last = {s: (int(h[0]), str(h[2])) for s, h in heads.items()}
    out: list[tuple[Key, StoredEvent]] = []
    for e in sorted({(e.stream, e.seq): e for e in events}.values(), key=lambda e: (e.stream, e.seq)):
        seq, eff = last.get(e.stream, (0, ""))
        if e.seq <= seq:
            continue
        eff = max(eff, e.at)
        last[e.stream] = (e.seq, eff)
        out.append(((eff, member_of(e.stream), e.seq), e))
    out.sort(key=lambda pair: pair[0])
    return out


# An entry's change by one label event, per event type: (entry, the event's data, its actor, its at).
EntryFold = Callable[[Entry, dict[str, Any], str, str], None]
ENTRY_FOLDS: dict[type[EventData], EntryFold] = {}


def folds(model: type[LabelEvent]) -> Callable[[EntryFold], EntryFold]:
    """Register the function as the effect of `model`'s events on a superpixel's entry."""

    def register(fold: EntryFold) -> EntryFold:
        ENTRY_FOLDS[model] = fold
        return fold

    return register


@folds(SuperpixelsLabeled)
def _labeled(entry: Entry, d: dict[str, Any], user: str, at: str) -> None:
    entry["l"].pop(user, None)
    entry["l"][user] = [d["category_id"], at]
    entry["c"], entry["cb"], entry["ca"], entry["r"] = d["category_id"], user, at, None


@folds(SuperpixelsUnlabeled)
def _unlabeled(entry: Entry, d: dict[str, Any], user: str, at: str) -> None:
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


@folds(LabelsReviewed)
def _reviewed(entry: Entry, d: dict[str, Any], user: str, at: str) -> None:
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


def _apply(state: SlideLabels, event: StoredEvent, key: Key, skip: set[int] | frozenset[int] = frozenset(),
           only: set[int] | None = None, account: bool = True) -> None:  # fmt: skip
    d = upcast(event.type, event.v, event.payload)
    user, at = event.actor_user, event.at
    fold = ENTRY_FOLDS[model_for(event.type)]
    for sp in d["ids"]:
        if sp in skip or (only is not None and sp not in only):
            continue
        entry = state.entries.get(sp)
        if entry is None:
            entry = _new_entry()
            state.gone.pop(sp, None)
        elif account:
            _account(state, entry, -1)
        fold(entry, d, user, at)
        entry["k"] = list(key)
        if is_empty(entry):
            # Its key is kept: an event arriving later with an earlier key must see that this
            # superpixel has moved past it.
            state.entries.pop(sp, None)
            state.gone[sp] = key
        else:
            state.entries[sp] = entry
            if account:
                _account(state, entry, +1)


def catch_up(
    state: SlideLabels, events: Iterable[StoredEvent], history: History | None = None, *, account: bool = True
) -> set[int]:
    """Fold `events` (any of the slide's streams, any order, duplicates allowed; each stream's
    continuing its head in `state`) into `state` in fold order, in place. A superpixel that has
    already folded an event later in fold order is folded again from `history`. Returns the
    superpixel ids the events name. Without `account` the counts are left for `recount`."""
    touched: set[int] = set()
    late: set[int] = set()
    for key, e in in_fold_order(state.heads, events):
        if e.type not in LABEL_EVENT_TYPES:
            raise ValueError(f"{e.type} does not belong on a label stream ({e.stream}#{e.seq})")
        ids = event_ids(e)
        touched.update(ids)
        for sp in ids:
            entry = state.entries.get(sp)
            seen = entry_key(entry) if entry is not None else state.gone.get(sp, NO_KEY)
            if seen > key:
                late.add(sp)
        _apply(state, e, key, skip=late, account=account)
        if e.type == "SuperpixelsLabeled":
            state.label_actions += len(ids)
        before = int(state.heads[e.stream][0]) if e.stream in state.heads else 0
        state.heads[e.stream] = [e.seq, e.hash, key[0]]
        state.seq += e.seq - before
    if state.heads:
        last = max(state.heads.items(), key=lambda kv: (kv[1][2], member_of(kv[0]), int(kv[1][0])))
        state.hash = last[1][1]
    if late:
        if history is None:
            raise ValueError(f"events arrived behind the fold order on superpixels {sorted(late)[:5]}")
        fresh = SlideLabels(project_id=state.project_id, slide_id=state.slide_id)
        for key, e in in_fold_order({}, history(state.cursor())):
            _apply(fresh, e, key, only=late)
        for sp in late:
            old = state.entries.pop(sp, None)
            state.gone.pop(sp, None)
            if old is not None:
                _account(state, old, -1)
            new = fresh.entries.get(sp)
            if new is not None:
                state.entries[sp] = new
                _account(state, new, +1)
            elif sp in fresh.gone:
                state.gone[sp] = fresh.gone[sp]
    return touched


def apply_label_event(state: SlideLabels, event: StoredEvent) -> SlideLabels:
    """Fold one label event (the next of its stream, not behind the fold order) into `state`."""
    catch_up(state, [event])
    return state


def fold_labels(project_id: str, slide_id: str, events: Iterable[StoredEvent]) -> SlideLabels:
    """A slide's labels from all its label events (every stream, any order)."""
    state = SlideLabels(project_id=project_id, slide_id=slide_id)
    catch_up(state, events, account=False)
    recount(state)
    return state


def is_empty(entry: Entry) -> bool:
    return not entry["l"] and entry["c"] is None and entry["r"] is None


def event_ids(event: StoredEvent) -> list[int]:
    return list(event.payload.get("ids", []))
