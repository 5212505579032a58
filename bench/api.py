"""API latency and throughput: N concurrent clients label superpixels and fetch the guided
queue through the Chalice app in-process, against the local cloud (moto: DynamoDB + S3) or an
in-memory store. A no-op route (/health) and a signed-in no-op (/me, token check only) are
measured in the same run as baselines.

    python bench/api.py [--quick] [--clients 8] [--ops 40] [--backend cloud|memory]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from histolabel.composition import service_from_env

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Keys:
    def __init__(self) -> None:
        import jwt
        from cryptography.hazmat.primitives.asymmetric import rsa
        from jwt.algorithms import RSAAlgorithm

        from histolabel.auth.tokens import PoolConfig

        self.pool = PoolConfig("us-east-1", "us-east-1_Bench", "benchclient")
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwk = {**json.loads(RSAAlgorithm.to_jwk(self.key.public_key())), "kid": "bench"}
        self._jwt = jwt

    def token(self, user: str) -> str:
        now = int(time.time())
        claims = {"cognito:username": user, "email": f"{user}@bench.example", "iss": self.pool.issuer,
                  "aud": self.pool.client_id, "token_use": "id", "iat": now, "exp": now + 3600}  # fmt: skip
        return self._jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "bench"})


def setup(backend: str, superpixels: int) -> tuple[Any, Any, str]:
    from histolabel.commands import AddCategory, AddMember, CreateProject, RegisterSlide
    from histolabel.events.catalogue import Actor

    if backend == "cloud":
        from histolabel.adapters.provision import provision
        from histolabel.config import Settings, get_settings, settings_from_env
        from histolabel.localcloud.stack import local_environment, start_server
        from histolabel.service import HistoLabel

        server = start_server(log_path=Path(tempfile.mkdtemp()) / "moto.log")
        import os

        os.environ.update(local_environment(server.endpoint, Settings(stage="bench")))
        get_settings.cache_clear()
        settings = settings_from_env()
        provision(settings)
        svc = service_from_env(settings)
    else:
        from histolabel.adapters.memory import InMemoryEventStore, InMemoryProjectionStore
        from histolabel.config import Settings
        from histolabel.service import HistoLabel

        server = None
        svc = HistoLabel(Settings(stage="bench"), InMemoryEventStore(), InMemoryProjectionStore())
    pid = f"bench{uuid.uuid4().hex[:8]}"
    owner = Actor(user="owner", site="hq")
    svc.execute(CreateProject(project_id=pid, name="bench"), owner)
    for n in range(64):
        svc.execute(
            AddMember(project_id=pid, user=f"client{n}", role="annotator", site=f"site{n % 4}"), owner
        )
    svc.execute(AddCategory(project_id=pid, name="tumor"), owner)
    svc.execute(
        RegisterSlide(project_id=pid, slide_id="s1", name="s1", source_uri="s3://bench-x/s1.svs"), owner
    )
    seg = {"slide_id": "s1", "count": superpixels, "labels_uri": "s3://bench-x/l", "table_uri": "s3://bench-x/t",
           "superpixel_size": 64, "compactness": 10}  # fmt: skip
    svc.record_job_event(pid, "SegmentationCompleted", seg, job="segment")
    return svc, server, pid


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small run (well under a minute)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients (1..64)")
    ap.add_argument("--ops", type=int, default=40, help="label+queue rounds per client")
    ap.add_argument("--backend", choices=["cloud", "memory"], default="cloud")
    ap.add_argument("--superpixels", type=int, default=20_000)
    args = ap.parse_args(argv)
    if not 1 <= args.clients <= 64 or args.ops < 1:
        print("error: --clients must be 1..64 and --ops at least 1", file=sys.stderr)
        return 2
    ops = 8 if args.quick else args.ops

    from app import app
    from chalice.test import Client
    from chalicelib.context import SERVICES
    from rich.console import Console
    from rich.table import Table

    keys = Keys()
    svc, server, pid = setup(args.backend, args.superpixels)
    SERVICES.service, SERVICES.pool = svc, keys.pool
    SERVICES.jwks = lambda kid: keys.jwk if kid == "bench" else None
    client = Client(app)
    tokens = {n: keys.token(f"client{n}") for n in range(args.clients)}
    timings: dict[str, list[float]] = {"noop": [], "auth_noop": [], "queue": [], "label": []}
    failures: list[str] = []

    def timed(kind: str, method: str, path: str, token: str | None = None, body: Any = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        t0 = time.perf_counter()
        r = client.http.request(
            method, path, headers=headers, body=json.dumps(body) if body is not None else b""
        )
        timings[kind].append(time.perf_counter() - t0)
        if r.status_code >= 400:
            failures.append(f"{kind} {r.status_code} {r.body[:200]!r}")
        return r

    def baseline(n: int) -> None:
        for _ in range(ops):
            timed("noop", "GET", "/health")
            timed("auth_noop", "GET", "/me", tokens[n])

    def labeler(n: int) -> None:
        for k in range(ops):
            r = timed("queue", "GET", f"/projects/{pid}/queue?n=5", tokens[n])
            items = r.json_body["items"] if r.status_code == 200 else []
            if items:
                # Clients racing on the same queue head: take one by client number.
                sp = items[n % len(items)]["id"]
                body = {
                    "category_id": "tumor",
                    "ids": [sp],
                    "source": "guided",
                    "idempotency_key": f"c{n}-{k}",
                }
                timed("label", "POST", f"/projects/{pid}/slides/s1/labels", tokens[n], body)

    # The stream projector, as Lambda would run it beside the API, so reads stay near the head.
    import threading

    from histolabel.events.streams import read_after, slide_streams
    from histolabel.projections.projector import Projector

    stop = threading.Event()

    def project() -> None:
        projector, seen = Projector(svc.projections, svc.events), {}
        while not stop.is_set():
            # Every label stream of the slide (one per member), in one run as the runtime does.
            new = list(read_after(svc.events, slide_streams(svc.events, pid, "s1"), seen))
            if new:
                projector.handle_stream(new)
                for event in new:
                    seen[event.stream] = max(seen.get(event.stream, 0), event.seq)
            stop.wait(0.1)

    projector_thread = threading.Thread(target=project, daemon=True)
    projector_thread.start()
    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(baseline, range(args.clients)))
        base_wall = time.perf_counter() - t0
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(labeler, range(args.clients)))
        work_wall = time.perf_counter() - t0
    finally:
        stop.set()
        projector_thread.join(timeout=10)
        if server is not None:
            server.stop()

    table = Table(title=f"API, {args.clients} clients, backend {args.backend}")
    for col in ("route", "calls", "p50 ms", "p95 ms", "p50 / noop"):
        table.add_column(col, justify="right")
    noop_p50 = statistics.median(timings["noop"])
    for kind, values in timings.items():
        if values:
            p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
            table.add_row(
                kind, str(len(values)), f"{1000 * p50:.2f}", f"{1000 * p95:.2f}", f"{p50 / noop_p50:.1f}x"
            )
    Console().print(table)
    if failures:
        print(f"{len(failures)} failed calls, first: {failures[0]}", file=sys.stderr)
    work_calls = len(timings["queue"]) + len(timings["label"])
    print(f"noop_p50_ms: {1000 * noop_p50:.3f}")
    print(f"noop_throughput_rps: {(len(timings['noop']) + len(timings['auth_noop'])) / base_wall:.1f}")
    for kind in ("auth_noop", "queue", "label"):
        print(f"{kind}_p50_ms: {1000 * percentile(timings[kind], 0.5):.2f}")
        print(f"{kind}_p95_ms: {1000 * percentile(timings[kind], 0.95):.2f}")
        print(f"{kind}_p50_vs_noop: {percentile(timings[kind], 0.5) / noop_p50:.1f}")
    print(f"label_queue_throughput_rps: {work_calls / work_wall:.1f}")
    print(f"labels_per_s: {len(timings['label']) / work_wall:.1f}")
    print(f"failed_calls: {len(failures)}")
    rank_ms, base_ms = model_queue_ranking(4 if args.quick else 20, args.superpixels)
    print(f"model_queue_rank_ms: {rank_ms:.2f}")
    print(f"model_queue_rank_vs_argsort: {rank_ms / base_ms:.2f}")
    return 0


def model_queue_ranking(slides: int, per_slide: int, repeats: int = 5) -> tuple[float, float]:
    """The queue's ranking once a model has predicted (histolabel.api.queue over the learning
    queue's guided_order, a quarter of each slide labeled, one category excluded), against a
    plain argsort of every certainty: the floor for any exact least-certain-first order."""
    import numpy as np

    from histolabel.api.queue import uncertainty_queue
    from histolabel.api.tables import Predictions

    rng = np.random.default_rng(0)
    preds, labeled = {}, {}
    for k in range(slides):
        probs = rng.dirichlet(np.ones(4), per_slide).astype(np.float32)
        ids = np.arange(1, per_slide + 1, dtype=np.int64)
        preds[f"s{k:03d}"] = Predictions(ids, ["a", "b", "c", "d"], probs, probs.max(axis=1))
        labeled[f"s{k:03d}"] = set(rng.choice(ids, per_slide // 4, replace=False).tolist())
    everything = np.concatenate([p.certainty for p in preds.values()])

    def best(fn: Any) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return 1000 * min(times)

    return best(lambda: uncertainty_queue(preds, labeled, {"d"}, 10)), best(lambda: np.argsort(everything))


if __name__ == "__main__":
    sys.exit(main())
