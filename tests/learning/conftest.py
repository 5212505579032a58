"""Fixtures of the learning tests: a MoNuSeg crop with SLIC superpixels and nucleus truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from skimage.segmentation import slic

from histolabel.composition import service_from_env
from tests.learning.helpers import SIZE


@pytest.fixture(scope="session")
def monuseg_crop(shared_data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from histolabel.learning.simulation import nucleus_mask

    folder = shared_data / "labeled/monuseg"
    rgb = tifffile.imread(folder / "TCGA-2Z-A9J9-01A-01-TS1.tif")[:SIZE, :SIZE, :3].copy()
    labels = slic(rgb, n_segments=SIZE * SIZE // 400, compactness=10, start_label=1).astype(np.uint32)
    mask = nucleus_mask(folder / "TCGA-2Z-A9J9-01A-01-TS1.xml", (1000, 1000))[:SIZE, :SIZE]
    n = int(labels.max())
    inside = np.bincount(labels.ravel(), mask.ravel(), minlength=n + 1)[1:]
    area = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    return rgb, labels, (inside >= 0.5 * area).astype(np.int64)


@pytest.fixture
def svc(cloud):

    return service_from_env(cloud)
