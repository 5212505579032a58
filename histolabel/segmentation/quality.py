"""Superpixel quality against ground truth: boundary recall, undersegmentation error, compactness.

The measures `bench/slic_quality.py` and the kernel tests compare SLIC kernels with:
- boundary recall: share of ground-truth boundary pixels (a pixel whose 4-neighbour belongs to
  another segment) within 2 px (Euclidean) of a superpixel boundary pixel;
- undersegmentation error, Neubert & Protzel's corrected form (2012): sum over ground-truth
  segments G and superpixels S overlapping it of min(|S & G|, |S - G|), over the pixel count;
- compactness, Schick et al. (2012): sum over superpixels of |S|/N * 4 pi area / perimeter^2,
  the perimeter in pixel edges (4-neighbours of another label, or the image border).
Each returns sums (numerators and denominators) so that several images pool pixel-weighted.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from scipy.ndimage import distance_transform_edt
from skimage.draw import polygon as draw_polygon


def nucleus_ids(xml_path: Path, shape: tuple[int, int]) -> np.ndarray:
    """Ground truth as instances: 0 background, i for the i-th polygon (later ones on top)."""
    out = np.zeros(shape, np.int32)
    regions = ET.parse(xml_path).getroot().iter("Region")
    for i, region in enumerate(regions, start=1):
        pts = [(float(v.get("Y", 0)), float(v.get("X", 0))) for v in region.iter("Vertex")]
        if len(pts) >= 3:
            ys, xs = zip(*pts, strict=True)
            rr, cc = draw_polygon(np.asarray(ys), np.asarray(xs), shape)
            out[rr, cc] = i
    return out


def boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of another label."""
    b = np.zeros(labels.shape, bool)
    dy = labels[1:] != labels[:-1]
    dx = labels[:, 1:] != labels[:, :-1]
    b[1:] |= dy
    b[:-1] |= dy
    b[:, 1:] |= dx
    b[:, :-1] |= dx
    return b


def boundary_recall(labels: np.ndarray, truth: np.ndarray, tolerance: float = 2.0) -> tuple[int, int]:
    """(ground-truth boundary pixels recalled, ground-truth boundary pixels)."""
    gt = boundaries(truth)
    near = distance_transform_edt(~boundaries(labels)) <= tolerance
    return int((gt & near).sum()), int(gt.sum())


def undersegmentation(labels: np.ndarray, truth: np.ndarray) -> float:
    """Sum over (G, S) overlaps of min(|S & G|, |S - G|): the error's numerator, in pixels."""
    s = labels.ravel().astype(np.int64)
    g = truth.ravel().astype(np.int64)
    pair = s * (int(g.max()) + 1) + g
    keys, overlap = np.unique(pair, return_counts=True)
    size = np.bincount(s)
    outside = size[keys // (int(g.max()) + 1)] - overlap
    return float(np.minimum(overlap, outside).sum())


def compactness(labels: np.ndarray) -> float:
    """Schick et al.'s compactness times N: sum over superpixels of |S| * 4 pi A / P^2."""
    s = labels.astype(np.int64)
    n = int(s.max()) + 1
    area = np.bincount(s.ravel(), minlength=n).astype(np.float64)
    perimeter = np.zeros(n)
    for a, b in ((s[1:], s[:-1]), (s[:, 1:], s[:, :-1])):
        diff = a != b
        perimeter += np.bincount(a[diff], minlength=n) + np.bincount(b[diff], minlength=n)
    for edge in (s[0], s[-1], s[:, 0], s[:, -1]):
        perimeter += np.bincount(edge, minlength=n)
    present = area > 0
    q = 4 * np.pi * area[present] / perimeter[present] ** 2
    return float((area[present] * q).sum())
