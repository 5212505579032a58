"""Learning curves on MoNuSeg: guided labeling (each certainty metric) against random order.

A simulated annotator answers queued superpixels from the nucleus polygons; after every round
of k labels the linear head is retrained and scored (macro F1, nucleus vs stroma) on the image
left out. Averaged over seeds and folds (each image scored once while the others are labeled).

    python bench/learning_curve.py            # 5 seeds x 3 folds, budget 400
    python bench/learning_curve.py --quick    # 1 seed x 1 fold (under a minute)

Writes bench/out/learning_curve/{curves.json,curves.csv,learning_curve.png}. The goal: every
metric reaches random order's F1 at 400 labels with at most 60% as many labels.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from histolabel.learning.curves import main

if __name__ == "__main__":
    raise SystemExit(main())
