"""The guided-labeling queue: the next superpixels to show, across a project's slides.

Before any model: a fixed pseudo-random spread per project and slide, so every annotator walks
the tissue in the same well-mixed order. With predictions: the learning engineer's order
(BatchBALD batches together, then least certain first). Labeled superpixels, and those predicted
as an excluded category, never come back.

What is handed out is leased (histolabel/leases.py): two annotators asking at once get different
superpixels, except the share the project wants labeled twice (settings.label_overlap), which
go to two people each.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np

# The order of a model's candidates lives in ranking.py (the predict job imports it without the
# lease machinery); re-exported here for the queue's callers.
from histolabel.api.ranking import (  # noqa: F401
    RANKING_FILE,
    RANKING_SIZE,
    QueueItem,
    ranking_items,
    ranking_table,
    slide_scores,
    uncertainty_queue,
)
from histolabel.leases import Lease


def _seed(project_id: str, slide_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{project_id}/{slide_id}".encode()).digest()[:8], "little")


SPREAD_RUN = 32  # ids a slide gives per turn of the round-robin: a page touches few slides
_ROUNDS = 4
_M64 = np.uint64(2**64 - 1)


def _mix(x: np.ndarray, key: int) -> np.ndarray:
    """splitmix64's finaliser of x ^ key: a keyed, well-mixed 64-bit hash."""
    with np.errstate(over="ignore"):
        z = (x ^ np.uint64(key)) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def spread_ids(project_id: str, slide_id: str, count: int, positions: np.ndarray) -> np.ndarray:
    """The ids at `positions` (0-based) of the slide's fixed spread order, a pseudo-random
    permutation of 1..count computed per position (a keyed Feistel network on the next even
    power of two, cycle-walked into range), so a page of the queue costs O(page), not O(count)."""
    pos = np.asarray(positions, np.uint64)
    if count <= 1:
        return pos.astype(np.int64) + 1
    half = max(1, (int(count - 1).bit_length() + 1) // 2)
    mask = np.uint64((1 << half) - 1)
    keys = [_seed(project_id, slide_id) + r for r in range(_ROUNDS)]

    def permute(v: np.ndarray) -> np.ndarray:
        left, right = v >> np.uint64(half), v & mask
        for k in keys:
            left, right = right, left ^ (_mix(right, k) & mask)
        return (left << np.uint64(half)) | right

    out = permute(pos)
    outside = out >= np.uint64(count)
    while outside.any():  # at most a few steps: the domain is under 4x count
        out[outside] = permute(out[outside])
        outside = out >= np.uint64(count)
    return out.astype(np.int64) + 1


def spread_order(project_id: str, slide_id: str, count: int) -> np.ndarray:
    """Ids 1..count in the project's fixed spread order."""
    return spread_ids(project_id, slide_id, count, np.arange(count))


def spread_candidates(project_id: str, slides: Mapping[str, int]) -> Iterator[list[QueueItem]]:
    """The spread order across slides, a round at a time: each slide (sorted) gives the next
    SPREAD_RUN ids of its own spread order, in turn. Callers drop what is done."""
    ordered = sorted(slides)
    for r in itertools.count():
        start = r * SPREAD_RUN
        live = [sid for sid in ordered if start < slides[sid]]
        if not live:
            return
        for sid in live:
            stop = min(start + SPREAD_RUN, slides[sid])
            ids = spread_ids(project_id, sid, slides[sid], np.arange(start, stop))
            yield [QueueItem(sid, int(i)) for i in ids]


def spread_queue(
    project_id: str,
    slides: Mapping[str, int],
    labeled: Mapping[str, set[int]],
    n: int,
) -> list[QueueItem]:
    """The first `n` of the spread order (spread_candidates), skipping labeled ids."""
    out: list[QueueItem] = []
    for run in spread_candidates(project_id, slides):
        done = labeled.get(run[0].slide_id, set()) if run else set()
        out.extend(item for item in run if item.id not in done)
        if len(out) >= n:
            break
    return out[:n]


def _overlap_seed(project_id: str, slide_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"overlap/{project_id}/{slide_id}".encode()).digest()[:8], "little")


def doubled_ids(project_id: str, slide_id: str, ids: np.ndarray, overlap: float) -> np.ndarray:
    """Per superpixel id: whether the project wants two people to label it. A fixed draw per
    (slide, id), a hash rather than a slide-long random array, so every API instance and every
    request agrees at the cost of the ids asked about."""
    ids = np.asarray(ids, np.uint64)
    if overlap <= 0:
        return np.zeros(len(ids), bool)
    u = (_mix(ids, _overlap_seed(project_id, slide_id)) >> np.uint64(11)).astype(np.float64) / 2.0**53
    return np.asarray(u < overlap)


