"""numba, configured once for every compiled kernel of the package (SLIC, contours).

numba caches compiled code beside the source, or in the user's cache folder; where neither is
writable (a read-only install, as in a Lambda image or a job container) it would refuse to cache
at all and compile on every process start: then a temp dir holds the cache."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numba

if not getattr(numba.config, "CACHE_DIR", "") and not os.access(Path(__file__).parent, os.W_OK):
    numba.config.CACHE_DIR = str(Path(tempfile.gettempdir()) / "histolabel-numba-cache")  # type: ignore[attr-defined]

njit = numba.njit
__all__ = ["njit", "numba"]
