"""Bad input of every kind gets a clear 4xx JSON error naming the problem, and writes nothing."""

from __future__ import annotations

import time

import pytest
from chalicelib.context import MAX_BODY_BYTES

LABEL = "/projects/proj/slides/s1/labels"


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ("{not json", 400, "malformed", None),
        ("[1, 2]", 400, "malformed", None),
        ("", 400, "malformed", None),
        ({"category_id": "tumor", "ids": "1,2"}, 422, "invalid", "ids"),
        ({"category_id": "tumor", "ids": [1, "x"]}, 422, "invalid", "ids.1"),
        ({"category_id": "tumor", "ids": [0]}, 422, "invalid", "ids.0"),
        ({"category_id": "tumor"}, 422, "invalid", None),
        ({"category_id": "tumor", "ids": [1], "extra": 1}, 422, "invalid", "extra"),
        ({"category_id": "no-such", "ids": [1]}, 404, "not_found", "category_id"),
        ({"category_id": "tumor", "ids": [4999, 5001]}, 400, "invalid", "ids"),
        ({"category_id": "tumor", "ids": [7, 7]}, 400, "invalid", "ids"),
        ({"category_id": "tumor", "ids": [1], "source": "telepathy"}, 422, "invalid", "source"),
    ],
)
def test_bad_label_requests(api, body, status, code, field):
    before = api.events()
    r = api.request("POST", LABEL, user="ana", body=body)
    assert r.status_code == status, r.body
    assert r.json_body["error"] == code
    assert r.json_body["detail"]
    if field is not None:
        assert r.json_body.get("field") == field
    assert api.events() == before


def test_unknown_slide_and_project(api):
    before = api.events()
    r = api.request(
        "POST", "/projects/proj/slides/nope/labels", user="ana", body={"category_id": "tumor", "ids": [1]}
    )
    assert (r.status_code, r.json_body["field"]) == (404, "slide_id")
    r = api.request("GET", "/projects/nope", user="ana")
    assert r.status_code == 404
    assert api.events() == before


def test_oversize_body(api):
    ids = list(range(1, 400_000))
    body = '{"category_id": "tumor", "ids": ' + str(ids) + "}"
    assert len(body) > MAX_BODY_BYTES
    before = api.events()
    r = api.request("POST", LABEL, user="ana", body=body)
    assert r.status_code == 413
    assert r.json_body["error"] == "too_large"
    assert str(MAX_BODY_BYTES) in r.json_body["detail"]
    assert api.events() == before


def test_expired_and_forged_tokens(api, forger):
    body = {"category_id": "tumor", "ids": [1]}
    before = api.events()
    expired = api.signer.token("ana", exp=int(time.time()) - 120, iat=int(time.time()) - 4000)
    for token in (expired, forger.token("ana"), "garbage"):
        r = api.request("POST", LABEL, body=body, token=token)
        assert r.status_code == 401
        assert r.json_body["error"] == "unauthorized"
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert api.events() == before


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/projects/proj/queue?n=0", "n"),
        ("/projects/proj/queue?n=abc", "n"),
        ("/projects/proj/review?sort=color", "sort"),
        ("/projects/proj/review?compare=same", "compare"),
        ("/projects/proj/review?limit=100000", "limit"),
        ("/projects/proj/audit/replay?as_of=yesterday", "as_of"),
        ("/projects/proj/export?format=xlsx", "format"),
        ("/projects/proj/queue?surprise=1", "surprise"),
    ],
)
def test_bad_queries(api, path, field):
    r = api.request("GET", path, user="olivia")
    assert r.status_code == 422, r.body
    assert r.json_body["error"] == "invalid"
    if field:
        assert r.json_body["field"] == field


def test_data_keys_cannot_escape_the_slide(api):
    for key in ("../../other/secret", "/abs", "a//b", "image.ome.zarr/../x"):
        r = api.request("GET", f"/projects/proj/slides/s1/data?key={key}", user="ana")
        assert r.status_code == 422, key  # the documented pattern refuses it
        assert r.json_body["field"] == "key"


def test_category_conflicts_write_nothing(api):
    before = api.events()
    r = api.request("POST", "/projects/proj/categories", user="ana", body={"name": "Tumor"})
    assert (r.status_code, r.json_body["field"]) == (409, "name")
    r = api.request("POST", "/projects/proj/categories", user="ana", body={"name": "x", "hotkey": "ctrl+"})
    assert r.status_code in (400, 422)
    # A rename that is fine with a hotkey that is taken changes neither.
    r = api.request(
        "PATCH", "/projects/proj/categories/tumor", user="ana", body={"name": "Tumour", "hotkey": "2"}
    )
    assert (r.status_code, r.json_body["field"]) == (409, "hotkey")
    assert api.svc.project_state("proj").categories["tumor"].name == "tumor"
    assert api.events() == before
