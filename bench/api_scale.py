"""Queue, review and slide-labels latency against the number of slides: projects made by the
scale generator (bench/scale_data.py) at two scales of the 500-slide x 10^6-superpixel target,
served by the Chalice app in-process against the local cloud (moto: DynamoDB + S3). The
signed-in no-op (/me) is the baseline measured in the same run; each figure's slope in slides
extrapolates to 500 slides.

    python bench/api_scale.py [--quick] [--requests 30] [--scales 100,10]

--scales are divisors of the target (100: 5 slides x 10^4 superpixels). Between them slides and
superpixels per slide both grow, so two more points grow the slides alone (the larger scale's
count of the smaller scale's slides, 50 x 10^4, and 4x that, 200 x 10^4): their slopes say how a
route grows with slides only, and whether it stops growing once past the slides a page touches.
--quick uses 1/1000-size slides at 2, 12 and 48 slides.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions"), str(ROOT / "bench")]

TARGET_SLIDES, TARGET_SUPERPIXELS = 500, 1_000_000
# Measured after predictions.
ROUTES = ("review_slide", "review_all", "review_labeling", "labels", "agreement", "agreement_labeling")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


STORE_CALLS = [0]  # AWS API calls made (DynamoDB, S3, KMS): the per-request cost moto's speed hides


def count_store_calls() -> None:
    import threading

    from botocore.client import BaseClient

    lock, original = threading.Lock(), BaseClient._make_api_call

    def counted(self: Any, operation: str, params: Any) -> Any:
        with lock:
            STORE_CALLS[0] += 1
        return original(self, operation, params)

    BaseClient._make_api_call = counted  # type: ignore[method-assign]


def measure(
    client: Any, keys: Any, made: Any, requests: int, warm: int = 2, only: tuple[str, ...] | None = None
) -> dict[str, list[float]]:
    """Warm each route (a container's first read of a table), then time `requests` calls; the
    store calls each made are kept under "<route>_calls"."""
    pid = made.project_id
    tokens = {u: keys.token(u) for u in [*made.annotators, made.reviewer]}
    timings: dict[str, list[float]] = {}

    def call(kind: str, path: str, user: str, timed: bool = True) -> Any:
        headers = {"Authorization": f"Bearer {tokens[user]}"}
        t0, calls = time.perf_counter(), STORE_CALLS[0]
        r = client.http.request("GET", path, headers=headers, body=b"")
        if timed:
            timings.setdefault(kind, []).append(time.perf_counter() - t0)
            timings.setdefault(f"{kind}_calls", []).append(STORE_CALLS[0] - calls)
        if r.status_code >= 400:
            raise RuntimeError(f"{kind} {path}: {r.status_code} {r.body[:300]!r}")
        return r

    slides = made.slides
    routes = {
        "me": lambda k: "/me",
        "queue": lambda k: f"/projects/{pid}/queue?n=20",
        # Every slide's first: its warm-up writes the project's review snapshot, which a slide
        # nobody labeled since is then served from (as in a project whose Review has been opened).
        "review_all": lambda k: f"/projects/{pid}/review?limit=50&sort=certainty&order=asc",
        "review_slide": lambda k: f"/projects/{pid}/review?slide={slides[k % len(slides)]}&limit=50",
        "labels": lambda k: f"/projects/{pid}/slides/{slides[k % len(slides)]}/labels",
        "agreement": lambda k: f"/projects/{pid}/agreement",
    }
    for kind, path in routes.items():
        if only is not None and kind not in only:
            continue
        for k in range(requests + warm):
            reviewing = kind in ("review_all", "agreement")
            user = made.reviewer if reviewing else made.annotators[k % len(made.annotators)]
            call(kind, path(k), user, timed=k >= warm)
    if only is None:
        # The review of every slide, and agreement, while annotators label: before each, a label
        # on each of LABELED_BETWEEN slides (untimed), which that review reads fresh beside the
        # snapshot (agreement then reads none: the same rows, a new version).
        from chalicelib.context import SERVICES

        cats = sorted(SERVICES.service.project_state(pid).categories)
        for k in range(requests + warm):
            for j in range(LABELED_BETWEEN):
                n = k * LABELED_BETWEEN + j
                body = json.dumps({"category_id": cats[n % len(cats)], "source": "click",
                                   "ids": [1 + (n * 7919) % made.superpixels]})  # fmt: skip
                user = made.annotators[n % len(made.annotators)]
                r = client.http.request("POST", f"/projects/{pid}/slides/{slides[n % len(slides)]}/labels",
                                        headers={"Authorization": f"Bearer {tokens[user]}",
                                                 "Content-Type": "application/json"}, body=body)  # fmt: skip
                if r.status_code >= 400:
                    raise RuntimeError(f"label: {r.status_code} {r.body[:300]!r}")
            call("review_labeling", routes["review_all"](k), made.reviewer, timed=k >= warm)
            call("agreement_labeling", routes["agreement"](k), made.reviewer, timed=k >= warm)
    return timings


LABELED_BETWEEN = 4  # slides labeled between two reviews of every slide (review_labeling)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="under a minute")
    ap.add_argument("--requests", type=int, default=30, help="timed calls per route and scale")
    ap.add_argument("--scales", default="100,10", help="divisors of 500 x 10^6, smallest project first")
    args = ap.parse_args(argv)
    try:
        divisors = [int(s) for s in args.scales.split(",")]
    except ValueError:
        divisors = []
    if len(divisors) != 2 or min(divisors) < 1 or divisors[0] <= divisors[1] or args.requests < 1:
        print(
            "error: --scales takes two divisors, the larger first (e.g. 100,10); --requests >= 1",
            file=sys.stderr,
        )
        return 2
    if args.quick:
        points = [(2, 1000), (12, 1000)]
        requests, warm = min(args.requests, 5), 1
    else:
        points = [(TARGET_SLIDES // d, TARGET_SUPERPIXELS // d) for d in divisors]
        requests, warm = args.requests, 2
    # Between the two scales slides and superpixels per slide both grow; the points after them
    # grow the slides alone (the larger count of the smaller slides, then 4x it), so the slope in
    # slides is seen, and whether a route bounded by its page stops growing past the slides a page
    # can touch. `start` is the last point of those slides' size, each slope's first baseline.
    (s_a, m_a), (s_b, m_b) = points
    alone = [(s_b, m_a), (4 * s_b, m_a)] if m_a != m_b else [(4 * s_b, m_a)]
    start = points[1] if m_a == m_b else points[0]

    from api import Keys  # bench/api.py: tokens the in-process app verifies
    from app import app
    from chalice.test import Client
    from chalicelib.context import SERVICES
    from scale_data import generate, local_cloud, publish_predictions

    keys = Keys()
    results: dict[tuple[int, int], dict[str, list[float]]] = {}
    made_s: dict[tuple[int, int], float] = {}
    calls: dict[tuple[int, int], dict[str, float]] = {}
    count_store_calls()
    with local_cloud("apiscale") as svc:
        SERVICES.service, SERVICES.pool = svc, keys.pool
        SERVICES.jwks = lambda kid: keys.jwk if kid == "bench" else None
        client = Client(app)
        for slides, superpixels in [*points, *alone]:
            t0 = time.perf_counter()
            made = generate(svc, slides, superpixels, predictions=False)
            made_s[(slides, superpixels)] = time.perf_counter() - t0
            spread = measure(client, keys, made, requests, warm, only=("me", "queue"))
            publish_predictions(svc, made)
            ranked = measure(client, keys, made, requests, warm)
            results[(slides, superpixels)] = {
                "me": spread["me"] + ranked["me"],
                "queue_spread": spread["queue"],
                "queue_model": ranked["queue"],
                **{k: v for k, v in ranked.items() if k in ROUTES},
            }
            calls[(slides, superpixels)] = {
                "queue_spread": statistics.mean(spread["queue_calls"]),
                **{k: statistics.mean(ranked[f"{k}_calls"]) for k in ("queue", *ROUTES)},
            }
            print(f"generated {slides} x {superpixels} in {made_s[(slides, superpixels)]:.1f} s "
                  f"({made.labels} labels, {made.events} label events)")  # fmt: skip
    lines: list[tuple[str, float]] = []
    print(f"{'route':>14} {'p95 ms @' + str(s_a):>12} {'p95 ms @' + str(s_b):>12} {'ms/slide':>9} "
          f"{'@500 ms':>8} {'x me':>6}")  # fmt: skip
    for kind in results[points[0]]:
        a = 1000 * percentile(results[points[0]][kind], 0.95)
        b = 1000 * percentile(results[points[1]][kind], 0.95)
        slope = (b - a) / (s_b - s_a)
        at_target = b + slope * (TARGET_SLIDES - s_b)
        me = 1000 * percentile(results[points[1]]["me"], 0.95)
        print(f"{kind:>14} {a:12.1f} {b:12.1f} {slope:9.2f} {at_target:8.0f} {b / me:6.1f}")
        lines += [
            (f"{kind}_p95_ms_{s_a}_slides", a),
            (f"{kind}_p95_ms_{s_b}_slides", b),
            (f"{kind}_slope_ms_per_slide", slope),
            (f"{kind}_p95_ms_at_500_slides", at_target),
            (f"{kind}_p95_vs_me", b / me),
        ]
    print(f"slides alone, {m_a} superpixels each (slope from the point before):")
    print(f"{'route':>14} " + " ".join(f"{'p95 ms @' + str(n):>12} {'ms/slide':>9}" for n, _ in alone)
          + f" {'@500 ms':>8}")  # fmt: skip
    for kind in results[points[0]]:
        row, (before, a) = [], (start[0], 1000 * percentile(results[start][kind], 0.95))
        for n, m in alone:
            b = 1000 * percentile(results[(n, m)][kind], 0.95)
            slope = (b - a) / (n - before)
            row.append(f"{b:12.1f} {slope:9.2f}")
            lines += [
                (f"{kind}_p95_ms_{n}_slides_of_{m}", b),
                (f"{kind}_slope_ms_per_slide_{before}_to_{n}_of_{m}", slope),
            ]
            before, a = n, b
        at_target = a + slope * (TARGET_SLIDES - before)
        print(f"{kind:>14} " + " ".join(row) + f" {at_target:8.0f}")
        lines.append((f"{kind}_p95_ms_at_500_slides_of_{m_a}", at_target))
    for kind in calls[points[0]]:
        a, b = calls[points[0]][kind], calls[points[1]][kind]
        name = "queue_model" if kind == "queue" else kind
        far = alone[-1]
        c = calls[far][kind]
        print(f"{name:>14} store calls per request: {a:.1f} at {s_a} slides, {b:.1f} at {s_b}, "
              f"{c:.1f} at {far[0]} of {far[1]}")  # fmt: skip
        lines += [(f"{name}_store_calls_{s_a}_slides", a), (f"{name}_store_calls_{s_b}_slides", b),
                  (f"{name}_store_calls_{far[0]}_slides_of_{far[1]}", c)]  # fmt: skip
    print(json.dumps({"points": points, "slides_alone": alone, "requests": requests}))
    for name, value in lines:
        print(f"{name}: {value:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
