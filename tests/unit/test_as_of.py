"""One "as of" rule for every door: the moment named is included whole."""

from __future__ import annotations

import pytest

from histolabel.audit.as_of import as_of_instant


@pytest.mark.parametrize(
    ("given", "last_instant"),
    [
        ("2026-12-01", "2026-12-01T23:59:59.999999Z"),
        ("2026-12-01T10", "2026-12-01T10:59:59.999999Z"),
        ("2026-12-01T10:15", "2026-12-01T10:15:59.999999Z"),
        ("2026-12-01T10:15Z", "2026-12-01T10:15:59.999999Z"),
        ("2026-12-01T10:15:30", "2026-12-01T10:15:30.999999Z"),
        ("2026-12-01T10:15:30.25Z", "2026-12-01T10:15:30.250000Z"),
        ("2026-12-01T10:15:30+02:00", "2026-12-01T08:15:30.999999Z"),
        ("2026-12-31T23:30-01:00", "2027-01-01T00:30:59.999999Z"),
    ],
)
def test_the_moment_named_is_included_whole(given, last_instant):
    assert as_of_instant(given) == last_instant


def test_an_event_at_noon_counts_as_of_its_date():
    # The event store writes times in this form; string order is time order.
    assert as_of_instant("2026-12-01") >= "2026-12-01T12:00:00.000000Z"
    assert as_of_instant("2026-12-01") < "2026-12-02T00:00:00.000000Z"


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01", ""])
def test_no_time_is_refused(bad):
    with pytest.raises(ValueError):
        as_of_instant(bad)
