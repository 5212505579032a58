"""The real labeling loop, end to end, as a user's session runs it: how fast the product learns.

    python bench/real_loop.py [--quick] [--seeds 5] [--first-seed 0] [--budget 400] [--orders ...]
    python bench/real_loop.py --report [--out DIR]     (recompute the report from a run's files)

Starts the local cloud (histolabel.localcloud.up: moto, the stream runtime with the projector
and training trigger, the API under `chalice local`), signs in through Cognito, and for every
seed x order creates a project `loop-<order>-<seed>` through the API (product defaults but the
certainty metric), uploads the MoNuSeg images of the pool through the presigned upload and
ingests them (the job-events handler chains segment and embed, as after a browser upload). The
simulated annotator then labels in queue order (GET /queue; for `random`, the spread order the
queue serves before any model) through the labels route, answering from the nucleus polygons;
the trigger retrains at the project's threshold, and the annotator waits for the new ranking
before labeling on. Every model is scored (macro F1) on the MoNuSeg image left out (segmented
and embedded by the same jobs in a project of its own).

Then `histolabel simulate`'s driver (simulation.run_curve) replays every project on the same
slides' vectors and truth, under the same project id (so the same spread order) and cadence,
and the report sets the two side by side against the seed-to-seed spread.

--quick: orders random and batchbald, 1 seed, budget 150 (several minutes on a loaded 2-core
machine, not one: every project ingests, segments and embeds its slides through the jobs).

Writes DIR (bench/out/real_loop)/{curves.json,curves.csv,simulated.json,real_loop.png,data/}
after every project; ends with `name: value` lines: `random_f1_at_<budget>`,
`<order>_label_ratio` (labels for the mean curve to reach random's mean F1 at the budget /
budget) with its per-seed values and spread, `<order>_f1_at_200` against `pool_all_f1` (a model
on every pool label), the simulation's `sim_*` figures, `f1_seed_sd` and
`f1_sim_vs_real_mean_abs_diff`, and `threshold_to_ranking_p50_s`/`_p95_s` (the labels POST that
crosses the threshold -> GET /projects shows the new model's predictions) with the median of
each phase (`latency_*`: projector, trigger, job start, the job's own timings, publish).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from histolabel.composition import service_from_env

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATA = ROOT.parent / "shared/data/labeled/monuseg"
ORDERS = ("random", "confidence", "margin", "entropy", "batchbald")
USER = "olivia"


class Api:
    def __init__(self, url: str, login: Any) -> None:
        # Signed in again when the token expires (Cognito's last an hour; a full run takes hours).
        self.url, self.login = url.rstrip("/"), login
        self.token = login()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for attempt in range(5):
            try:
                with urllib.request.urlopen(req, timeout=120) as resp:
                    raw = resp.read()
                    return json.loads(raw) if raw else None
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and attempt < 4:
                    self.token = self.login()
                    req.add_header("Authorization", f"Bearer {self.token}")
                    continue
                if exc.code in (502, 503) and attempt < 4:
                    time.sleep(1 + attempt)
                    continue
                raise RuntimeError(f"{method} {path}: {exc.code} {exc.read()[:300]!r}") from None
        raise AssertionError("unreachable")


def wait_for(what: str, check: Any, timeout: float = 900.0, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = check()
        if out:
            return out
        time.sleep(every)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")


def run_job(api: Api, pid: str, sid: str, job: str) -> None:
    jid = api.call("POST", f"/projects/{pid}/slides/{sid}/jobs", {"job": job})["job_id"]
    status = wait_for(
        f"{job} of {sid}",
        lambda: (
            (s := api.call("GET", f"/projects/{pid}/jobs/{jid}"))["status"] in ("SUCCEEDED", "FAILED") and s
        ),
    )
    if status["status"] != "SUCCEEDED":
        raise RuntimeError(f"{job} of {sid} failed: {status.get('reason')}")


def slide_done(api: Api, pid: str, sid: str, key: str) -> dict[str, Any]:
    def check() -> Any:
        slide = api.call("GET", f"/projects/{pid}/slides/{sid}")
        slide = slide.get("slide", slide)
        return slide if slide.get(key) else None

    out: dict[str, Any] = wait_for(f"{key} of {sid}", check, timeout=900, every=1.0)
    return out


def add_images(api: Api, pid: str, images: list[Path]) -> dict[str, dict[str, Any]]:
    """Upload and ingest through the API; segment and embed follow through the job runner; per
    slide its facts."""
    out = {}
    for path in images:
        sid = path.stem.split("-")[1].lower() + path.stem.split("-")[2].lower()
        reg = api.call(
            "POST", f"/projects/{pid}/slides", {"name": path.name, "filename": path.name, "slide_id": sid}
        )
        up = reg["upload"]
        req = urllib.request.Request(
            up["url"], data=path.read_bytes(), method=up["method"], headers={"Content-Type": "image/tiff"}
        )
        with urllib.request.urlopen(req, timeout=120):
            pass
        # Ingest's success chains segment and embed (the job-events handler, with the project's
        # settings), as after an upload in the browser.
        run_job(api, pid, sid, "ingest")
        out[sid] = {"path": path}
    for sid in out:
        out[sid] = {**slide_done(api, pid, sid, "features"), **out[sid]}
    return out


def truth_for(slide: dict[str, Any]) -> np.ndarray:
    """Per superpixel id (index id-1): 1 when at least half its area lies in nucleus polygons."""
    import zarr

    from histolabel.adapters.s3 import zarr_store
    from histolabel.learning.simulation import nucleus_mask

    labels = np.asarray(
        zarr.open_array(store=zarr_store(f"{slide['segmentation']['labels_uri']}/0", mode="r"))[0]
    )
    n = int(slide["segmentation"]["count"])
    mask = nucleus_mask(slide["path"].with_suffix(".xml"), labels.shape)
    area = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    inside = np.bincount(labels.ravel(), mask.ravel().astype(np.float64), minlength=n + 1)[1:]
    return (inside >= 0.5 * np.maximum(area, 1)).astype(np.int64)


def features_for(slide: dict[str, Any]) -> np.ndarray:
    """The test slide's vectors as the predict job feeds them to a model (per-slide standardized)."""
    from histolabel.adapters import artifacts
    from histolabel.learning.features import column_stats, standardize_with

    x = np.asarray(artifacts.open_features(slide["features"]["handcrafted"]["uri"])[...])
    return standardize_with(x, *column_stats(x))


