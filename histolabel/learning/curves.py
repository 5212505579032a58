"""Learning curves on MoNuSeg: guided labeling (each certainty metric) against random order.

A simulated annotator answers queued superpixels from the nucleus polygons; every retrain
threshold of labels (the project default) the product's train-job training runs, the predict
job's acquisition ranks the pool and the queue route orders it; each model is scored (macro F1,
nucleus vs stroma) on the image left out. Averaged over seeds and folds.

    histolabel simulate [--quick]    (also: python bench/learning_curve.py [--quick])

5 seeds x 3 folds, budget 400; --quick: 1 seed x 1 fold (under a minute).

Writes (by default) bench/out/learning_curve/{curves.json,curves.csv,learning_curve.png}. The goal: every
metric reaches random order's F1 at 400 labels with at most 60% as many labels.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from histolabel.learning import defaults
from histolabel.learning import simulation as S

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    ap = argparse.ArgumentParser(prog=prog, description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, 1 fold")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, default=400)
    ap.add_argument("--batch", type=int, help="labels per retrain (default: the project's retrain threshold)")
    ap.add_argument(
        "--initial",
        type=int,
        help="spread-order labels before the first model (default: --batch)",
    )
    ap.add_argument("--folds", help="images to score on, by index, comma-separated (default: each in turn)")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/data/labeled/monuseg")
    ap.add_argument("--out", type=Path, default=Path("bench/out/learning_curve"))
    args = ap.parse_args(argv)
    console = Console(stderr=True)
    if not args.data.is_dir():
        console.print(f"[red]no labeled images at {args.data}[/red]")
        return 2
    count = sum(
        1 for t in args.data.glob("*.tif") if t.with_suffix(".xml").exists()
    )  # what load_monuseg loads
    folds = [0] if args.quick else list(range(count))
    if args.folds:
        try:
            folds = [int(f) for f in args.folds.split(",")]
        except ValueError:
            folds = [-1]
        if any(not 0 <= f < count for f in folds):
            console.print(f"[red]--folds takes image indexes 0-{count - 1}, got {args.folds!r}[/red]")
            return 2
    t0 = time.perf_counter()
    images = S.load_monuseg(args.data)
    n_sp = sum(i.y.size for i in images)
    console.print(f"{len(images)} images, {n_sp} superpixels ({time.perf_counter() - t0:.1f} s)")
    seeds = [0] if args.quick else list(range(args.seeds))
    cfg = S.SimConfig(initial=args.initial, batch=args.batch, budget=args.budget)
    with console.status("simulating") as status:
        curves = S.simulate(images, seeds=seeds, folds=folds, cfg=cfg, progress=lambda m: status.update(m))
    elapsed = time.perf_counter() - t0
    mean = S.mean_curves(curves)
    labels, random_f1 = mean["random"]
    ref_at = args.budget if args.budget in labels else int(labels[-1])
    target = float(random_f1[list(labels).index(ref_at)])

    table = Table(title=f"macro F1 vs labels ({len(seeds)} seeds x {len(folds)} folds)")
    table.add_column("labels", justify="right")
    for order in S.ORDERS:
        table.add_column(order, justify="right")
    for i, n in enumerate(labels):
        table.add_row(str(n), *(f"{mean[o][1][i]:.3f}" for o in S.ORDERS))
    Console().print(table)

    args.out.mkdir(parents=True, exist_ok=True)
    results = {
        "config": {
            "budget": cfg.budget,
            "initial": cfg.first(),
            "cadence": cfg.cadence(),
            "training": asdict(defaults.TRAINING),
            "acquisition": asdict(defaults.ACQUISITION),
        },
        "seeds": seeds,
        "folds": [images[f].name for f in folds],
        "labels": labels.tolist(),
        "mean_macro_f1": {o: mean[o][1].tolist() for o in S.ORDERS},
        "curves": [{"order": c.order, "seed": c.seed, "labels": c.labels, "f1": c.f1} for c in curves],
    }
    (args.out / "curves.json").write_text(json.dumps(results, indent=1))
    with (args.out / "curves.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["labels", *S.ORDERS])
        for i, n in enumerate(labels):
            w.writerow([n, *(f"{mean[o][1][i]:.4f}" for o in S.ORDERS)])
    _plot(mean, target, ref_at, args.out / "learning_curve.png", len(seeds) * len(folds))

    print(f"random_f1_at_{ref_at}: {target:.4f}")
    ok = True
    for order in S.ORDERS[1:]:
        need = S.labels_to_reach(labels, mean[order][1], target)
        ratio = need / ref_at if need is not None else float("inf")
        ok &= ratio <= 0.6
        print(f"{order}_f1_at_{ref_at}: {mean[order][1][list(labels).index(ref_at)]:.4f}")
        print(f"{order}_labels_to_match_random: {need if need is not None else 'never'}")
        print(f"{order}_label_ratio: {ratio:.2f}")
    # With two classes, confidence, margin and entropy are monotone in each other: same order.
    print(f"all_metrics_within_60pct: {ok}")
    print(f"seconds: {elapsed:.1f}")
    return 0


def _plot(mean: dict, target: float, ref_at: int, path: Path, runs: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for order, (labels, f1) in mean.items():
        ax.plot(labels, f1, marker="o", ms=3, label=order, lw=2.2 if order == "random" else 1.4,
                color="black" if order == "random" else None)  # fmt: skip
    ax.axhline(target, color="gray", ls="--", lw=1)
    ax.axvline(0.6 * ref_at, color="gray", ls=":", lw=1)
    ax.set_xlabel("labels used")
    ax.set_ylabel("macro F1 on held-out image")
    ax.set_title(f"MoNuSeg nucleus vs stroma, linear head, mean of {runs} runs")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
