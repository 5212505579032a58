"""Tissue detection on a low-resolution level: background is bright and unsaturated."""

from __future__ import annotations

import numpy as np
from skimage.color import rgb2hsv
from skimage.filters import threshold_otsu
from skimage.morphology import closing, disk, remove_small_holes, remove_small_objects

# Bounds on the Otsu brightness threshold: a slide that is all tissue has its Otsu split
# inside the tissue, and one that is all glass inside the glass; the clamp keeps both sane.
MIN_BRIGHT = 0.75
MAX_BRIGHT = 0.92
MIN_SATURATION = 0.08


def tissue_mask(rgb: np.ndarray) -> np.ndarray:
    """Boolean (h, w) mask of tissue in a uint8 RGB (h, w, 3) thumbnail."""
    hsv = rgb2hsv(rgb)
    value, saturation = hsv[..., 2], hsv[..., 1]
    try:
        bright = float(threshold_otsu(value))
    except ValueError:  # a constant image
        bright = MAX_BRIGHT
    bright = min(max(bright, MIN_BRIGHT), MAX_BRIGHT)
    tissue = (value < bright) | (saturation > MIN_SATURATION)
    area = tissue.size
    tissue = closing(tissue, disk(2))
    tissue = remove_small_objects(tissue, max_size=max(4, area // 10_000))
    tissue = remove_small_holes(tissue, max_size=max(4, area // 1_000))
    return np.asarray(tissue, dtype=bool)
