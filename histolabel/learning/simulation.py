"""Learning-curve simulation: a simulated annotator answers queued superpixels from ground
truth; every `retrain_threshold` labels the model is retrained and scored on a held-out image.
Compares every certainty metric with random (spread) order on the same seeds.

There is no trainer or acquisition of its own here: each round calls the product's train-job
training (`training.fit_labels`), predict-job acquisition (`acquisition.rank_slides` with the
loop's defaults) and the queue route's ordering (`histolabel.api.queue`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from numpy.typing import NDArray
from skimage.segmentation import slic

from histolabel.events.catalogue import ProjectSettings
from histolabel.learning import acquisition, defaults, features, models, training
from histolabel.segmentation.quality import nucleus_ids

CLASSES = ["stroma", "nucleus"]
ORDERS: tuple[str, ...] = ("random", "confidence", "margin", "entropy", "batchbald")


@dataclass(frozen=True)
class LabeledImage:
    name: str
    x: NDArray[np.float32]  # [n, d] features, row i = superpixel i+1
    y: NDArray[np.int64]  # [n] ground-truth class index


def nucleus_mask(xml_path: Path, shape: tuple[int, int]) -> NDArray[np.bool_]:
    """The Aperio XML polygons (<Region><Vertices><Vertex X= Y=/>) as one mask."""
    return nucleus_ids(xml_path, shape) > 0


def load_monuseg(
    folder: Path, *, superpixel_size: int = 20, compactness: float = 10.0, inside: float = 0.5
) -> list[LabeledImage]:
    """Every <name>.tif with its <name>.xml: SLIC superpixels, hand-crafted vectors, and truth
    'nucleus' when at least `inside` of a superpixel's area lies in nucleus polygons."""
    out = []
    for tif in sorted(Path(folder).glob("*.tif")):
        xml = tif.with_suffix(".xml")
        if not xml.exists():
            continue
        rgb = tifffile.imread(tif)[..., :3]
        h, w = rgb.shape[:2]
        labels = slic(
            rgb, n_segments=max(1, h * w // superpixel_size**2), compactness=compactness, start_label=1
        )
        n = int(labels.max())
        mask = nucleus_mask(xml, (h, w))
        area = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        inner = np.bincount(labels.ravel(), mask.ravel().astype(np.float64), minlength=n + 1)[1:]
        y = (inner >= inside * np.maximum(area, 1)).astype(np.int64)
        out.append(
            LabeledImage(tif.stem, features.standardize_per_slide(features.handcrafted(rgb, labels, n)), y)
        )
    return out


@dataclass
class Curve:
    order: str
    seed: int
    labels: list[int] = field(default_factory=list)
    f1: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class SimConfig:
    budget: int = 400
    # Labels between retrains and before the first model; None: the project's default retrain
    # threshold (ProjectSettings.retrain_threshold), as the training trigger applies it.
    batch: int | None = None
    initial: int | None = None

    def cadence(self) -> int:
        return self.batch if self.batch is not None else ProjectSettings().retrain_threshold

    def first(self) -> int:
        return self.initial if self.initial is not None else self.cadence()


def macro_f1(y_true: NDArray[np.int64], y_pred: NDArray[np.int64]) -> float:
    return float(training.per_class_scores(y_true, y_pred, CLASSES)["macro_f1"])


def _gather(
    pool: Sequence[LabeledImage], labeled: dict[str, set[int]]
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    rows = [(im, np.fromiter(sorted(labeled[im.name]), np.int64) - 1) for im in pool]
    return np.concatenate([im.x[r] for im, r in rows]), np.concatenate([im.y[r] for im, r in rows])


def run_curve(
    pool: Sequence[LabeledImage],
    test: LabeledImage,
    order: str,
    seed: int,
    cfg: SimConfig,
    project: str | None = None,
) -> Curve:
    """One annotator's session, driven through the product's own steps: the queue's spread order
    before any model (and throughout for `random`), the train job's `fit_labels`, the predict
    job's MC samples and `acquisition.rank_slides`, and the queue route's `uncertainty_queue`
    with its exclusions; a retrain every `cadence` labels (the training trigger's threshold).
    `seed` only names the project, which fixes its spread order, as a new project would;
    `project` names it instead (to replay a real project: its slides must be the images' names)."""
    from histolabel.api.queue import spread_queue, uncertainty_queue
    from histolabel.api.tables import Predictions

    project = project or f"simulation-{seed}"
    counts = {im.name: int(im.y.size) for im in pool}
    labeled: dict[str, set[int]] = {im.name: set() for im in pool}

    def take(items: Sequence[Any]) -> None:
        for it in items:
            labeled[it.slide_id].add(int(it.id))

    take(spread_queue(project, counts, labeled, cfg.first()))
    curve = Curve(order, seed)
    version = 0
    while True:
        x, y = _gather(pool, labeled)
        n = int(y.size)
        res = None
        if np.unique(y).size >= 2:  # else the train job fails and the old queue stays
            res = training.fit_labels(x, y, CLASSES, "linear")
            version += 1
            pred = models.predict_mc(res.model, test.x, samples=1)[0].argmax(axis=1)
        curve.labels.append(n)
        curve.f1.append(macro_f1(test.y, pred) if res is not None else 0.0)
        if n >= cfg.budget:
            return curve
        k = min(cfg.cadence(), cfg.budget - n)
        if order == "random" or res is None:
            take(spread_queue(project, counts, labeled, k))
            continue
        samples = defaults.ACQUISITION.mc_samples
        mc = {im.name: models.predict_mc(res.model, im.x, samples=samples, seed=version) for im in pool}
        size = defaults.acquisition_size(cfg.cadence())
        ranked = acquisition.rank_slides(mc, labeled, order, size, seed=version)  # type: ignore[arg-type]
        preds = {
            s: Predictions(
                np.arange(1, counts[s] + 1, dtype=np.int64),
                list(CLASSES),
                mc[s].mean(axis=0),
                ranked[s].certainty,
                ranked[s].batch,
                ranked[s].batch_rank,
            )
            for s in counts
        }
        take(uncertainty_queue(preds, labeled, set(), k))


def concat(images: Sequence[LabeledImage]) -> LabeledImage:
    return LabeledImage(
        "+".join(i.name for i in images),
        np.concatenate([i.x for i in images]),
        np.concatenate([i.y for i in images]),
    )


def simulate(
    images: Sequence[LabeledImage],
    *,
    orders: Sequence[str] = ORDERS,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    folds: Sequence[int] | None = None,
    cfg: SimConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Curve]:
    """Curves for every order x seed x fold; fold f scores on image f and labels the others."""
    cfg = cfg or SimConfig()
    if len(images) < 2:
        raise ValueError("the simulation needs at least 2 labeled images (one to score on)")
    out = []
    for f in folds if folds is not None else range(len(images)):
        pool = [im for j, im in enumerate(images) if j != f]
        for seed in seeds:
            for order in orders:
                out.append(run_curve(pool, images[f], order, seed * 1000 + f, cfg))
                if progress:
                    progress(f"fold {f} seed {seed} {order}: F1 {out[-1].f1[-1]:.3f}")
    return out


def mean_curves(curves: Sequence[Curve]) -> dict[str, tuple[NDArray[np.int64], NDArray[np.float64]]]:
    by: dict[str, list[Curve]] = {}
    for c in curves:
        by.setdefault(c.order, []).append(c)
    out = {}
    for order, cs in by.items():
        out[order] = (np.asarray(cs[0].labels), np.mean([c.f1 for c in cs], axis=0))
    return out


def labels_to_reach(labels: NDArray[np.int64], f1: NDArray[np.float64], target: float) -> int | None:
    hit = np.flatnonzero(f1 >= target)
    return int(labels[hit[0]]) if hit.size else None
