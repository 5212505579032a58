"""The artifact store contract against S3 on the local cloud, and broken stores it must catch."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from histolabel.adapters import artifacts
from tests.contracts.artifact_store import CHECKS, variant


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_contract(cloud: Any, name: str) -> None:
    CHECKS[name](artifacts)


def _unique_rows(array: Any, rows: Any) -> Any:
    """Reads each chunk once but forgets the order and the repeats asked for."""
    return np.asarray(array.oindex[np.unique(rows)]) if len(rows) else np.zeros((0, *array.shape[1:]))


def _scores_by_position(uri_prefix: str, slide_id: str) -> Any:
    """Rows in file order instead of by id: every slide's queue points at the wrong superpixels."""
    t = artifacts.read_predictions(f"{uri_prefix.rstrip('/')}/{slide_id}.parquet")
    return artifacts.SlideScores(slide_id, t.column("certainty").to_numpy(), None, None)


@pytest.mark.parametrize(
    ("replaced", "caught_by"),
    [
        ({"remove": lambda uri: None}, "a_removal_takes_the_whole_prefix_and_an_absent_one_is_harmless"),
        ({"feature_rows": _unique_rows}, "rows_come_back_in_the_order_asked_with_repeats"),
        ({"slide_scores": _scores_by_position}, "a_slides_predictions_map_ids_to_rows"),
    ],
)
def test_a_broken_store_fails_the_contract(cloud: Any, replaced: dict[str, Any], caught_by: str) -> None:
    with pytest.raises(AssertionError):
        CHECKS[caught_by](variant(**replaced))
