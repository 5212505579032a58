"""Export and rebuild at scale: one slide made by the scale generator (bench/scale_data.py) with
every superpixel labeled and its label pyramid written, at two sizes, in the local cloud.

- export: POST /projects/{p}/exports (GeoJSON) through the Chalice app, the export job run by the
  local job runner as Batch would run it, polled through GET .../exports/{job} until its link
  is served; the time from request to link, and superpixels/s.
- rebuild: `histolabel projections rebuild` (histolabel.audit.rebuild.rebuild, write=True) of the
  project: every label event folded from zero, compared with the live projection and put in its
  place; `rebuild_s` with the live projection sound (nothing but summaries to write),
  `rebuild_lost_s` with the slide's projection items deleted first (every bucket written).

Each figure's slope in superpixels extrapolates to 10^6 (the targets: export under 5 min,
rebuild under 60 s). The baselines measured in the same run are reading the slide's
superpixel table (a fixed cost both pay) and, for the rebuild, reading the project's event
history alone (the Queries it starts with), which the rebuild's own work is shown apart from.

    python bench/scale_jobs.py [--quick] [--sizes 10000,100000] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions"), str(ROOT / "bench")]

TARGET = 1_000_000


def run_export(
    client: Any, keys: Any, made: Any, workers: int | None, timeout_s: float = 1800
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {keys.token(made.owner)}", "Content-Type": "application/json"}
    pid = made.project_id
    t0 = time.perf_counter()
    r = client.http.request(
        "POST", f"/projects/{pid}/exports", headers=headers, body=b'{"format": "geojson"}'
    )
    if r.status_code != 202:
        raise RuntimeError(f"POST exports: {r.status_code} {r.body[:300]!r}")
    path = r.json_body["status_path"]
    while time.perf_counter() - t0 < timeout_s:
        s = client.http.request("GET", path, headers=headers, body=b"")
        body = s.json_body
        if body.get("state") == "done" and body.get("url"):
            return {**body, "seconds": time.perf_counter() - t0}
        if body.get("state") == "failed":
            raise RuntimeError(f"export failed: {body}")
        time.sleep(0.5)
    raise RuntimeError("export did not finish in time")


def lose_projection(svc: Any, project_id: str, slide_id: str) -> None:
    """Delete the slide's projection items (its summary and buckets), as if the table were lost."""
    from histolabel.adapters.aws import client
    from histolabel.events.envelope import label_stream

    ddb, table = client("dynamodb", svc.settings), svc.settings.projections_table
    pages = ddb.get_paginator("query").paginate(
        TableName=table, KeyConditionExpression="pk = :p", ProjectionExpression="pk, sk",
        ExpressionAttributeValues={":p": {"S": label_stream(project_id, slide_id)}},
    )  # fmt: skip
    keys = [item for page in pages for item in page["Items"]]
    for start in range(0, len(keys), 25):
        request = {table: [{"DeleteRequest": {"Key": k}} for k in keys[start : start + 25]]}
        while request:
            request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def rebuild_in_memory(n: int) -> int:
    """The rebuild's own cost at n labels (events folded from zero, buckets encoded, items
    written) on in-memory stores, with n/10 as the baseline in the same run."""
    from scale_data import generate

    from histolabel.adapters.memory import InMemoryEventStore, InMemoryProjectionStore
    from histolabel.audit.rebuild import rebuild
    from histolabel.config import Settings
    from histolabel.service import HistoLabel

    times, cpu = {}, {}
    for size in (n // 10, n):
        svc = HistoLabel(Settings(stage="bench"), InMemoryEventStore(), InMemoryProjectionStore())
        made = generate(svc, 1, size, labeled=1.0, predictions=False, files=False)
        t0, c0 = time.perf_counter(), time.process_time()
        events, differences = rebuild(svc, made.project_id, write=True)
        times[size], cpu[size] = time.perf_counter() - t0, time.process_time() - c0
        assert not differences, differences[:3]
        print(f"{size} labels ({events} events): rebuild {times[size]:.1f} s wall, {cpu[size]:.1f} s CPU")
    print(f"rebuild_memory_s_{n // 10}: {times[n // 10]:.2f}")
    print(f"rebuild_memory_s_{n}: {times[n]:.2f}")
    print(f"rebuild_memory_ratio_{n}_vs_{n // 10}: {times[n] / times[n // 10]:.2f}")
    print(f"rebuild_memory_cpu_s_{n // 10}: {cpu[n // 10]:.2f}")
    print(f"rebuild_memory_cpu_s_{n}: {cpu[n]:.2f}")
    print(f"rebuild_memory_labels_per_s: {n / times[n]:.0f}")
    print(f"rebuild_memory_labels_per_cpu_s: {n / cpu[n]:.0f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2000 and 10000 superpixels (under a minute or so)")
    ap.add_argument("--sizes", default="10000,100000", help="two slide sizes, smaller first")
    ap.add_argument("--workers", type=int, help="export job's outline processes (default: its vCPUs)")
    ap.add_argument("--rebuild-memory", type=int, metavar="N",
                    help="only: rebuild one slide of N labels on in-memory stores (the fold and the "
                         "bucket encoding, without the local cloud's I/O), against N/10")  # fmt: skip
    args = ap.parse_args(argv)
    if args.rebuild_memory:
        return rebuild_in_memory(args.rebuild_memory)
    try:
        sizes = [int(v) for v in ("2000,10000" if args.quick else args.sizes).split(",")]
    except ValueError:
        sizes = []
    if len(sizes) != 2 or not 0 < sizes[0] < sizes[1]:
        print("error: --sizes takes two sizes, the smaller first (e.g. 10000,100000)", file=sys.stderr)
        return 2

    from api import Keys
    from app import app
    from chalice.test import Client
    from chalicelib.context import SERVICES
    from scale_data import generate, local_cloud

    from histolabel.adapters.pyramids import read_table
    from histolabel.audit.rebuild import rebuild
    from histolabel.audit.streams import load_history

    # Jobs run as `histolabel local up` runs them: processes started by the local job runner.
    os.environ["HISTOLABEL_JOB_RUNNER"] = "local"
    keys = Keys()
    figures: dict[int, dict[str, float]] = {}
    with local_cloud("scalejobs") as svc:
        SERVICES.service, SERVICES.pool = svc, keys.pool
        SERVICES.jwks = lambda kid: keys.jwk if kid == "bench" else None
        client = Client(app)
        for n in sizes:
            t0 = time.perf_counter()
            made = generate(svc, 1, n, labeled=1.0, label_pyramids=1)
            gen = time.perf_counter() - t0
            t0 = time.perf_counter()
            seg = svc.project_state(made.project_id).slides[made.slides[0]].segmentation
            read_table(seg["table_uri"])
            baseline = time.perf_counter() - t0
            out = run_export(client, keys, made, args.workers)
            t0 = time.perf_counter()
            # (The project stream moved since the generator's own rebuild: the export job's
            # JobSubmitted and JobEnded, with no projector running here.)
            events, _differences = rebuild(svc, made.project_id, write=True)
            rebuilt = time.perf_counter() - t0
            lose_projection(svc, made.project_id, made.slides[0])
            t0 = time.perf_counter()
            rebuild(svc, made.project_id, write=True)
            rebuilt_lost = time.perf_counter() - t0
            # The reads the rebuild starts with (every label stream's events): the emulator's
            # Query pages, a cost a real table pays far faster and a slide's streams in parallel.
            t0 = time.perf_counter()
            load_history(svc, made.project_id)
            history_read = time.perf_counter() - t0
            figures[n] = {
                "export_s": out["seconds"],
                "export_job_cpu_s": out.get("cpu_s") or 0.0,
                "export_mb": out["bytes"] / 2**20,
                "rebuild_s": rebuilt,
                "rebuild_lost_s": rebuilt_lost,
                "history_read_s": history_read,
                "table_read_s": baseline,
            }
            print(f"{n} superpixels: generated in {gen:.1f} s ({made.labels} labels, {made.events} events); "
                  f"export {out['seconds']:.1f} s ({out['rows']} features, {out['bytes'] / 2**20:.1f} MB); "
                  f"rebuild {rebuilt:.1f} s ({events} events), "
                  f"from a lost projection {rebuilt_lost:.1f} s")  # fmt: skip
    a, b = sizes
    lines: list[tuple[str, float]] = []
    for name in ("export_s", "rebuild_s", "rebuild_lost_s"):
        slope = (figures[b][name] - figures[a][name]) / (b - a)
        at_target = figures[b][name] + slope * (TARGET - b)
        lines += [
            (f"{name}_{a}", figures[a][name]),
            (f"{name}_{b}", figures[b][name]),
            (f"{name}_per_100k_superpixels", slope * 100_000),
            (f"{name}_at_1e6_extrapolated", at_target),
            (f"{name[:-2]}_superpixels_per_s_{b}", b / figures[b][name]),
            (f"{name}_{b}_vs_table_read", figures[b][name] / max(figures[b]["table_read_s"], 1e-9)),
        ]
    lines += [(f"export_mb_{b}", figures[b]["export_mb"]), (f"table_read_s_{b}", figures[b]["table_read_s"])]
    # The rebuild less its history read: the fold, the comparison and the writes, what the
    # rebuild itself adds to reading the events.
    own = {n: figures[n]["rebuild_s"] - figures[n]["history_read_s"] for n in sizes}
    own_at_target = own[b] + (own[b] - own[a]) / (b - a) * (TARGET - b)
    lines += [
        (f"rebuild_history_read_s_{b}", figures[b]["history_read_s"]),
        (f"rebuild_s_{b}_vs_history_read", figures[b]["rebuild_s"] / max(figures[b]["history_read_s"], 1e-9)),
        (f"rebuild_less_history_read_s_{b}", own[b]),
        ("rebuild_less_history_read_s_at_1e6_extrapolated", own_at_target),
    ]
    # CPU seconds are what the export costs whatever this host's load: at 10^6 on the job's vCPUs.
    from histolabel.jobs import JOB_SPECS

    cpu_slope = (figures[b]["export_job_cpu_s"] - figures[a]["export_job_cpu_s"]) / (b - a)
    cpu_at_target = figures[b]["export_job_cpu_s"] + cpu_slope * (TARGET - b)
    vcpus = JOB_SPECS["export"].vcpus
    lines += [
        (f"export_job_cpu_s_{a}", figures[a]["export_job_cpu_s"]),
        (f"export_job_cpu_s_{b}", figures[b]["export_job_cpu_s"]),
        ("export_job_cpu_s_at_1e6_extrapolated", cpu_at_target),
        (f"export_s_at_1e6_on_{vcpus}_vcpus_from_cpu", cpu_at_target / vcpus),
    ]
    for name, value in lines:
        print(f"{name}: {value:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
