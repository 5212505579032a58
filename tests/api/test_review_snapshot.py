"""Review of every slide from the project's review snapshot: projects made by the scale
generator (the product's own events, tables and predictions) in the local cloud, served by the
app in-process. A review page over every slide reads the snapshot and the slides labeled since,
so its store calls do not grow with the slides; what it answers, and what each slide's review
answers, is every slide's rows read fresh, after new labels, a merge and a new predictions round."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pyarrow as pa

from histolabel.api import review_table
from tests.api.test_scale import scale_api, store_calls  # noqa: F401  (the fixture)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


def all_rows(call: Any, pid: str, user: str, query: str = "") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = ""
    while True:
        r = call("GET", f"/projects/{pid}/review?limit=500&sort=slide{query}{cursor}", user)
        assert r.status_code == 200, r.body
        out += r.json_body["items"]
        if not r.json_body["next_cursor"]:
            return out
        cursor = f"&cursor={r.json_body['next_cursor']}"


def label_unlabeled(call: Any, pid: str, slide: str, user: str, category: str, superpixels: int) -> None:
    """`user` labels the slide's first superpixel nobody labeled yet, through the API."""
    have = call.svc.slide_labels_current(pid, slide).entries
    sp = next(i for i in range(1, superpixels + 1) if i not in have)
    r = call("POST", f"/projects/{pid}/slides/{slide}/labels", user,
             {"category_id": category, "ids": [sp], "source": "click"})  # fmt: skip
    assert r.status_code in (200, 201), r.body


def per_slide(call: Any, pid: str, user: str, slides: list[str]) -> list[dict[str, Any]]:
    """Each slide's own review pages, which must equal every slide's rows read fresh."""
    from chalicelib import views

    svc = call.svc
    state = svc.project_state(pid)
    fresh = review_table.to_rows(review_table.resolved(views.slides_table(svc, state, slides), state.resolve))
    fresh.sort(key=lambda r: (r["slide_id"], r["id"]))
    served = [row for s in sorted(slides) for row in all_rows(call, pid, user, f"&slide={s}")]
    assert [{k: v for k, v in r.items() if k != "bbox"} for r in served] == fresh
    return served


