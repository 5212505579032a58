"""A review page at the target's size of rows, held in memory as the API holds them: 500 slides
x 20,000 labeled superpixels (2% of 10^6) = 10^7 rows (--quick: 100 x 2,000).

The rows: a project made by the scale generator (bench/scale_data.py: real superpixel tables,
clustered labels, published predictions) in the local cloud, read through the API's own review
path (chalicelib.views.review_rows_table), each slide's rows then tiled (ids shifted) until a
slide holds the target's count, and the slides repeated until the project holds the target's.

Timed, each after one slide's rows changed (a label: that slide's part under a new key):
- `page`: the review page over every slide (sort by certainty, 50 rows), as the API serves it
  (histolabel.api.review_table.page over a table per slide, each slide's order kept);
- the baseline in the same run: the whole table resolved, filtered and sorted, which is what a
  page cost before rows were kept per slide, and what every first page after a label would cost.
Also the page again with nothing changed (every order kept), and a page deep in the list; and
agreement (every pair of members, Fleiss', labels against predictions) after each label, as the
API answers it (review_table.agreement_over: each slide's tallies kept, summed) against the
whole table's tallies in the same run. And storing the review snapshot anew once 16 slides
moved (views.SNAPSHOT_AFTER): their rows as the one part the API writes (views._store's table
in chalicelib.data.put_review_part's Parquet), against the whole table as one object (what a
store cost before the snapshot was kept in parts).

    python bench/review_rows.py [--quick] [--slides 500] [--rows-per-slide 20000]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions"), str(ROOT / "bench")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100 slides x 2,000 rows (under a minute)")
    ap.add_argument("--slides", type=int, default=500)
    ap.add_argument("--rows-per-slide", type=int, default=20_000)
    ap.add_argument("--changes", type=int, default=10, help="pages timed, each after one slide changed")
    args = ap.parse_args(argv)
    slides, per_slide = (100, 2_000) if args.quick else (args.slides, args.rows_per_slide)
    if slides < 2 or per_slide < 1 or args.changes < 1:
        print("error: --slides >= 2, --rows-per-slide >= 1, --changes >= 1", file=sys.stderr)
        return 2

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from api import percentile
    from chalicelib import views
    from scale_data import generate, local_cloud, publish_predictions

    from histolabel.api import review_table
    from histolabel.api.schemas import ReviewQuery

    t0 = time.perf_counter()
    with local_cloud("reviewrows") as svc:
        made = generate(svc, 4, 10_000, labeled=0.05, predictions=False)
        publish_predictions(svc, made)
        state = svc.project_state(made.project_id)
        served = views.review_rows_table(svc, state)
    print(f"source project: {sum(t.num_rows for _, t in served.parts.values())} rows on {len(served.parts)} "
          f"slides, read through the API's review path in {time.perf_counter() - t0:.1f} s")  # fmt: skip

    def tiled(table: pa.Table, n: int) -> pa.Table:
        reps = -(-n // table.num_rows)
        parts = []
        span = int(pc.max(table.column("id")).as_py()) + 1
        for k in range(reps):
            ids = pc.add(table.column("id"), pa.scalar(k * span, pa.int64()))
            parts.append(table.set_column(table.schema.get_field_index("id"), "id", ids))
        return pa.concat_tables(parts).slice(0, n).combine_chunks()

    sources = [tiled(t, per_slide) for _, t in served.parts.values()]

    def as_slide(table: pa.Table, name: str) -> pa.Table:
        col = pa.array(np.full(table.num_rows, name, dtype=object), pa.string())
        return table.set_column(table.schema.get_field_index("slide_id"), "slide_id", col)

    names = [f"slide-{i:04d}" for i in range(slides)]
    parts = {s: (("k0", s), as_slide(sources[i % len(sources)], s)) for i, s in enumerate(names)}
    rows = review_table.Rows(parts, state.resolve, "cats")
    total = slides * per_slide
    print(f"rows in memory: {total} ({sum(t.nbytes for _, t in parts.values()) / 2**20:.0f} MB)")
    q = ReviewQuery(sort="certainty", order="asc", limit=50)

    cats = [c.id for c in state.live_categories()]
    first = time.perf_counter()
    review_table.page(rows, q)
    first_s = time.perf_counter() - first
    first = time.perf_counter()
    review_table.agreement_over(rows, cats)
    first_agreement_s = time.perf_counter() - first
    page_ms, base_ms, kept_ms, agree_ms, agree_base_ms = [], [], [], [], []
    rng = np.random.default_rng(0)
    for k in range(args.changes):
        changed = names[int(rng.integers(slides))]
        table = rows.parts[changed][1]
        # A label: the slide's rows under a new key (one certainty changed, as a new label's row).
        cert = table.column("certainty").to_numpy(zero_copy_only=False).copy()
        cert[int(rng.integers(len(cert)))] = -1.0 - k
        table = table.set_column(table.schema.get_field_index("certainty"), "certainty", pa.array(cert))
        parts = {**rows.parts, changed: ((f"k{k + 1}", changed), table)}
        rows = review_table.Rows(parts, state.resolve, "cats")
        t0 = time.perf_counter()
        got = review_table.page(rows, q)
        page_ms.append(1000 * (time.perf_counter() - t0))
        assert got["items"][0]["slide_id"] == changed and got["total"] == total, got["items"][0]
        t0 = time.perf_counter()
        review_table.page(rows, q)
        kept_ms.append(1000 * (time.perf_counter() - t0))
        t0 = time.perf_counter()
        agreed = review_table.agreement_over(rows, cats)
        agree_ms.append(1000 * (time.perf_counter() - t0))
        if k < 3:  # the baselines are slow at 10^7 rows: three samples
            t0 = time.perf_counter()
            every = pa.concat_tables([rows.parts[s][1] for s in sorted(rows.parts)])
            whole = review_table.resolved(every, state.resolve)
            assert review_table.agreement_of(whole, cats) == agreed
            agree_base_ms.append(1000 * (time.perf_counter() - t0))
            t0 = time.perf_counter()
            whole = review_table.resolved(every, state.resolve)
            chosen, _ = review_table.ordered(review_table.selected(whole, q), q)
            base = review_table.to_rows(chosen.slice(0, q.limit))
            base_ms.append(1000 * (time.perf_counter() - t0))
            assert base == got["items"]
    t0 = time.perf_counter()
    deep = review_table.page(rows, q.model_copy(update={"cursor": "500"}))
    deep_ms = 1000 * (time.perf_counter() - t0)
    assert len(deep["items"]) == q.limit

    def parquet_ms(tables: list[pa.Table]) -> float:
        t0 = time.perf_counter()
        for table in tables:
            pq.write_table(table, io.BytesIO(), compression="zstd")  # as data.put_review_part
        return 1000 * (time.perf_counter() - t0)

    store_ms = parquet_ms([pa.concat_tables([rows.parts[s][1] for s in names[: views.SNAPSHOT_AFTER]])])
    whole_store_ms = parquet_ms([pa.concat_tables([t for _, t in rows.parts.values()])])

    def p95(values: list[float]) -> float:
        return percentile(values, 0.95)

    print(f"first page (every slide ordered): {first_s:.1f} s")
    print(f"review_rows_total: {total}")
    print(f"review_rows_slides: {slides}")
    print(f"page_after_label_p95_ms: {p95(page_ms):.1f}")
    print(f"page_after_label_median_ms: {statistics.median(page_ms):.1f}")
    print(f"whole_table_page_after_label_median_ms: {statistics.median(base_ms):.1f}")
    print(f"page_after_label_vs_whole_table: {statistics.median(page_ms) / statistics.median(base_ms):.3f}")
    print(f"page_unchanged_p95_ms: {p95(kept_ms):.1f}")
    print(f"page_at_cursor_500_ms: {deep_ms:.1f}")
    print(f"first_page_every_slide_ordered_s: {first_s:.2f}")
    print(f"agreement_after_label_p95_ms: {p95(agree_ms):.1f}")
    print(f"agreement_after_label_median_ms: {statistics.median(agree_ms):.1f}")
    print(f"whole_table_agreement_median_ms: {statistics.median(agree_base_ms):.1f}")
    agree_ratio = statistics.median(agree_ms) / statistics.median(agree_base_ms)
    print(f"agreement_after_label_vs_whole_table: {agree_ratio:.3f}")
    print(f"first_agreement_every_slide_tallied_s: {first_agreement_s:.2f}")
    print(f"snapshot_store_moved_slides_ms: {store_ms:.1f}")
    print(f"whole_snapshot_store_ms: {whole_store_ms:.1f}")
    print(f"snapshot_store_vs_whole: {store_ms / whole_store_ms:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
