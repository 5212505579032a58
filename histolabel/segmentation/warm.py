"""Importing this loads the numba SLIC kernel (from numba's on-disk cache, or compiles it once).

The segment job's fork server preloads it (`tiled._forkserver`), so every worker forked from it
starts with the kernel ready instead of each loading (~0.5 s) or compiling (~10 s) it again;
the job image imports it at build time so that its cache is filled before any job runs.
"""

from __future__ import annotations

import numpy as np

from histolabel.segmentation.kernel import slic

slic(np.zeros((16, 16, 3), np.uint8), 4)