def test_review_of_every_slide_reads_the_snapshot_and_the_slides_labeled_since(scale_api) -> None:  # noqa: F811
    from chalicelib import views
    from scale_data import generate, publish_predictions

    svc = scale_api.svc
    calls: dict[int, int] = {}
    for slides in (2, 8):
        made = generate(svc, slides, 1000, labeled=0.05, annotators=2, predictions=False)
        publish_predictions(svc, made)
        pid, reviewer = made.project_id, made.reviewer
        first = all_rows(scale_api, pid, reviewer)  # no snapshot yet: every slide read, one written
        assert first and first == per_slide(scale_api, pid, reviewer, made.slides)
        assert all(r["prediction"] is not None for r in first)
        path = f"/projects/{pid}/review?limit=50&sort=certainty&order=asc"
        page, calls[slides] = store_calls(lambda p=path, u=reviewer: scale_api("GET", p, u))
        assert page.status_code == 200 and page.json_body["total"] == len(first)
        certainty = [r["certainty"] for r in page.json_body["items"]]
        assert certainty == sorted(certainty)
        # A slide nobody labeled since the snapshot is served from it too, not from its buckets.
        one = f"/projects/{pid}/review?limit=50&slide={made.slides[0]}"
        _, one_calls = store_calls(lambda p=one, u=reviewer: scale_api("GET", p, u))
        assert one_calls <= calls[slides], (one_calls, calls)
    # The marks' Query, the snapshot's conditional GET and the page's geometry: none per slide.
    assert calls[8] <= calls[2], calls

    # A label given after the snapshot is in the next page, read from its slide alone.
    state = svc.project_state(pid)
    cats = sorted(state.categories)
    slide = made.slides[3]
    labeled = svc.slide_labels_current(pid, slide).entries
    new_id = next(i for i in range(1, 1001) if i not in labeled)
    user = made.annotators[0]
    r = scale_api("POST", f"/projects/{pid}/slides/{slide}/labels", user,
                  {"category_id": cats[0], "ids": [new_id], "source": "click"})  # fmt: skip
    assert r.status_code in (200, 201), r.body
    after = all_rows(scale_api, pid, reviewer)
    assert (slide, new_id, cats[0]) in {(r["slide_id"], r["id"], r["label"]) for r in after}
    assert len(after) == len(first) + 1
    assert after == per_slide(scale_api, pid, reviewer, made.slides)

    # While annotators label, each review reads the slides labeled since this container's last
    # one, not every slide labeled since the snapshot was stored: the second costs no more.
    def label_new(sid: str) -> None:
        label_unlabeled(scale_api, pid, sid, user, cats[1], 1000)

    def label_then_review(k: int) -> int:
        label_new(made.slides[k])
        page, n = store_calls(lambda: scale_api("GET", path, reviewer))
        assert page.status_code == 200 and page.json_body["total"] == len(first) + k - 2
        return n

    one_labeled = label_then_review(4)
    assert label_then_review(5) <= one_labeled, one_labeled
    # A slide's own review brings the copy up to date too: every slide's next costs no read of it.
    label_then_review(6)
    label_new(made.slides[7])
    one = f"/projects/{pid}/review?limit=50&slide={made.slides[7]}"
    assert scale_api("GET", one, reviewer).status_code == 200
    page, n = store_calls(lambda: scale_api("GET", path, reviewer))
    assert page.status_code == 200 and n <= calls[8], (n, calls)
    after = all_rows(scale_api, pid, reviewer)
    assert len(after) == len(first) + 5
    assert after == per_slide(scale_api, pid, reviewer, made.slides)

    # A merge changes no label event: the snapshot's categories are resolved as the project
    # knows them when it is read.
    r = scale_api("POST", f"/projects/{pid}/categories/merge", made.owner,
                  {"sources": [cats[0]], "target": cats[1]})  # fmt: skip
    assert r.status_code == 200, r.body
    merged = all_rows(scale_api, pid, reviewer)
    assert cats[0] not in {r["label"] for r in merged} | {r["prediction"] for r in merged}
    assert merged == per_slide(scale_api, pid, reviewer, made.slides)

    # A new predictions round: the rows carry its predictions, not the snapshot's.
    publish_predictions(svc, made, seed=5, version=2)
    fresh = all_rows(scale_api, pid, reviewer)
    assert fresh == per_slide(scale_api, pid, reviewer, made.slides)
    assert [r["certainty"] for r in fresh] != [r["certainty"] for r in merged]
    manifest = views.data.review_manifest(views.review_snapshot_key(pid))
    assert manifest is not None and manifest.meta["predictions"].endswith("|2")


def test_categories_resolve_in_the_table_as_in_the_rows() -> None:
    from histolabel.api.review import rows_for_slide
    from histolabel.projections.labels import SlideLabels

    labels = SlideLabels("p", "s")
    given = {1: ("a", {"u": "a"}), 2: ("b", {"u": "b", "v": "gone"}), 3: ("gone", {"v": "gone"}),
             4: ("c", {})}  # fmt: skip
    review = {"a": "change", "by": "r", "c": "a", "at": "t"}
    for sp, (c, by) in given.items():
        labels.entries[sp] = {"l": {u: [cat, "t"] for u, cat in by.items()}, "c": c, "cb": "u", "ca": "t",
                              "r": review if sp == 2 else None}  # fmt: skip
    preds = {1: ("b", 0.9, 0.8), 3: ("a", 0.5, 0.2)}
    merges = {"a": "b", "b": "b", "c": "c"}  # a merged into b; "gone" deleted

    def resolve(c: str | None) -> str | None:
        return merges.get(c) if c is not None else None

    raw = review_table.from_rows(rows_for_slide(labels, lambda c: c, preds))
    want = rows_for_slide(labels, resolve, preds)
    assert review_table.to_rows(review_table.resolved(raw, resolve)) == want
    # A slice (as a snapshot less the slides read fresh is) resolves its own rows only.
    part = pa.concat_tables([raw.slice(1, 2)])
    assert review_table.to_rows(review_table.resolved(part, resolve)) == want[1:3]


