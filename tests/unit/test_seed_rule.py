"""The demo's seed rule on real H&E: superpixels of CMU-1 cut by SLIC, stain means by colour
deconvolution; the categories it gives are the ones the rule states."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage.segmentation import slic

from histolabel.localcloud.seed import BRIGHT, RULE_CATEGORIES, rule, stains
from histolabel.slides.readers import open_slide


def test_stain_rule_on_a_real_slide(shared_data: Path) -> None:
    with (shared_data / "slides" / "CMU-1-Small-Region.svs").open("rb") as fh:
        rgb = np.asarray(open_slide(fh).read_region(800, 600, 512, 512))[..., :3]
    labels = slic(rgb, n_segments=256, compactness=10, start_label=1)
    s = stains(rgb, labels)
    got = rule(s)
    by = {name: got == i for i, name in enumerate(RULE_CATEGORIES)}
    assert by["background"].tolist() == (s.brightness > BRIGHT).tolist()
    tissue = ~by["background"]
    h = s.hematoxylin
    # Lymphocytes: the densest hematoxylin of the tissue; tumour above the median; stroma below.
    assert by["lymphocytes"].sum() >= 1 and h[by["lymphocytes"]].min() >= np.quantile(h[tissue], 0.9) - 1e-12
    assert h[by["tumor"]].min() > np.quantile(h[tissue], 0.5)
    assert h[by["stroma"] & tissue].max() <= np.quantile(h[tissue], 0.5)
    # A second reader with lower thresholds calls more tumour, never less.
    assert (rule(s, 0.45, 0.85) == RULE_CATEGORIES.index("stroma")).sum() <= by["stroma"].sum()
