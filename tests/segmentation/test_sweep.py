"""The sweep after the tile phases: it runs only on cores with tissue left unclaimed, and still
closes what is left there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from histolabel.segmentation import tiled
from histolabel.segmentation.tiled import ArrayWindow, SlicParams, segment


@pytest.mark.slow
def test_sweeps_run_only_where_tissue_is_left_and_close_it(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = np.asarray(tifffile.imread(shared_data / "slides" / "tcga-cr-7395-01a-01-ts1.svs"))[:2048, :3072]
    left: list[int] = []
    sweep = tiled.sweep_tile

    def counted(free: np.ndarray, *args: object) -> tuple[np.ndarray, int]:
        left.append(int(free.sum()))
        return sweep(free, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(tiled, "sweep_tile", counted)
    params = SlicParams(32, 10.0, tile=512)  # 24 tiles; some superpixels outgrow the halo here
    result = segment(ArrayWindow(image), image.shape[:2], params, workers=1, workdir=tmp_path)
    labels = result.block(0, 0, *image.shape[:2])
    # every sweep that ran had pixels to close (the others were skipped by the tiles' claims),
    # and some ran: the skip did not drop them
    assert left and all(n > 0 for n in left), left
    assert len(left) < len(result.grid.tiles())
    # all pixels labelled, ids dense
    np.testing.assert_array_equal(np.unique(labels), np.arange(1, result.count + 1))
