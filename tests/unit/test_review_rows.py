"""A review page merged from each slide's own order (review_table.page over Rows) is the page of
the whole table in the query's order: every sort, order, grouping and filter, paged through with
its cursors, on random projects; and the ids pages likewise. A slide's order is kept under its
key: a slide whose rows changed under a new key is ordered anew, the others are not."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from histolabel.api import review_table
from histolabel.api.schemas import ReviewIdsQuery, ReviewQuery

SLIDES, CATS, USERS = ["s1", "s2", "s3", "s4"], ["tumor", "stroma", "fat"], ["ana", "bo", "cy"]
MERGES = {"fat": "stroma"}
KEYS = itertools.count()


def resolve(c: str | None) -> str | None:
    return MERGES.get(c, c) if c is not None else None


@st.composite
def rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for slide in draw(st.lists(st.sampled_from(SLIDES), unique=True, max_size=4)):
        for sp in draw(st.lists(st.integers(1, 60), unique=True, max_size=25)):
            by = draw(st.dictionaries(st.sampled_from(USERS), st.sampled_from(CATS), min_size=1, max_size=3))
            action = draw(st.sampled_from([None, "approve", "change"]))
            review = (
                None
                if action is None
                else {"a": action, "by": "rex", "c": draw(st.sampled_from(CATS)), "at": "t"}
            )
            # Few distinct values, so ties across slides are common and the tie-break is tested.
            conf = draw(st.sampled_from([None, 0.25, 0.5, 0.75]))
            out.append({"slide_id": slide, "id": sp, "label": by[min(by)], "labeled_by": min(by),
                        "labeled_at": "t", "labels": by, "review": review,
                        "prediction": draw(st.sampled_from([None, *CATS])), "confidence": conf,
                        "certainty": None if conf is None else 1 - conf})  # fmt: skip
    return out


queries = st.builds(
    ReviewQuery,
    sort=st.sampled_from(["slide", "label", "prediction", "review", "confidence", "certainty"]),
    order=st.sampled_from(["asc", "desc"]),
    group_by=st.sampled_from([None, "slide", "label", "prediction", "review"]),
    label=st.sampled_from([None, "tumor", "stroma"]),
    slide=st.sampled_from([None, None, "s2"]),
    compare=st.sampled_from([None, "matches", "differs"]),
    labeled_by=st.sampled_from([None, "bo"]),
    limit=st.integers(1, 9),
)


def parts_of(given_rows: list[dict[str, Any]], key: str) -> review_table.Rows:
    table = review_table.from_rows(given_rows)
    parts = {s: ((key, s), t) for s, t in review_table.by_slide(table).items()}
    return review_table.Rows(parts, resolve, "merges-1")


def pages(fetch: Any, q: ReviewQuery) -> list[dict[str, Any]]:
    out, cursor = [], None
    while True:
        page = fetch(q.model_copy(update={"cursor": cursor}))
        out.append(page)
        assert page.get("items", page.get("slides")) or page["next_cursor"] is None, page  # moves on
        cursor = page["next_cursor"]
        if cursor is None:
            return out


@settings(max_examples=200, deadline=None)
@given(rows(), queries)
def test_a_page_merged_from_each_slides_order_is_the_whole_tables(given_rows, q) -> None:
    # A key per example: the kept orders are named by it, as by a snapshot's ETag.
    rows_ = parts_of(given_rows, f"example-{next(KEYS)}")
    whole = review_table.resolved(review_table.from_rows(given_rows), resolve)
    want, groups = review_table.ordered(review_table.selected(whole, q), q)
    got = pages(lambda p: review_table.page(rows_, p), q)
    assert [r for p in got for r in p["items"]] == review_table.to_rows(want)
    assert all(p["total"] == want.num_rows for p in got)
    assert all(p["groups"] == groups for p in got)
    # The ids of every match, in (slide, id) order, paged.
    ids_q = ReviewIdsQuery(**q.model_dump(exclude={"limit", "cursor"}), limit=q.limit)
    id_pages = pages(lambda p: review_table.ids(rows_, p), ids_q)
    listed = [(s, i) for p in id_pages for s, ids in p["slides"].items() for i in ids]
    chosen = review_table.selected(whole, q)
    assert listed == sorted(
        zip(chosen.column("slide_id").to_pylist(), chosen.column("id").to_pylist(), strict=True)
    )


def test_a_slide_is_ordered_again_only_under_a_new_key() -> None:
    made = [{"slide_id": s, "id": i, "label": "tumor", "labeled_by": "ana", "labeled_at": "t",
             "labels": {"ana": "tumor"}, "review": None, "prediction": "tumor", "confidence": i / 10,
             "certainty": i / 10} for s in SLIDES for i in range(1, 6)]  # fmt: skip
    rows_ = parts_of(made, "k1")
    q = ReviewQuery(sort="certainty", limit=3)
    first = review_table.page(rows_, q)
    built: list[str] = []
    original = review_table._ordered_rows

    def counting(table, query):
        built.append(table.column("slide_id")[0].as_py())
        return original(table, query)

    review_table._ordered_rows = counting  # type: ignore[assignment]
    try:
        assert review_table.page(rows_, q) == first and built == []
        # s2 relabeled: its rows under a new key, the other slides' orders kept.
        changed = [dict(r, certainty=0.01) if r["slide_id"] == "s2" and r["id"] == 5 else r for r in made]
        s2 = review_table.by_slide(review_table.from_rows([r for r in changed if r["slide_id"] == "s2"]))[
            "s2"
        ]
        again = review_table.Rows({**rows_.parts, "s2": (("k2", "s2"), s2)}, resolve, "merges-1")
        page = review_table.page(again, q)
    finally:
        review_table._ordered_rows = original  # type: ignore[assignment]
    assert built == ["s2"]
    assert (page["items"][0]["slide_id"], page["items"][0]["id"]) == ("s2", 5)
