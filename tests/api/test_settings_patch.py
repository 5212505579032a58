"""PATCH .../settings changes the settings it names and keeps the rest as they are when it is
decided: two owners at two sites each changing one setting both keep their change (the web app's
whole-settings PUT from a form drawn before the other's save undid it). Bad changes are refused
naming the field and record nothing."""

from __future__ import annotations

import json

import pytest

P = "/projects/proj"


def patch(api, user: str, settings: dict) -> object:
    return api.request("PATCH", f"{P}/settings", user, {"settings": settings})


def test_two_owners_change_different_settings_and_both_keep_theirs(api):
    r = api.request("PATCH", f"{P}/members/ana", "olivia", {"role": "owner"})  # a second owner
    assert r.status_code == 200, r.body
    before = api.svc.project_state("proj").settings
    first = patch(api, "olivia", {"certainty_metric": "margin"})
    assert first.status_code == 200, first.body
    second = patch(api, "ana", {"superpixel_size": 48, "retrain_threshold": 7})
    assert second.status_code == 200, second.body
    after = api.svc.project_state("proj").settings
    assert (after.certainty_metric, after.superpixel_size, after.retrain_threshold) == ("margin", 48, 7)
    untouched = {"certainty_metric", "superpixel_size", "retrain_threshold"}
    assert after.model_dump(exclude=untouched) == before.model_dump(exclude=untouched)
    assert json.loads(second.body)["settings"]["certainty_metric"] == "margin"  # the answer is the merge

    # A change to what already holds records nothing.
    events = api.events()
    assert patch(api, "ana", {"superpixel_size": 48}).status_code == 200
    assert api.events() == events


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"superpixel_size": 2}, "superpixel_size"),
        ({"superpixel_size": None}, "superpixel_size"),
        ({"superpixel_size": "64"}, "superpixel_size"),
        ({"label_overlap": 1.5}, "label_overlap"),
        ({"certainty_metric": "luck"}, "certainty_metric"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_changes_are_refused_naming_the_field_and_record_nothing(api, settings, field):
    events = api.events()
    res = patch(api, "olivia", settings)
    assert 400 <= res.status_code < 500, res.body
    assert field in res.body.decode()
    assert api.events() == events


def test_only_owners_change_settings(api):
    events = api.events()
    for user in ("ana", "rex", "audrey", "oscar"):
        assert patch(api, user, {"retrain_threshold": 9}).status_code in (403, 404), user
    assert api.events() == events