def score_model(pid: str, version: int, x: np.ndarray, y: np.ndarray) -> float:
    from histolabel.adapters import artifacts
    from histolabel.learning import models, training

    weights, meta = artifacts.read_model(artifacts.model_prefix(pid, version))
    model = models.from_bytes(weights, meta)
    pred_cls = models.predict_mc(model, x, samples=1)[0].argmax(axis=1)
    classes = list(meta["class_ids"])
    truth = np.asarray([classes.index(c) for c in np.where(y == 1, "nucleus", "stroma")])
    return float(training.per_class_scores(truth, pred_cls, classes)["macro_f1"])


@dataclass
class Curve:
    order: str
    seed: int
    project: str = ""
    labels: list[int] = field(default_factory=list)
    f1: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    # Where the latency goes: crossing -> train job submitted (trigger), submitted -> job process
    # done (train + predict, its start-up included), done -> ranking served (events, projector).
    phases: list[dict[str, float]] = field(default_factory=list)


def _epoch(at: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


def job_phases(pid: str, round_at: float, crossed_at: float, served_at: float) -> dict[str, float]:
    """Where one threshold -> ranking latency went, from the project's own events (their `at`)
    and the local job runner's record and log of the train job the trigger submitted:
    request (labels POSTed -> the projector's TrainingRequested), claim (-> the trigger's
    TrainingStarted), start (-> the job's process started), job (process start -> predictions
    published; its `timings:` line splits it), exit (-> process ended), served (published ->
    GET /projects shows them)."""
    from histolabel.events.envelope import project_stream

    events = [e for e in service_from_env().events.read(project_stream(pid)) if _epoch(e.at) >= round_at]

    def first(kind: str) -> Any:
        return next((e for e in events if e.type == kind), None)

    req, claim, pub = first("TrainingRequested"), first("TrainingStarted"), first("PredictionsPublished")
    sub = next((e for e in events if e.type == "JobSubmitted" and e.payload.get("job") == "train"), None)
    if not (req and claim and pub and sub):
        return {}
    jobs = Path(os.environ["HISTOLABEL_LOCAL_DIR"]) / "jobs"
    rec = json.loads((jobs / f"{sub.payload['job_id']}.json").read_text())
    out = {
        "request_s": _epoch(req.at) - crossed_at,
        "claim_s": _epoch(claim.at) - _epoch(req.at),
        "start_s": rec["started_at"] - _epoch(claim.at),
        "job_s": _epoch(pub.at) - rec["started_at"],
        "exit_s": rec.get("stopped_at", served_at) - _epoch(pub.at),
        "served_s": served_at - _epoch(pub.at),
    }
    log = jobs / f"{sub.payload['job_id']}.log"
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith("timings: ")]
    if lines:
        for part in lines[-1].removeprefix("timings: ").split(", "):
            name, value, _unit = part.rsplit(" ", 2)
            out[f"job.{name}_s"] = float(value)
    return out