def test_a_snapshot_another_container_stored_costs_the_slides_it_moved(scale_api, monkeypatch) -> None:  # noqa: F811
    # Two containers serving one project: B stores a snapshot after slides were labeled; A's
    # next review takes those slides from it and keeps its own rows (and what is kept under
    # their keys: orders, pages, tallies) for the rest.
    from chalicelib import views
    from scale_data import generate, publish_predictions

    from histolabel.adapters.aws import client
    from histolabel.config import get_settings
    from histolabel.memo import Lru

    svc = scale_api.svc
    made = generate(svc, 6, 400, labeled=0.05, annotators=2, predictions=False)
    publish_predictions(svc, made)
    pid, reviewer, user = made.project_id, made.reviewer, made.annotators[0]
    key = views.review_snapshot_key(pid)
    cats = sorted(svc.project_state(pid).categories)
    path = f"/projects/{pid}/review?limit=50&sort=certainty"

    def label_new(sid: str) -> None:
        label_unlabeled(scale_api, pid, sid, user, cats[1], 400)

    def stored_parts() -> set[str]:
        s3, prefix = client("s3", get_settings()), f"projects/{pid}/review/parts/"
        listed = s3.list_objects_v2(Bucket=get_settings().data_bucket, Prefix=prefix)
        return {o["Key"] for o in listed.get("Contents", [])}

    def review() -> dict[str, Any]:
        page = scale_api("GET", path, reviewer)
        assert page.status_code == 200, page.body
        work = views._WORKING.get(key)
        assert work is not None
        return {s: p[0] for s, p in work.parts.items()}

    a_keys = review()  # A: no snapshot yet, so it stores one
    a_copy = views._WORKING
    first_etag = views.data.review_manifest(key).etag
    label_new(made.slides[0])
    label_new(made.slides[1])
    monkeypatch.setattr(views, "_WORKING", Lru(8))  # container B
    monkeypatch.setattr(views, "SNAPSHOT_AFTER", 2)
    first_parts = views.data.review_manifest(key).meta["parts"]
    assert sorted(first_parts) == sorted(made.slides) and stored_parts() == set(first_parts.values())
    review()  # B reads two slides fresh and stores the snapshot anew: their rows only
    assert views.data.review_manifest(key).etag != first_etag
    parts = views.data.review_manifest(key).meta["parts"]
    assert [s for s in made.slides if parts[s] != first_parts[s]] == made.slides[:2]
    assert stored_parts() == set(parts.values())  # the replaced objects deleted
    label_new(made.slides[2])
    monkeypatch.setattr(views, "_WORKING", a_copy)  # back on A
    monkeypatch.setattr(views, "SNAPSHOT_AFTER", 16)
    now = review()
    assert all(now[s] == a_keys[s] for s in made.slides[3:]), (now, a_keys)
    assert all(now[s] != a_keys[s] for s in made.slides[:3])
    assert all_rows(scale_api, pid, reviewer) == per_slide(scale_api, pid, reviewer, made.slides)
    # A container starting while a newer snapshot deletes an object it was about to fetch
    # reads that slide fresh.
    s3, bucket = client("s3", get_settings()), get_settings().data_bucket
    s3.delete_object(Bucket=bucket, Key=parts[made.slides[4]])
    monkeypatch.setattr(views, "_WORKING", Lru(8))  # container C
    assert all_rows(scale_api, pid, reviewer) == per_slide(scale_api, pid, reviewer, made.slides)
    # Each store writes its moved slides as one object; once the objects still named hold more
    # rows than WASTE per row named, every slide goes into one object anew.
    monkeypatch.setattr(views, "SNAPSHOT_AFTER", 1)
    monkeypatch.setattr(views, "WASTE", 1)
    label_new(made.slides[0])  # the object B stored now names slide 1's rows only
    review()
    parts = views.data.review_manifest(key).meta["parts"]
    assert len(set(parts.values())) == 1 and stored_parts() == set(parts.values())
    assert all_rows(scale_api, pid, reviewer) == per_slide(scale_api, pid, reviewer, made.slides)
