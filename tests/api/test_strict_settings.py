"""Project settings and import options take JSON numbers and booleans only: a string or a boolean
where a number goes is refused naming the field and records nothing (pydantic's lax mode read
"64" as 64 and true as a threshold of 1). JSON Schema's integer includes 64.0, so that is 64."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"retrain_threshold": True}, "retrain_threshold"),
        ({"superpixel_size": "64"}, "superpixel_size"),
        ({"magnification": "20"}, "magnification"),
        ({"superpixel_size": 64.5}, "superpixel_size"),
    ],
)
def test_loose_settings_are_refused_and_change_nothing(api, settings, field):
    before = api.events()
    res = api.request("PUT", "/projects/proj/settings", "olivia", {"settings": settings})
    assert res.status_code == 422, res.body
    assert field in res.body.decode()
    created = api.request("POST", "/projects", "olivia", {"project_id": "loose", "name": "L", "site": "nyc",
                                                        "settings": settings})  # fmt: skip
    assert created.status_code == 422, created.body
    assert api.events() == before


def test_whole_and_fractional_numbers_are_read_as_numbers(api):
    settings = {"superpixel_size": 48.0, "magnification": 40, "retrain_threshold": 20}
    res = api.request("PUT", "/projects/proj/settings", "olivia", {"settings": settings})
    assert res.status_code == 200, res.body
    settings = api.svc.project_state("proj").settings
    assert (settings.superpixel_size, settings.magnification, settings.retrain_threshold) == (48, 40.0, 20)
    assert type(settings.superpixel_size) is int
