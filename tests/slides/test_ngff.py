"""The NGFF metadata module: what the writer writes the reader reads back, NGFF 0.4's top-level
layout reads too, and a group without multiscales is refused in words."""

from __future__ import annotations

import pytest

from histolabel.slides.ngff import (
    NgffError,
    label_attributes,
    label_names,
    labels_attributes,
    multiscales,
    read_multiscale,
)


def test_a_label_pyramid_reads_back():
    attrs = label_attributes("superpixels", 3, 0.5, first_factor=4, source_level=2)
    ms = read_multiscale(attrs)
    assert ms.is_label and ms.name == "superpixels" and ms.levels == 3
    assert ms.paths == ("0", "1", "2") and ms.axes == ("c", "y", "x")
    assert ms.scales[0] == (1.0, 2.0, 2.0) and ms.scales[2] == (1.0, 8.0, 8.0)  # 0.5 µm x 4 x 2^k


def test_ngff_04_keeps_its_keys_at_the_top():
    attrs = {"multiscales": [multiscales("img", 2, None)], "labels": ["cells"]}
    assert read_multiscale(attrs).paths == ("0", "1") and not read_multiscale(attrs).is_label
    assert label_names(attrs) == ["cells"]


def test_the_labels_group_lists_its_images():
    assert label_names(labels_attributes({"tissue", "superpixels"})) == ["superpixels", "tissue"]
    assert label_names({}) == []


@pytest.mark.parametrize(
    "attrs",
    [{}, {"ome": {"multiscales": []}}, {"ome": {"multiscales": [{"datasets": []}]}},
     {"ome": {"multiscales": [{"datasets": [{"coordinateTransformations": []}]}]}}],
)  # fmt: skip
def test_missing_metadata_is_refused(attrs):
    with pytest.raises(NgffError):
        read_multiscale(attrs)