def run_order(
    api: Api,
    order: str,
    seed: int,
    pool: list[Path],
    test: tuple[np.ndarray, np.ndarray],
    budget: int,
    log: Any,
) -> tuple[Curve, dict[str, dict[str, Any]]]:
    from histolabel.api.queue import spread_queue

    # Named by order and seed alone (the local cloud is new each run): the project id fixes the
    # queue's spread order, and the simulation replays the same project (--compare).
    pid = f"loop-{order}-{seed}"
    metric = "confidence" if order == "random" else order
    api.call("POST", "/projects", {"project_id": pid, "name": f"loop {order} {seed}", "site": "nyc",
                                   "settings": {"certainty_metric": metric}})  # fmt: skip
    for cid in ("stroma", "nucleus"):
        api.call("POST", f"/projects/{pid}/categories", {"name": cid, "category_id": cid})
    slides = add_images(api, pid, pool)
    truth = {sid: truth_for(s) for sid, s in slides.items()}
    threshold = int(api.call("GET", f"/projects/{pid}/training")["threshold"])
    labeled: dict[str, set[int]] = {sid: set() for sid in slides}
    counts = {sid: int(s["segmentation"]["count"]) for sid, s in slides.items()}
    curve = Curve(order, seed, pid)
    version = 0
    total = 0
    while total < budget:
        want = min(threshold, budget - total)
        if order == "random":
            items = [(q.slide_id, q.id) for q in spread_queue(pid, counts, labeled, want)]
        else:
            queue = api.call("GET", f"/projects/{pid}/queue?n={want}")
            items = [(q["slide_id"], int(q["id"])) for q in queue["items"]][:want]
        round_at = time.time()
        by: dict[tuple[str, str], list[int]] = {}
        for sid, i in items:
            by.setdefault((sid, ["stroma", "nucleus"][int(truth[sid][i - 1])]), []).append(i)
            labeled[sid].add(i)
        for (sid, cat), ids in by.items():
            api.call("POST", f"/projects/{pid}/slides/{sid}/labels", {"ids": ids, "category_id": cat})
        crossed, crossed_at = time.monotonic(), time.time()
        total += len(items)

        polls = iter(range(1 << 30))

        def ranked(v: int = version, polls: Any = polls) -> Any:
            pred = api.call("GET", f"/projects/{pid}").get("predictions") or {}
            if int(pred.get("model_version", 0)) > v:
                return pred
            if next(polls) % 10 == 9:  # a failed run ends the wait (checked every 5 s, not every poll)
                runs = api.call("GET", f"/projects/{pid}/training")["runs"]
                if runs and runs[-1]["status"] == "failed":  # the latest run (they come in order)
                    raise RuntimeError(f"training failed in {pid}: {runs[-1]}")
            return None

        # Polled as the web app does, twice a second (4 Hz plus a second GET cost the loaded API
        # process CPU the job needed).
        pred = wait_for(f"the ranking after {total} labels in {pid}", ranked, every=0.5)
        curve.latency.append(time.monotonic() - crossed)
        curve.phases.append(job_phases(pid, round_at, crossed_at, time.time()))
        version = int(pred["model_version"])
        curve.labels.append(total)
        curve.f1.append(score_model(pid, version, *test))
        line = f"{order} seed {seed}: {total} labels -> model v{version}, F1 {curve.f1[-1]:.3f}"
        split = " ".join(f"{k.removesuffix('_s')} {v:.1f}" for k, v in curve.phases[-1].items())
        print(f"{line}, ranking served {curve.latency[-1]:.1f} s after the threshold ({split})", file=log,
              flush=True)  # fmt: skip
    return curve, slides


