"""The superpixel size a project's settings give a slide, and the count it yields.

The project's `superpixel_size` is px at its `magnification`. Where the slide has a pixel size,
that is a physical size (10 µm per px at 1x, so 64 px at 20x is 32 µm) converted with the
slide's own pixel size; where it has none, the px are taken as they are. Either way an image is
cut into at least MIN_SUPERPIXELS, so a small detail image (1,000 px a side at 40x) gets regions
the size of a nucleus rather than a dozen regions of tissue. The setup dialog shows
`expected_superpixel_count` before segmenting; the segment job segments with `superpixel_px`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

MIN_SUPERPIXELS = 2000
MIN_PX = 8  # ProjectSettings' own lower bound on superpixel_size
UM_PER_PX_AT_1X = 10.0  # 20x ~ 0.5 µm/px, the scanners' convention (also choose_level's)
# Microscopy pixel sizes lie well inside this; outside it a "pixel size" is a TIFF's screen
# resolution (72 dpi reads as 352.8 µm/px, as the MoNuSeg images carry) and is treated as none.
PLAUSIBLE_MPP = (0.02, 50.0)


class SizeSettings(Protocol):
    @property
    def superpixel_size(self) -> float: ...

    @property
    def magnification(self) -> float: ...


@dataclass(frozen=True)
class Size:
    """A size as a project setting gives it (px at a magnification), outside a project."""

    superpixel_size: float
    magnification: float


def superpixel_um(settings: SizeSettings) -> float:
    """The settings' superpixel side in micrometres."""
    return float(settings.superpixel_size) * UM_PER_PX_AT_1X / float(settings.magnification)


def superpixel_px(width: int, height: int, mpp: float | None, settings: SizeSettings) -> int:
    """Superpixel side in px on an image of `width` x `height` px with pixel size `mpp` (µm/px,
    None when unknown)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width} x {height}")
    if mpp is not None and mpp <= 0:
        raise ValueError(f"pixel size must be positive, got {mpp}")
    physical = mpp is not None and PLAUSIBLE_MPP[0] <= mpp <= PLAUSIBLE_MPP[1]
    px = superpixel_um(settings) / mpp if physical and mpp else float(settings.superpixel_size)
    px = min(px, math.sqrt(width * height / MIN_SUPERPIXELS))
    return max(MIN_PX, round(px))


def expected_superpixel_count(width: int, height: int, mpp: float | None, settings: SizeSettings) -> int:
    """About how many superpixels segmenting the whole image gives (the segment job covers
    tissue only, so a slide with background gets fewer)."""
    px = superpixel_px(width, height, mpp, settings)
    return max(1, round(width * height / px**2))
