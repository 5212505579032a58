"""GET /config: the vocabulary the web app is built from, as the API states it. Public (the
login form is built before anyone signs in), and each rule it states is the one the API
enforces: who it says may do a thing is exactly who the route lets through."""

from __future__ import annotations

import re

import pytest

from histolabel.api.schemas import ConfigOut
from histolabel.api.vocabulary import MAY_ROUTE
from histolabel.events.catalogue import ProjectSettings
from tests.api.conftest import ROLE_USERS
from tests.api.test_matrix import REQUESTS


@pytest.fixture
def vocabulary(api):
    response = api.request("GET", "/config")  # no token
    assert response.status_code == 200, response.body
    return ConfigOut.model_validate(response.json_body).vocabulary


def test_config_is_public_and_names_every_role(api, vocabulary):
    assert set(vocabulary.roles) == set(ROLE_USERS)
    assert len(set(vocabulary.palette)) == len(vocabulary.palette) >= 8
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in vocabulary.palette)
    assert {"ingest", "segment", "train", "export"} <= set(vocabulary.job_kinds)


def test_each_settings_choice_is_a_setting_the_project_takes(api, vocabulary):
    choices = {"certainty_metric": vocabulary.certainty_metrics, "feature_kind": vocabulary.feature_kinds,
               "model_kind": vocabulary.model_kinds}  # fmt: skip
    for field, values in choices.items():
        assert values
        for value in values:
            ProjectSettings.model_validate({field: value})
        with pytest.raises(ValueError):
            ProjectSettings.model_validate({field: "not-a-" + field})


@pytest.mark.parametrize("action", sorted(MAY_ROUTE))
def test_who_may_is_who_the_route_lets_through(api, vocabulary, action):
    allowed = getattr(vocabulary.may, action)
    method, path, body = REQUESTS[MAY_ROUTE[action]]
    for role, user in ROLE_USERS.items():
        status = api.request(method, path, user=user, body=body).status_code
        assert (status != 403) == (role in allowed), (action, role, status)


def test_the_openapi_document_describes_the_vocabulary(api):
    doc = api.request("GET", "/openapi.json").json_body
    config = doc["paths"]["/config"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert config["$ref"].endswith("/ConfigOut")
    schemas = doc["components"]["schemas"]
    assert "vocabulary" in schemas["ConfigOut"]["required"]
    assert set(schemas["MayOut"]["properties"]) == set(MAY_ROUTE)
