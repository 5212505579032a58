"""Learning-curve simulation: a simulated annotator answers queued superpixels from ground
truth; after each round of k labels the model is retrained and scored on held-out images.
Compares every certainty metric with random order on the same seeds."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile
from numpy.typing import NDArray
from skimage.draw import polygon as draw_polygon
from skimage.segmentation import slic

from histolabel.learning import batchbald, certainty, features, models, training

CLASSES = ["stroma", "nucleus"]
ORDERS: tuple[str, ...] = ("random", "confidence", "margin", "entropy", "batchbald")


@dataclass(frozen=True)
class LabeledImage:
    name: str
    x: NDArray[np.float32]  # [n, d] features, row i = superpixel i+1
    y: NDArray[np.int64]  # [n] ground-truth class index


def nucleus_mask(xml_path: Path, shape: tuple[int, int]) -> NDArray[np.bool_]:
    """Rasterize the Aperio XML polygons (<Region><Vertices><Vertex X= Y=/>) into a mask."""
    mask = np.zeros(shape, bool)
    for region in ET.parse(xml_path).getroot().iter("Region"):
        pts = [(float(v.get("Y", 0)), float(v.get("X", 0))) for v in region.iter("Vertex")]
        if len(pts) >= 3:
            ys, xs = zip(*pts, strict=True)
            rr, cc = draw_polygon(np.asarray(ys), np.asarray(xs), shape)
            mask[rr, cc] = True
    return mask


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
    initial: int = 20
    batch: int = 20
    budget: int = 400
    mc_samples: int = 12
    epochs: int = 150
    dropout: float = 0.25
    # BatchBALD pre-filter and joint-configuration budget: pools here are ~4,000 superpixels.
    bb_prefilter: int = 500
    bb_configs: int = 512


def _train(x: NDArray[np.float32], y: NDArray[np.int64], cfg: SimConfig, seed: int) -> training.TrainResult:
    tcfg = training.TrainConfig(
        max_epochs=cfg.epochs, val_fraction=0.0, refit=False, dropout=cfg.dropout, seed=seed
    )
    return training.train(x, y, CLASSES, tcfg)


def macro_f1(y_true: NDArray[np.int64], y_pred: NDArray[np.int64]) -> float:
    return float(training.per_class_scores(y_true, y_pred, CLASSES)["macro_f1"])


def _initial(y: NDArray[np.int64], k: int, rng: np.random.Generator) -> list[int]:
    """Random superpixels until k are drawn and both classes are present (an annotator starts
    by labeling a few obvious examples of each category)."""
    perm = rng.permutation(y.size)
    chosen = list(perm[:k])
    for c in range(len(CLASSES)):
        if not (y[chosen] == c).any():
            chosen.append(int(perm[k:][y[perm[k:]] == c][0]))
    return [int(i) for i in chosen]


def run_curve(pool: LabeledImage, test: LabeledImage, order: str, seed: int, cfg: SimConfig) -> Curve:
    rng = np.random.default_rng(seed)
    labeled = _initial(pool.y, cfg.initial, rng)
    is_labeled = np.zeros(pool.y.size, bool)
    is_labeled[labeled] = True
    random_order = [int(i) for i in rng.permutation(pool.y.size) if not is_labeled[i]]
    curve = Curve(order, seed)
    while True:
        idx = np.asarray(labeled)
        res = _train(pool.x[idx], pool.y[idx], cfg, seed)
        pred = models.predict_mc(res.model, test.x, samples=1)[0].argmax(axis=1)
        curve.labels.append(len(labeled))
        curve.f1.append(macro_f1(test.y, pred))
        if len(labeled) >= cfg.budget:
            return curve
        k = min(cfg.batch, cfg.budget - len(labeled))
        if order == "random":
            picks = [i for i in random_order if not is_labeled[i]][:k]
        else:
            mc = models.predict_mc(res.model, pool.x, samples=cfg.mc_samples, seed=seed + len(labeled))
            if order == "batchbald":
                acq = batchbald.select(
                    mc,
                    k,
                    exclude=is_labeled,
                    seed=seed,
                    prefilter=cfg.bb_prefilter,
                    max_configs=cfg.bb_configs,
                )
                picks = acq.indices.tolist()
            else:
                c = certainty.certainty(order, mc)  # type: ignore[arg-type]
                c[is_labeled] = np.inf
                picks = certainty.least_certain(c, k).tolist()
        for i in picks:
            is_labeled[i] = True
            labeled.append(int(i))


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
        pool = concat([im for j, im in enumerate(images) if j != f])
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
