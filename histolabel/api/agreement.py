"""Agreement: Cohen's kappa between two raters, Fleiss' kappa for more, and per category the
kappa of "this category or not", from counts: each pair of raters' confusion matrix and each
item's category counts, built with array operations over the ratings (item, rater, category
codes), so a project's 10^6 ratings cost a sort and a few bincounts, not a Python loop per item.

The counts of a set of items (`Tallies`, by name) add up over disjoint sets, so a project's
answer is its slides' tallies summed: after a label only that slide is counted again."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

Names = Sequence[str]


def kappa(confusion: np.ndarray) -> float | None:
    """Cohen's kappa of a k x k confusion matrix (rows: rater a, columns: rater b). None when
    undefined: no items, or both raters constant on the same single category."""
    n = int(confusion.sum())
    if n == 0:
        return None
    observed = int(np.trace(confusion)) / n
    # Integer products summed exactly, then divided once: no rounding from the order of terms.
    expected = int((confusion.sum(1).astype(object) * confusion.sum(0).astype(object)).sum()) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def fleiss(n: int, m: int, squares: int, totals: Iterable[int]) -> float | None:
    """Fleiss' kappa of n items each rated by m (>= 2) raters, from the sum over items of each
    category's count squared and the categories' totals."""
    if n == 0:
        return None
    if m < 2:
        raise ValueError("Fleiss' kappa needs at least two ratings per item")
    p_bar = int(squares - n * m) / (m * (m - 1)) / n
    p_e = sum((int(t) / (n * m)) ** 2 for t in totals if t)
    if p_e >= 1.0:
        return None
    return (p_bar - p_e) / (1.0 - p_e)


@dataclass
class Rated:
    """Items rated by one set of three or more raters: how many, the sum over them of each
    category's count squared, and each category's total."""

    n: int = 0
    squares: int = 0
    totals: Counter[str] = field(default_factory=Counter)


@dataclass
class Tallies:
    """What agreement needs of a set of items, by name: every rater that rated one; per pair of
    raters (a < b) and their categories, the items both rated; per set of three or more raters,
    the items exactly they rated (`Rated`); per label and prediction, the items with both."""

    raters: set[str] = field(default_factory=set)
    pairs: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    rated: dict[tuple[str, ...], Rated] = field(default_factory=dict)
    predictions: Counter[tuple[str, str]] = field(default_factory=Counter)


def tally(
    item: np.ndarray, rater: np.ndarray, code: np.ndarray, raters: Sequence[str], names: Sequence[str],
    label: np.ndarray, prediction: np.ndarray,
) -> Tallies:  # fmt: skip
    """The tallies of a set of items. One rating per (item, rater): `item` any integer key,
    `rater` an index into `raters` (in name order), `code` into `names`; `label` and
    `prediction` the codes of the items with both."""
    k, r = len(names), len(raters)
    out = Tallies(raters={raters[u] for u in np.unique(rater).tolist()})
    order = np.lexsort((rater, item))
    item, rater, code = item[order], rater[order], code[order]
    starts = np.flatnonzero(np.r_[True, item[1:] != item[:-1]]) if len(item) else np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, len(item)])
    # The pairs within each item, for items of each size at once: (rater a, rater b, a's, b's).
    keys = []
    for g in np.unique(sizes[sizes >= 2]).tolist():
        at = starts[sizes == g][:, None] + np.arange(g)
        for p, q in combinations(range(g), 2):
            ua, ub = rater[at[:, p]].astype(np.int64), rater[at[:, q]].astype(np.int64)
            keys.append(((ua * r + ub) * k + code[at[:, p]]) * k + code[at[:, q]])
        if g > 2:
            _rated(out, rater[at], code[at], raters, names)
    if keys:
        found, counts = np.unique(np.concatenate(keys), return_counts=True)
        pair, cats = np.divmod(found, k * k)
        a, b = np.divmod(pair, r)
        ca, cb = np.divmod(cats, k)
        for x, y, i, j, n in zip(
            a.tolist(), b.tolist(), ca.tolist(), cb.tolist(), counts.tolist(), strict=True
        ):
            out.pairs[(raters[x], raters[y], names[i], names[j])] = n
    if len(label):
        found, counts = np.unique(label.astype(np.int64) * k + prediction, return_counts=True)
        for f, n in zip(found.tolist(), counts.tolist(), strict=True):
            out.predictions[(names[f // k], names[f % k])] = n
    return out


def _rated(
    out: Tallies, who: np.ndarray, codes: np.ndarray, raters: Sequence[str], names: Sequence[str]
) -> None:
    """Items of one size: `who` their raters (sorted in each row), `codes` what each gave."""
    k = len(names)
    sets, inverse = np.unique(who, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    per_item = np.zeros((len(who), k), np.int64)
    np.add.at(per_item, (np.repeat(np.arange(len(who)), who.shape[1]), codes.ravel()), 1)
    n = np.bincount(inverse, minlength=len(sets))
    squares = np.zeros(len(sets), np.int64)
    np.add.at(squares, inverse, (per_item**2).sum(1))
    totals = np.zeros((len(sets), k), np.int64)
    np.add.at(totals, inverse, per_item)
    for s, members in enumerate(sets.tolist()):
        rated = out.rated.setdefault(tuple(raters[u] for u in members), Rated())
        rated.n += int(n[s])
        rated.squares += int(squares[s])
        for c in np.flatnonzero(totals[s]).tolist():
            rated.totals[names[c]] += int(totals[s, c])


def combined(parts: Iterable[Tallies]) -> Tallies:
    """The tallies of the union of disjoint sets of items."""
    out = Tallies()
    for t in parts:
        out.raters |= t.raters
        out.pairs.update(t.pairs)
        out.predictions.update(t.predictions)
        for members, rated in t.rated.items():
            into = out.rated.setdefault(members, Rated())
            into.n, into.squares = into.n + rated.n, into.squares + rated.squares
            into.totals.update(rated.totals)
    return out


def per_category(confusion: np.ndarray, names: Names, categories: Names) -> dict[str, float | None]:
    """Per category, the kappa of "this category or not" (`names` the confusion's categories; a
    category nobody gave: both raters constant on "not", None)."""
    n = int(confusion.sum())
    out: dict[str, float | None] = {}
    index = {c: i for i, c in enumerate(names)}
    for c in categories:
        if c not in index:
            out[c] = kappa(np.array([[0, 0], [0, n]]))
            continue
        i = index[c]
        yy, row, col = int(confusion[i, i]), int(confusion[i].sum()), int(confusion[:, i].sum())
        out[c] = kappa(np.array([[yy, row - yy], [col - yy, n - row - col + yy]]))
    return out


def answer(t: Tallies, categories: Sequence[str]) -> dict[str, Any]:
    """Every pair of raters' agreement over the items both rated, Fleiss' kappa over the items
    every rater rated (more than two raters), and labels against predictions."""
    by_pair: dict[tuple[str, str], list[tuple[str, str, int]]] = {}
    for (a, b, ca, cb), n in t.pairs.items():
        by_pair.setdefault((a, b), []).append((ca, cb, n))
    users = sorted(t.raters)
    pairs = []
    for a, b in combinations(users, 2):
        if (a, b) in by_pair:
            pairs.append({"a": a, "b": b, **_named_pair(by_pair[(a, b)], categories)})
    fl = None
    if len(users) > 2:
        rated = t.rated.get(tuple(users), Rated())
        totals = [rated.totals[c] for c in sorted(rated.totals)]
        fl = {"users": users, "n": rated.n, "kappa": fleiss(rated.n, len(users), rated.squares, totals)}
    predictions = [(a, b, n) for (a, b), n in t.predictions.items()]
    return {
        "users": {"pairs": pairs, "fleiss": fl},
        "predictions": _named_pair(predictions, categories) if predictions else None,
    }


def _named_pair(counts: list[tuple[str, str, int]], categories: Sequence[str]) -> dict[str, Any]:
    """Agreement of two raters from how many items each pair of their categories counts."""
    names = sorted({x for a, b, _ in counts for x in (a, b)})
    index = {c: i for i, c in enumerate(names)}
    confusion = np.zeros((len(names), len(names)), np.int64)
    for a, b, n in counts:
        confusion[index[a], index[b]] += n
    return {
        "n": int(confusion.sum()),
        "kappa": kappa(confusion),
        "per_category": per_category(confusion, names, categories),
    }
