"""The training rule by label count: macro F1 on the MoNuSeg image left out, for random label
sets of 20-400 (and more), trained by the product's rule (histolabel.learning.training.config_for)
against the earlier trainer (20% held out at every size, early stopping with patience 10, refit).

    python bench/trainer_rule.py [--quick]     # --quick: 1 fold, 2 seeds, sizes up to 400

Also times the rule on 10^5 labelled 29-d vectors (synthetic, two Gaussian blobs).
Ends with `name: value` lines: `<size>_old_f1`, `<size>_new_f1`, `<size>_new_minus_old`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from histolabel.learning import models, simulation, training  # noqa: E402

OLD = training.TrainConfig()  # the earlier product trainer: split at every size


def score(res: training.TrainResult, test: simulation.LabeledImage) -> float:
    pred = models.predict_mc(res.model, test.x, samples=1)[0].argmax(axis=1)
    return simulation.macro_f1(test.y, pred)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/labeled/monuseg")
    args = ap.parse_args(argv)
    images = simulation.load_monuseg(args.data)
    sizes = [20, 50, 100, 200, 400] + ([] if args.quick else [1000])
    folds = [0] if args.quick else list(range(len(images)))
    seeds = [0, 1] if args.quick else [0, 1, 2, 3, 4]
    rows: dict[tuple[int, str], list[float]] = {}
    for f in folds:
        pool = simulation.concat([im for j, im in enumerate(images) if j != f])
        for seed in seeds:
            rng = np.random.default_rng([seed, f])
            perm = rng.permutation(pool.y.size)
            for n in sizes:
                idx = perm[:n]
                if np.unique(pool.y[idx]).size < 2:
                    continue
                x, y = pool.x[idx], pool.y[idx]
                new = training.fit_labels(x, y, simulation.CLASSES, seed=seed)
                old = training.train(x, y, simulation.CLASSES, training.TrainConfig(seed=seed))
                rows.setdefault((n, "new"), []).append(score(new, images[f]))
                rows.setdefault((n, "old"), []).append(score(old, images[f]))
                rows.setdefault((n, "old_epochs"), []).append(old.metrics["epochs"])
    print(f"{'labels':>7} {'old F1':>8} {'(sd)':>6} {'new F1':>8} {'(sd)':>6} {'old epochs':>12}")
    for n in sizes:
        o, w, e = rows[(n, "old")], rows[(n, "new")], rows[(n, "old_epochs")]
        print(
            f"{n:>7} {np.mean(o):8.3f} {np.std(o):6.3f} {np.mean(w):8.3f} {np.std(w):6.3f}"
            f" {int(min(e)):>5}-{int(max(e)):<5}"
        )
    rng = np.random.default_rng(0)
    n_big = 20_000 if args.quick else 100_000
    yb = (rng.random(n_big) < 0.3).astype(np.int64)
    xb = (rng.normal(size=(n_big, 29)) + yb[:, None] * 0.8).astype(np.float32)
    t = time.perf_counter()
    big = training.fit_labels(xb, yb, ["a", "b"])
    t_big = time.perf_counter() - t
    for n in sizes:
        o, w = float(np.mean(rows[(n, "old")])), float(np.mean(rows[(n, "new")]))
        print(f"{n}_old_f1: {o:.4f}")
        print(f"{n}_new_f1: {w:.4f}")
        print(f"{n}_new_minus_old: {w - o:+.4f}")
    print(f"train_{n_big}_labels_seconds: {t_big:.2f}")
    print(f"train_{n_big}_labels_epochs: {big.metrics['epochs']}")
    print(f"train_{n_big}_heldout_macro_f1: {big.metrics['macro_f1']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