def pool_all_f1(slides: dict[str, dict[str, Any]], test: tuple[np.ndarray, np.ndarray]) -> float:
    """A model trained (by the loop's rule) on every superpixel of the pool, scored the same way."""
    from histolabel.learning import models, training

    xs, ys = [], []
    for s in slides.values():
        xs.append(features_for(s))
        ys.append(truth_for(s))
    res = training.fit_labels(np.concatenate(xs), np.concatenate(ys), ["stroma", "nucleus"])
    pred = models.predict_mc(res.model, test[0], samples=1)[0].argmax(axis=1)
    return float(training.per_class_scores(test[1], pred, ["stroma", "nucleus"])["macro_f1"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="random and batchbald, 1 seed, budget 150")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed+seeds-1")
    ap.add_argument("--budget", type=int, default=400)
    ap.add_argument("--orders", default=",".join(ORDERS))
    ap.add_argument("--test", type=int, default=0, help="index of the MoNuSeg image left out")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/out/real_loop")
    ap.add_argument(
        "--report", action="store_true", help="only report (and simulate) what --out holds from a run"
    )
    ap.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        help="with --report: first gather these runs' files (other seeds) into --out",
    )
    args = ap.parse_args(argv)
    if args.report:
        if args.merge:
            merge(args.merge, args.out)
        return report(args.out)
    orders = ["random", "batchbald"] if args.quick else [o.strip() for o in args.orders.split(",")]
    seeds = [0] if args.quick else list(range(args.first_seed, args.first_seed + args.seeds))
    budget = 150 if args.quick else args.budget
    images = sorted(args.data.glob("*.tif"))
    # Without random, a run is only part of one (its report comes with --report --merge).
    if len(images) < 2 or not orders or any(o not in ORDERS for o in orders):
        print(f"need >= 2 MoNuSeg images in {args.data} and orders from {ORDERS}", file=sys.stderr)
        return 2
    test_path, pool = images[args.test], [p for i, p in enumerate(images) if i != args.test]
    log = sys.stderr
    t0 = time.perf_counter()
    out = args.out
    (out / "data").mkdir(parents=True, exist_ok=True)
    for old in [out / "curves.json", *(out / "data").glob("*.npz")]:
        old.unlink(missing_ok=True)
    run: dict[str, Any] = {"budget": budget, "orders": orders, "seeds": seeds, "test": test_path.stem,
                           "pool_all_f1": None, "curves": []}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="histolabel-real-loop-") as tmp:
        os.environ["HISTOLABEL_LOCAL_DIR"] = tmp
        from histolabel.adapters import cognito
        from histolabel.localcloud import up as local
        from histolabel.localcloud.stack import free_port

        state = local.up(free_port(), free_port(), free_port(), "local", demo=None, out=io.StringIO())
        try:
            pool_cfg = cognito.Pool(state["user_pool_id"], state["client_id"])
            api = Api(state["api_url"], lambda: cognito.login(pool_cfg, USER, local.DEMO_PASSWORD))
            print(f"local cloud up ({time.perf_counter() - t0:.0f} s)", file=log, flush=True)
            tp = f"loop-test-{uuid.uuid4().hex[:6]}"
            api.call("POST", "/projects", {"project_id": tp, "name": "left out", "site": "nyc"})
            test_slide = next(iter(add_images(api, tp, [test_path]).values()))
            test = (features_for(test_slide), truth_for(test_slide))
            np.savez(out / "data" / "test.npz", x=test[0], y=test[1])
            print(f"test image {test_path.stem}: {test[1].size} superpixels", file=log, flush=True)
            for seed in seeds:
                for order in orders:
                    curve, slides = run_order(api, order, seed, pool, test, budget, log)
                    # What the simulation needs to replay this project: its slides' vectors as
                    # the jobs standardize them and their truth.
                    arrays = {f"x_{sid}": features_for(sl) for sid, sl in slides.items()}
                    arrays.update({f"y_{sid}": truth_for(sl) for sid, sl in slides.items()})
                    np.savez(out / "data" / f"{curve.project}.npz", **arrays)  # type: ignore[arg-type]
                    if run["pool_all_f1"] is None:
                        run["pool_all_f1"] = pool_all_f1(slides, test)
                    run["curves"].append(curve.__dict__)
                    run["seconds"] = time.perf_counter() - t0
                    (out / "curves.json").write_text(json.dumps(run, indent=1))
        except BaseException:
            for name in ("api", "runtime"):
                logf = Path(tmp) / f"{name}.log"
                if logf.exists():
                    print(
                        f"--- {name}.log (tail)",
                        *logf.read_text(errors="replace").splitlines()[-25:],
                        sep="\n",
                        file=log,
                    )
            raise
        finally:
            local.down(out=io.StringIO())
    return report(out)


