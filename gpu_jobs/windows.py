"""Window readers of one image level and its superpixel labels on S3 that pickle as their URIs,
so each process of a pool opens its own arrays (an open s3fs/zarr handle does not cross
processes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SlideWindows:
    image_uri: str
    level: int
    labels_uri: str
    _arrays: tuple[Any, Any] | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {"image_uri": self.image_uri, "level": self.level, "labels_uri": self.labels_uri}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def arrays(self) -> tuple[Any, Any]:
        """(image level (3, y, x), labels (..., y, x)), opened once per process."""
        if self._arrays is None:
            from histolabel.adapters import pyramids

            whole = pyramids.WINDOW_BYTES
            image = pyramids.open_group(self.image_uri, "r", whole=whole)[str(self.level)]
            labels = pyramids.open_group(self.labels_uri, "r", whole=whole)["0"]
            self._arrays = (image, labels)
        return self._arrays

    def rgb(self, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        image = self.arrays()[0]
        return np.ascontiguousarray(np.moveaxis(np.asarray(image[:, y0:y1, x0:x1]), 0, -1))

    def labels(self, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        labels = self.arrays()[1]
        return np.asarray(labels[..., y0:y1, x0:x1]).reshape(y1 - y0, x1 - x0)
