"""The learning-curve simulation on the MoNuSeg images (small budget)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from histolabel.learning import simulation as S


@pytest.fixture(scope="module")
def images(shared_data: Path) -> list[S.LabeledImage]:
    return S.load_monuseg(shared_data / "labeled/monuseg")


def test_nucleus_mask_rasterizes_polygons(tmp_path: Path) -> None:
    xml = tmp_path / "a.xml"
    xml.write_text(
        '<Annotations><Annotation><Regions><Region Id="1"><Vertices>'
        '<Vertex X="2" Y="1"/><Vertex X="6" Y="1"/><Vertex X="6" Y="4"/><Vertex X="2" Y="4"/>'
        "</Vertices></Region></Regions></Annotation></Annotations>"
    )
    mask = S.nucleus_mask(xml, (8, 8))
    assert mask[2, 3] and mask[3, 5] and not mask[6, 6] and not mask[2, 7]


def test_monuseg_ground_truth_is_plausible(images: list[S.LabeledImage]) -> None:
    assert len(images) == 3
    for im in images:
        assert im.x.shape[0] == im.y.size > 1000
        assert 0.1 < im.y.mean() < 0.45  # nuclei are a minority of superpixels
        np.testing.assert_allclose(im.x.mean(axis=0), 0, atol=1e-4)  # standardized per slide


@pytest.mark.slow
def test_guided_and_random_curves(images: list[S.LabeledImage]) -> None:
    cfg = S.SimConfig(initial=10, batch=10, budget=50)
    curves = S.simulate(images, orders=("random", "margin", "batchbald"), seeds=[0], folds=[2], cfg=cfg)
    assert [c.order for c in curves] == ["random", "margin", "batchbald"]
    for c in curves:
        assert c.labels == [10, 20, 30, 40, 50]
        assert all(0.0 <= f <= 1.0 for f in c.f1)
        assert c.f1[-1] > 0.7  # a linear head on stain features finds nuclei on an unseen image
    # Every order starts from the same seed set and therefore the same first model.
    assert len({c.f1[0] for c in curves}) == 1
    mean = S.mean_curves(curves)
    labels, f1 = mean["margin"]
    assert S.labels_to_reach(labels, f1, float(f1.max())) == int(labels[int(np.argmax(f1))])
    assert S.labels_to_reach(labels, f1, 2.0) is None
    with pytest.raises(ValueError, match="at least 2 labeled images"):
        S.simulate(images[:1])