def merge(runs: list[Path], out: Path) -> None:
    """One run's files from several runs of the same budget and orders (each its own seeds)."""
    import shutil

    parts = [json.loads((d / "curves.json").read_text()) for d in runs]
    if len({(p["budget"], p["test"]) for p in parts}) != 1:
        raise SystemExit("--merge takes runs of one budget and test image")
    (out / "data").mkdir(parents=True, exist_ok=True)
    for d in runs:
        for f in (d / "data").glob("*.npz"):
            if (out / "data" / f.name).resolve() != f.resolve():
                shutil.copy(f, out / "data" / f.name)
    orders = [o for o in ORDERS if any(o in p["orders"] for p in parts)]
    merged = {**parts[0], "seeds": sorted({s for p in parts for s in p["seeds"]}), "orders": orders,
              "curves": [c for p in parts for c in p["curves"]],
              "seconds": max(p.get("seconds", 0) for p in parts)}  # fmt: skip
    (out / "curves.json").write_text(json.dumps(merged, indent=1))


def simulate_same(out: Path, runs: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """`histolabel simulate`'s driver (histolabel.learning.simulation.run_curve) on each real
    project's own slides (the product's segment and embed jobs' output, standardized as the jobs
    do) and test image, under the same project id (so the same spread order) and cadence. A run
    without a real project of its own (`data` names another project's slides) gives the
    simulation's seed-to-seed spread."""
    from histolabel.events.catalogue import ProjectSettings
    from histolabel.learning import simulation as S

    t = np.load(out / "data" / "test.npz")
    test = S.LabeledImage("test", t["x"].astype(np.float32), t["y"].astype(np.int64))
    cfg = S.SimConfig(budget=budget, batch=ProjectSettings().retrain_threshold)
    sims = []
    for c in runs:
        d = np.load(out / "data" / f"{c.get('data', c['project'])}.npz")
        sids = sorted(k[2:] for k in d.files if k.startswith("x_"))
        pool = [S.LabeledImage(s, d[f"x_{s}"].astype(np.float32), d[f"y_{s}"].astype(np.int64)) for s in sids]
        sim = S.run_curve(pool, test, c["order"], c["seed"], cfg, project=c["project"])
        sims.append({"order": c["order"], "seed": c["seed"], "labels": sim.labels, "f1": sim.f1})
    return sims


def _by_order(curves: list[dict[str, Any]], orders: list[str]) -> dict[str, np.ndarray]:
    """F1 [seeds, points] per order, over the labels points every curve of the run has."""
    n = min(len(c["f1"]) for c in curves)
    return {o: np.asarray([c["f1"][:n] for c in curves if c["order"] == o]) for o in orders}


def _ratio(labels: list[int], f1: np.ndarray, target: float) -> float:
    hit = np.flatnonzero(f1 >= target - 1e-9)
    return labels[hit[0]] / labels[-1] if hit.size else float("inf")


def report(out: Path) -> int:
    run = json.loads((out / "curves.json").read_text())
    curves = run["curves"]
    done = sorted({(c["seed"]) for c in curves if all(
        any(d["seed"] == c["seed"] and d["order"] == o for d in curves) for o in run["orders"])})  # fmt: skip
    curves = [c for c in curves if c["seed"] in done]  # seeds with every order
    orders, all_f1 = list(run["orders"]), float(run["pool_all_f1"])
    if not curves or "random" not in orders:
        print("no seed has every order (random included) yet", file=sys.stderr)
        return 1
    n = min(len(c["f1"]) for c in curves)
    labels = curves[0]["labels"][:n]
    real = _by_order(curves, orders)
    t0 = time.perf_counter()
    sims = simulate_same(out, curves, labels[-1])
    sim = _by_order(sims, orders)
    # Five seeds of the simulation on the first project's slides (the pool is the same images
    # through the same jobs in every project): its seed-to-seed spread, however few real seeds.
    first = curves[0]["project"]
    extra = [{"order": o, "seed": s, "project": f"loop-{o}-{s}", "data": first}
             for s in range(5) if s not in done for o in orders]  # fmt: skip
    sim5 = _by_order([*sims, *simulate_same(out, extra, labels[-1])], orders)
    sim_seconds = time.perf_counter() - t0

    with (out / "curves.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["labels", *(f"{o}{k}" for o in orders for k in ("", "_sd", "_sim", "_sim_sd"))])
        for i, n_ in enumerate(labels):
            w.writerow([n_, *(f"{getattr(a[o][:, i], f)():.4f}" for o in orders
                              for a in (real, sim) for f in ("mean", "std"))])  # fmt: skip
    (out / "simulated.json").write_text(json.dumps(sims, indent=1))
    _plot(out, labels, real, sim, orders, all_f1, len(done))

    seeds = len(done)
    print(f"# {seeds} seed(s) {done}, budget {labels[-1]}, orders {','.join(orders)}; mean ± sd over seeds")
    print("labels  " + "  ".join(f"{o:>15}" for o in orders))
    for i, n_ in enumerate(labels):
        print(
            f"{n_:>6}  "
            + "  ".join(f"{real[o][:, i].mean():.3f} ± {real[o][:, i].std():.3f}" for o in orders)
        )
    print("# simulation of the same projects (same slides, features, project ids, cadence)")
    for i, n_ in enumerate(labels):
        print(
            f"{n_:>6}  " + "  ".join(f"{sim[o][:, i].mean():.3f} ± {sim[o][:, i].std():.3f}" for o in orders)
        )
    target = float(real["random"][:, -1].mean())
    sim_target = float(sim["random"][:, -1].mean())
    print(f"random_f1_at_{labels[-1]}: {target:.4f}")
    print(f"sim_random_f1_at_{labels[-1]}: {sim_target:.4f}")
    i200 = labels.index(200) if 200 in labels else None
    for o in orders:
        if o != "random":
            print(f"{o}_f1_at_{labels[-1]}: {real[o][:, -1].mean():.4f}")
        if i200 is not None:
            print(f"{o}_f1_at_200: {real[o][:, i200].mean():.4f}")
            print(f"{o}_f1_at_200_sd: {real[o][:, i200].std():.4f}")
            print(f"{o}_f1_at_200_minus_pool_all: {real[o][:, i200].mean() - all_f1:+.4f}")
    spreads, diffs = [], []
    for o in orders:
        if o == "random":
            continue
        r, r_sim = (
            _ratio(labels, real[o].mean(axis=0), target),
            _ratio(labels, sim[o].mean(axis=0), sim_target),
        )
        per_seed = [_ratio(labels, f, float(t)) for f, t in zip(real[o], real["random"][:, -1], strict=True)]
        finite = [x for x in per_seed if np.isfinite(x)]
        print(f"{o}_label_ratio: {r:.3f}")
        print(f"{o}_label_ratio_per_seed: {' '.join(f'{x:.3f}' for x in per_seed)}")
        print(f"{o}_label_ratio_seed_sd: {np.std(finite) if len(finite) > 1 else float('nan'):.3f}")
        print(f"sim_{o}_label_ratio: {r_sim:.3f}")
    for o in orders:
        spreads.append(float(real[o].std(axis=0).mean()))
        diffs.append(float(np.abs(real[o].mean(axis=0) - sim[o].mean(axis=0)).mean()))
        print(f"{o}_f1_seed_sd_mean: {spreads[-1]:.4f}")
        print(f"{o}_f1_sim_minus_real_mean_abs: {diffs[-1]:.4f}")
    sim5_target = float(sim5["random"][:, -1].mean())
    for o in orders:
        if o != "random":
            print(f"sim5_{o}_label_ratio: {_ratio(labels, sim5[o].mean(axis=0), sim5_target):.3f}")
    sim_spread = float(np.mean([sim5[o].std(axis=0).mean() for o in orders]))
    spread, diff = float(np.mean(spreads)), float(np.mean(diffs))
    print(f"f1_seed_sd: {spread:.4f}" if seeds > 1 else "f1_seed_sd: n/a (one real seed)")
    print(f"sim5_f1_seed_sd: {sim_spread:.4f}")
    print(f"f1_sim_vs_real_mean_abs_diff: {diff:.4f}")
    print(f"sim_vs_real_within_seed_spread: {diff < (spread if seeds > 1 else sim_spread)}")
    lat = np.concatenate([c["latency"] for c in curves])
    print(f"threshold_to_ranking_p50_s: {np.percentile(lat, 50):.1f}")
    print(f"threshold_to_ranking_p95_s: {np.percentile(lat, 95):.1f}")
    phases = [p for c in curves for p in c["phases"] if p]
    for key in sorted({k for p in phases for k in p}):
        print(f"latency_{key.replace('.', '_')}_p50: {np.median([p[key] for p in phases if key in p]):.2f}")
    print(f"pool_all_f1: {all_f1:.4f}")
    print(f"budget: {labels[-1]}")
    print(f"seeds: {seeds}")
    print(f"sim_seconds: {sim_seconds:.0f}")
    print(f"seconds: {run.get('seconds', 0):.0f}")
    return 0


def _plot(
    out: Path,
    labels: list[int],
    real: dict[str, np.ndarray],
    sim: dict[str, np.ndarray],
    orders: list[str],
    all_f1: float,
    seeds: int,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for o in orders:
        mean, sd = real[o].mean(axis=0), real[o].std(axis=0)
        line = ax.errorbar(labels, mean, yerr=sd, marker="o", ms=3, capsize=2, label=o,
                           color="black" if o == "random" else None)  # fmt: skip
        ax.plot(labels, sim[o].mean(axis=0), ls="--", lw=1, color=line[0].get_color())
    ax.axhline(all_f1, color="gray", ls=":", lw=1, label="every pool label")
    ax.set_xlabel("labels (through the API, retrained by the trigger)")
    ax.set_ylabel("macro F1 on the MoNuSeg image left out")
    ax.set_title(f"The real loop (solid, mean ± sd of {seeds} seed(s)); simulation dashed")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "real_loop.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
