"""The export job writes each GeoJSON feature as text spliced from its ring's text
(export.geojson_feature_texts): the same bytes as json.dumps of the feature the API's export
builds (export.geojson_features), for labeled, predicted, reviewed, imported and ring-less rows."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from histolabel.api import export

CATS = {"tumor": "Tumor", "stroma": "Stroma \u00e9"}
COLORS = {"tumor": "#ff0000"}


@st.composite
def rows(draw: st.DrawFn) -> list[dict]:
    out = []
    for sp in draw(st.lists(st.integers(1, 12), unique=True, max_size=12)):
        label = draw(st.sampled_from([None, "tumor", "stroma", "gone"]))
        review = draw(st.sampled_from([None, {"a": "approve", "by": "rex", "c": label, "at": "t"}]))
        out.append({"slide_id": "s\u00e91", "id": sp, "label": label, "labeled_by": "ana" if label else None,
                    "labeled_at": "2026-01-01T00:00:00Z" if label else None,
                    "labels": {"ana": label} if label else {}, "review": review,
                    "prediction": draw(st.sampled_from([None, "tumor"])),
                    "confidence": draw(st.sampled_from([None, 0.5, 1 / 3])), "certainty": None})  # fmt: skip
    return out


rings = st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)).map(list), max_size=7)


@settings(max_examples=100, deadline=None)
@given(rows(), st.dictionaries(st.integers(1, 12), rings), st.sets(st.integers(1, 12), max_size=3))
def test_feature_texts_are_the_features_json(given_rows, by_id, imported_ids) -> None:
    def ring_of(_s: str, i: int) -> list[list[float]]:
        return by_id.get(i, [])

    def imported(_s: str, i: int) -> tuple[str, dict] | None:
        return (f"qp-{i}", {"type": "Point", "coordinates": [i, 0.5]}) if i in imported_ids else None

    want = [
        json.dumps(f, separators=(",", ":"))
        for f in export.geojson_features(given_rows, ring_of, COLORS, CATS, imported)
    ]
    got = list(
        export.geojson_feature_texts(
            given_rows, lambda s, i: export.ring_text(ring_of(s, i)), COLORS, CATS, imported
        )
    )
    assert got == want
