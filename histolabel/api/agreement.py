"""Agreement: Cohen's kappa between two raters, Fleiss' kappa for more, and per category the
kappa of "this category or not"."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

Ratings = Mapping[tuple[str, int], str]  # (slide, superpixel) -> category


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """None when undefined: no items, or both raters constant on the same single category."""
    n = len(a)
    if n != len(b):
        raise ValueError("rating lists differ in length")
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb.get(k, 0) for k in ca) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(items: Sequence[Sequence[str]]) -> float | None:
    """Every item rated by the same number (>= 2) of raters."""
    if not items:
        return None
    m = len(items[0])
    if m < 2 or any(len(r) != m for r in items):
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings per item")
    n = len(items)
    totals: Counter[str] = Counter()
    p_i = 0.0
    for ratings in items:
        counts = Counter(ratings)
        totals.update(counts)
        p_i += (sum(c * c for c in counts.values()) - m) / (m * (m - 1))
    p_bar = p_i / n
    p_e = sum((t / (n * m)) ** 2 for t in totals.values())
    if p_e >= 1.0:
        return None
    return (p_bar - p_e) / (1.0 - p_e)


def per_category(a: Sequence[str], b: Sequence[str], categories: Sequence[str]) -> dict[str, float | None]:
    return {
        c: cohen_kappa([(x == c and "y") or "n" for x in a], [(y == c and "y") or "n" for y in b])
        for c in categories
    }


def pair_agreement(ra: Ratings, rb: Ratings, categories: Sequence[str]) -> dict[str, Any]:
    common = sorted(set(ra) & set(rb))
    a = [ra[k] for k in common]
    b = [rb[k] for k in common]
    return {"n": len(common), "kappa": cohen_kappa(a, b), "per_category": per_category(a, b, categories)}


def user_agreement(by_user: Mapping[str, Ratings], categories: Sequence[str]) -> dict[str, Any]:
    users = sorted(u for u, r in by_user.items() if r)
    pairs = []
    for ua, ub in combinations(users, 2):
        pair = pair_agreement(by_user[ua], by_user[ub], categories)
        if pair["n"]:
            pairs.append({"a": ua, "b": ub, **pair})
    fleiss = None
    if len(users) > 2:
        common = set.intersection(*(set(by_user[u]) for u in users))
        items = [[by_user[u][k] for u in users] for k in sorted(common)]
        fleiss = {"users": users, "n": len(items), "kappa": fleiss_kappa(items) if items else None}
    return {"pairs": pairs, "fleiss": fleiss}
