"""Agreement from a review table (columnar counts) against the textbook definitions written
over plain lists, on random projects: every pair of members, Fleiss' kappa over the superpixels
all of them labeled, and labels against predictions."""

from __future__ import annotations

from collections import Counter
from itertools import combinations, count

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from histolabel.api import review_table


def cohen(a: list[str], b: list[str]) -> float | None:
    n = len(a)
    if n == 0:
        return None
    po = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    pe = sum(ca[k] * cb[k] for k in ca) / (n * n)
    return None if pe >= 1 else (po - pe) / (1 - pe)


def fleiss(items: list[list[str]]) -> float | None:
    n, m = len(items), len(items[0])
    p_bar = sum((sum(c * c for c in Counter(r).values()) - m) / (m * (m - 1)) for r in items) / n
    totals = Counter(c for r in items for c in r)
    p_e = sum((t / (n * m)) ** 2 for t in totals.values())
    return None if p_e >= 1 else (p_bar - p_e) / (1 - p_e)


def pair(ra: dict, rb: dict, cats: list[str]) -> dict:
    common = sorted(set(ra) & set(rb))
    a, b = [ra[k] for k in common], [rb[k] for k in common]
    binary = {
        c: cohen(["y" if x == c else "n" for x in a], ["y" if y == c else "n" for y in b]) for c in cats
    }
    return {"n": len(common), "kappa": cohen(a, b), "per_category": binary}


def close(got: object, want: object) -> bool:
    if isinstance(want, dict):
        return (
            isinstance(got, dict) and got.keys() == want.keys() and all(close(got[k], want[k]) for k in want)
        )
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(close, got, want))
    if isinstance(want, float):
        return isinstance(got, float) and got == pytest.approx(want, rel=1e-12, abs=1e-12)
    return got == want


USERS, CATS = ["ana", "bo", "cy", "di"], ["tumor", "stroma", "fat", "gone"]


@st.composite
def projects(draw: st.DrawFn) -> list[dict]:
    rows = []
    for slide in ("s1", "s2"):
        for sp in range(draw(st.integers(0, 40))):
            by = draw(st.dictionaries(st.sampled_from(USERS), st.sampled_from(CATS), max_size=4))
            label = draw(st.sampled_from([None, *CATS])) if by else None
            pred = draw(st.sampled_from([None, *CATS[:3]]))
            rows.append({"slide_id": slide, "id": sp, "label": label, "labeled_by": None, "labeled_at": None,
                         "labels": by, "review": None, "prediction": pred, "confidence": None,
                         "certainty": None})  # fmt: skip
    return rows


@settings(max_examples=150, deadline=None)
@given(projects(), st.sampled_from([CATS, CATS[:3], ["tumor"]]))
def test_agreement_of_a_table_is_the_textbook_one(rows: list[dict], cats: list[str]) -> None:
    table = review_table.from_rows(rows)
    got = review_table.agreement_of(table.slice(1) if len(rows) > 3 else table, cats)
    rows = rows[1:] if len(rows) > 3 else rows
    by_user: dict[str, dict] = {}
    for r in rows:
        for u, c in r["labels"].items():
            by_user.setdefault(u, {})[(r["slide_id"], r["id"])] = c
    users = sorted(by_user)
    pairs = [
        {"a": a, "b": b, **p}
        for a, b in combinations(users, 2)
        if (p := pair(by_user[a], by_user[b], cats))["n"]
    ]
    fl = None
    if len(users) > 2:
        common = sorted(set.intersection(*(set(by_user[u]) for u in users)))
        items = [[by_user[u][k] for u in users] for k in common]
        fl = {"users": users, "n": len(items), "kappa": fleiss(items) if items else None}
    both = {(r["slide_id"], r["id"]): r for r in rows if r["label"] and r["prediction"]}
    want_pred = (
        pair({k: r["label"] for k, r in both.items()}, {k: r["prediction"] for k, r in both.items()}, cats)
        if both
        else None
    )
    assert close(got, {"users": {"pairs": pairs, "fleiss": fl}, "predictions": want_pred}), (got, pairs, fl)


def test_a_hand_counted_pair() -> None:
    # ana: tumor x3, stroma; bo agrees on 3 of 4: po 0.75, pe (3*2 + 1*2)/16 = 0.5, kappa 0.5.
    rows = [{"slide_id": "s", "id": i, "label": None, "labeled_by": None, "labeled_at": None,
             "labels": {"ana": a, "bo": b}, "review": None, "prediction": None, "confidence": None,
             "certainty": None}
            for i, (a, b) in enumerate([("tumor", "tumor"), ("tumor", "tumor"), ("tumor", "stroma"),
                                        ("stroma", "stroma")])]  # fmt: skip
    (p,) = review_table.agreement_of(review_table.from_rows(rows), ["tumor", "stroma"])["users"]["pairs"]
    assert (p["a"], p["b"], p["n"]) == ("ana", "bo", 4) and p["kappa"] == pytest.approx(0.5)


KEYS = count()  # the kept tallies are named by their part's key: one per example


def resolve(c: str | None) -> str | None:
    return {"gone": None, "fat": "stroma"}.get(c, c) if c is not None else None


@settings(max_examples=150, deadline=None)
@given(projects(), st.sampled_from([CATS, CATS[:3], ["tumor"]]))
def test_agreement_summed_over_slides_is_the_whole_tables(rows: list[dict], cats: list[str]) -> None:
    # Each slide tallied apart (kept under its key) and summed: the same answer as the whole
    # table's, merges and deletions resolved; a slide changed under a new key is tallied anew.
    table, key = review_table.from_rows(rows), next(KEYS)
    parts = {s: ((key, s), t) for s, t in review_table.by_slide(table).items()}
    by_parts = review_table.Rows(parts, resolve, "merges-1")
    whole = review_table.resolved(table, resolve)
    assert close(review_table.agreement_over(by_parts, cats), review_table.agreement_of(whole, cats))
    if "s1" in parts and rows:
        changed = [
            dict(r, labels={**r["labels"], "di": "tumor"}) if r["slide_id"] == "s1" else r for r in rows
        ]
        s1 = review_table.by_slide(review_table.from_rows([r for r in changed if r["slide_id"] == "s1"]))[
            "s1"
        ]
        again = review_table.Rows({**parts, "s1": (("new", key, "s1"), s1)}, resolve, by_parts.categories)
        want = review_table.agreement_of(
            review_table.resolved(review_table.from_rows(changed), resolve), cats
        )
        assert close(review_table.agreement_over(again, cats), want)