def doubled(project_id: str, slide_id: str, count: int, overlap: float) -> np.ndarray:
    """doubled_ids for ids 1..count (index id - 1)."""
    return doubled_ids(project_id, slide_id, np.arange(1, count + 1), overlap)


def slots_of(double: np.ndarray, superpixel_id: int) -> int:
    return 2 if 0 < superpixel_id <= len(double) and double[superpixel_id - 1] else 1


def slots_for(project_id: str, slide_id: str, superpixel_id: int, overlap: float) -> int:
    """Labels the project wants of one superpixel (doubled_ids for one id)."""
    return 2 if doubled_ids(project_id, slide_id, np.array([superpixel_id]), overlap)[0] else 1


def done_for(entries: Mapping[int, Mapping[str, object]], double: np.ndarray, user: str) -> set[int]:
    """Superpixels the queue no longer offers `user`: labeled by them, labeled by as many people
    as the project wants, or settled by a review alone."""
    return {sp for sp, entry in entries.items() if is_done(entry, slots_of(double, sp), user)}


def is_done(entry: Mapping[str, object] | None, slots: int, user: str) -> bool:
    """One superpixel's entry (None: never labeled) as done_for judges it."""
    if entry is None:
        return False
    users = entry.get("l") or {}
    assert isinstance(users, Mapping)
    return user in users or not users or len(users) >= slots


TakeAll = Callable[[list[tuple[Lease, str | None]]], list[bool]]


def lease_items(
    candidates: Iterable[QueueItem],
    labelers: Callable[[str, int], set[str]],
    slots: Callable[[str, int], int],
    user: str,
    take_all: TakeAll,
    until: float,
    n: int,
    held: Callable[[list[QueueItem]], Iterable[Lease]] | None = None,
) -> list[QueueItem]:
    """The first `n` candidates whose lease `user` gets. A superpixel wanted k more times is
    skipped once k slots are found held by others (`held`, asked about each stretch of
    candidates as the page reaches it, so most of those cost no write and a page reads only
    what it considers); the slot tried first depends on the user, so renewing a lease finds the
    user's own slot first. Takes go in waves of at most the leases still wanted, each wave's
    writes at once through `take_all` ((lease, who already spent one) -> taken): a page costs a
    few round trips, not one per superpixel, and never more than `n` leases."""
    start = int.from_bytes(hashlib.sha256(user.encode()).digest()[:2], "little")
    holders: dict[tuple[str, int], set[str]] = {}
    source = enumerate(candidates)
    ahead: list[tuple[int, QueueItem]] = []  # read, with what others hold of them, not yet judged
    stretch = 0

    def read_ahead(k: int) -> bool:
        nonlocal stretch
        # Each stretch at least twice the last: where colleagues hold the top of the order, a
        # page reads a few growing stretches, not one per few candidates.
        stretch = max(k, 2 * stretch)
        chunk = list(itertools.islice(source, stretch))
        for lease in held([item for _i, item in chunk]) if held is not None and chunk else ():
            holders.setdefault((lease.slide_id, lease.id), set()).add(lease.holder)
        ahead.extend(reversed(chunk))
        return bool(chunk)

    got: list[tuple[int, QueueItem]] = []
    # (candidate index, item, slots tried, slots to try, who already spent one, slot count)
    retry: list[tuple[int, QueueItem, int, int, str | None, int]] = []
    exhausted = False
    while len(got) < n and (retry or not exhausted):
        wave, retry = retry[: n - len(got)], retry[n - len(got) :]
        while len(wave) < n - len(got) and not exhausted:
            if not ahead and not read_ahead(max(8, n - len(got) - len(wave))):
                exhausted = True
                break
            index, item = ahead.pop()
            others = labelers(item.slide_id, item.id) - {user}
            total = slots(item.slide_id, item.id)
            wanted = total - len(others)
            if wanted <= 0 or len(holders.get((item.slide_id, item.id), set()) - others - {user}) >= wanted:
                continue
            spent = next(iter(others)) if others else None
            wave.append((index, item, 0, min(wanted, total), spent, total))
        if not wave:
            break
        attempts = [(Lease(it.slide_id, it.id, (start + k) % total, user, until), spent)
                    for _i, it, k, _w, spent, total in wave]  # fmt: skip
        results = take_all(attempts)
        for (index, item, k, wanted, spent, total), ok in zip(wave, results, strict=True):
            if ok:
                got.append((index, item))
            elif k + 1 < wanted:  # each refused slot is held by someone else: try the next
                retry.append((index, item, k + 1, wanted, spent, total))
        retry.sort(key=lambda r: r[0])
    return [item for _i, item in sorted(got, key=lambda g: g[0])]
