"""Agreement: Cohen's kappa between two raters, Fleiss' kappa for more, and per category the
kappa of "this category or not", from counts: each pair of raters' confusion matrix and each
item's category counts, built with array operations over the ratings (item, rater, category
codes), so a project's 10^6 ratings cost a sort and a few bincounts, not a Python loop per item."""

from __future__ import annotations

from collections.abc import Sequence
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


def per_category(confusion: np.ndarray, names: Names, categories: Names) -> dict[str, float | None]:
    """Per category, the kappa of "this category or not" (a category nobody gave: both raters
    constant on "not", None)."""
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


def pair_agreement(a: np.ndarray, b: np.ndarray, names: Names, categories: Names) -> dict[str, Any]:
    """Two raters' agreement over the items both rated: `a` and `b` their category codes
    (indices into `names`), item by item."""
    k = len(names)
    confusion = np.bincount(a.astype(np.int64) * k + b, minlength=k * k).reshape(k, k)
    return _pair(confusion, names, categories)


def _pair(confusion: np.ndarray, names: Sequence[str], categories: Sequence[str]) -> dict[str, Any]:
    return {
        "n": int(confusion.sum()),
        "kappa": kappa(confusion),
        "per_category": per_category(confusion, names, categories),
    }


def fleiss_kappa(counts: np.ndarray) -> float | None:
    """Fleiss' kappa of an items x categories matrix of counts, every item rated by the same
    number (>= 2) of raters."""
    n = counts.shape[0]
    if n == 0:
        return None
    m = int(counts[0].sum())
    if m < 2 or np.any(counts.sum(1) != m):
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings per item")
    p_bar = int((counts.astype(np.int64) ** 2).sum() - n * m) / (m * (m - 1)) / n
    totals = counts.sum(0)
    p_e = sum((int(t) / (n * m)) ** 2 for t in totals if t)
    if p_e >= 1.0:
        return None
    return (p_bar - p_e) / (1.0 - p_e)


def user_agreement(
    item: np.ndarray, rater: np.ndarray, code: np.ndarray, raters: Sequence[str], names: Sequence[str],
    categories: Sequence[str],
) -> dict[str, Any]:  # fmt: skip
    """Every pair of raters' agreement over the items both rated, and Fleiss' kappa over the
    items all of them rated (more than two raters). One rating per (item, rater): `item` any
    integer key, `rater` an index into `raters` (in name order), `code` into `names`."""
    k, r = len(names), len(raters)
    order = np.lexsort((rater, item))
    item, rater, code = item[order], rater[order], code[order]
    starts = np.flatnonzero(np.r_[True, item[1:] != item[:-1]])
    sizes = np.diff(np.r_[starts, len(item)])
    # The pairs within each item, for items of each size at once: (rater a, rater b, a's, b's).
    keys = []
    for g in np.unique(sizes[sizes >= 2]):
        at = starts[sizes == g][:, None] + np.arange(g)
        for p, q in combinations(range(int(g)), 2):
            ua, ub = rater[at[:, p]].astype(np.int64), rater[at[:, q]].astype(np.int64)
            keys.append(((ua * r + ub) * k + code[at[:, p]]) * k + code[at[:, q]])
    none = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    found, counts = np.unique(np.concatenate(keys), return_counts=True) if keys else none
    pairs_of = found // (k * k)
    pairs = []
    for a, b in combinations(range(r), 2):
        lo, hi = np.searchsorted(pairs_of, [a * r + b, a * r + b + 1])
        if lo == hi:
            continue
        confusion = np.zeros(k * k, np.int64)
        confusion[(found[lo:hi] % (k * k)).astype(np.int64)] = counts[lo:hi]
        pairs.append({"a": raters[a], "b": raters[b], **_pair(confusion.reshape(k, k), names, categories)})
    fleiss = None
    present = sorted(set(rater.tolist()))
    if len(present) > 2:
        # Rated by every rater that rated anything (those with none are not among `raters`' users).
        whole = starts[sizes == len(present)]
        at = whole[:, None] + np.arange(len(present))
        per_item = np.zeros((len(whole), k), np.int64)
        np.add.at(per_item, (np.repeat(np.arange(len(whole)), len(present)), code[at].ravel()), 1)
        fleiss = {
            "users": [raters[u] for u in present],
            "n": len(whole),
            "kappa": fleiss_kappa(per_item) if len(whole) else None,
        }
    return {"pairs": pairs, "fleiss": fleiss}
