"""The stream consumers' ParallelizationFactor follows the declared write rate."""

from __future__ import annotations

import pytest

from infra.write_rates import (
    HEADROOM,
    PEAK,
    PROJECTOR_PARALLELIZATION,
    PROJECTOR_RECORDS_PER_S,
    PeakLabeling,
    parallelization_factor,
)


def test_the_factor_keeps_headroom_over_the_peak_within_aws_bounds():
    assert parallelization_factor(10, 100) == 1  # one invocation keeps up many times over
    assert parallelization_factor(0, 100) == 1
    assert parallelization_factor(100, 100) == 2  # the peak alone would leave no room to drain
    assert parallelization_factor(101, 100) == 3
    assert parallelization_factor(300, 100, shards=3) == 2
    assert parallelization_factor(100_000, 100) == 10  # AWS's most; more needs more shards
    with pytest.raises(ValueError):
        parallelization_factor(100, 0)


def test_the_projector_is_set_for_a_hundred_annotators_at_a_label_a_second():
    assert PeakLabeling(annotators=100, labels_per_s=1.0) == PEAK
    capacity = PROJECTOR_PARALLELIZATION * PROJECTOR_RECORDS_PER_S
    assert capacity >= HEADROOM * PEAK.records_per_s
    # and no more than needed: one fewer batch per shard would not keep the headroom
    assert HEADROOM * PEAK.records_per_s > (PROJECTOR_PARALLELIZATION - 1) * PROJECTOR_RECORDS_PER_S
