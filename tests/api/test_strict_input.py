"""Strict input (issue 17, item 6): integer ids, calendar dates, clean and distinct category names,
idempotency keys that promise one request, and the OpenAPI document saying the same as the
handlers."""

from __future__ import annotations

import re

import jsonschema
import pytest

from histolabel.api import schemas
from histolabel.api.openapi import openapi_document
from histolabel.commands import IDEMPOTENCY_KEY_PATTERN, RegisterSlide
from histolabel.events.catalogue import check_hotkey
from tests.unit.helpers import OWNER, segmented

P = "/projects/proj"
LABEL = P + "/slides/s1/labels"


@pytest.mark.parametrize("ids", [["1"], [True], [1.5], [1, "2"]])
def test_superpixel_ids_are_json_integers_only(api, ids):
    before = api.events()
    r = api.request("POST", LABEL, user="ana", body={"category_id": "tumor", "ids": ids})
    assert r.status_code == 422, r.body
    assert r.json_body["field"].startswith("ids."), r.body
    assert api.events() == before


def test_a_whole_number_written_as_1_0_is_that_id(api):
    """JSON Schema's integer (the OpenAPI document's) includes 1.0; it is the id 1, not 1.0."""
    r = api.request("POST", LABEL, user="ana", body={"category_id": "tumor", "ids": [7.0]})
    assert r.status_code == 200, r.body
    labels = api.request("GET", P + "/slides/s1/labels", user="ana").json_body
    assert [e["id"] for e in labels["entries"]] == [7]


def test_polygon_points_are_numbers_only(api):
    r = api.request(
        "POST", LABEL, user="ana", body={"category_id": "tumor", "polygon": [["0", 0], [10, 0], [10, 10]]}
    )
    assert r.status_code == 422 and r.json_body["field"].startswith("polygon"), r.body


@pytest.mark.parametrize(
    "as_of", ["2026-13-45", "2026-02-30", "2026-04-31", "2026-01-01T24:00", "2026-01-01T12:60"]
)
def test_as_of_must_be_a_moment_that_exists(api, as_of):
    r = api.request("GET", f"{P}/audit/replay?as_of={as_of}", user="audrey")
    assert r.status_code == 422 and r.json_body["field"] == "as_of", r.body


def test_a_real_leap_day_is_a_valid_as_of(api):
    assert api.request("GET", f"{P}/audit/replay?as_of=2028-02-29", user="audrey").status_code == 200


@pytest.mark.parametrize(
    "name",
    [
        "tu\u200bmor",
        "tu\x00mor",
        "\u202etumor",
        "tab\there",
        "line\u2028break",
        "soft\u00adhyphen",
        "\ufefftumor",
    ],
    ids=["zero-width", "nul", "bidi-override", "tab", "line-separator", "soft-hyphen", "bom"],
)
def test_category_names_without_invisible_characters(api, name):
    before = api.events()
    r = api.request("POST", f"{P}/categories", user="ana", body={"name": name})
    assert r.status_code == 422 and r.json_body["field"] == "name", r.body
    r = api.request("PATCH", f"{P}/categories/stroma", user="ana", body={"name": name})
    assert r.status_code == 422 and r.json_body["field"] == "name", r.body
    assert api.events() == before


@pytest.mark.parametrize("name", ["TUMOR", "\uff54\uff55\uff4d\uff4f\uff52", "Tumor "])
def test_names_that_look_the_same_are_the_same_name(api, name):
    r = api.request("POST", f"{P}/categories", user="ana", body={"name": name})
    assert (r.status_code, r.json_body["field"]) == (409, "name"), r.body


def test_names_are_stored_nfc(api):
    r = api.request("POST", f"{P}/categories", user="ana", body={"name": "cafe\u0301 au lait"})
    assert r.status_code == 201 and r.json_body["name"] == "caf\u00e9 au lait", r.body
    r = api.request("POST", f"{P}/categories", user="ana", body={"name": "CAF\u00c9  au lait"})
    assert (r.status_code, r.json_body["field"]) == (409, "name"), r.body


def _write(api, body, key=None, slide="s1", header=True):
    headers = {"Idempotency-Key": key} if key and header else None
    if key and not header:
        body = {**body, "idempotency_key": key}
    return api.request("POST", f"{P}/slides/{slide}/labels", user="ana", body=body, headers=headers)


@pytest.mark.parametrize("header", [True, False], ids=["header", "body"])
def test_an_idempotency_key_promises_one_request(api, header):
    api.svc.execute(
        RegisterSlide(project_id="proj", slide_id="s2", name="two", source_uri="s3://bucket-x/s2.svs"), OWNER
    )
    segmented(api.svc, "proj", "s2", 100)
    first = _write(api, {"category_id": "tumor", "ids": [1, 2]}, "k-7", header=header)
    assert first.status_code == 200 and not first.json_body["duplicate"], first.body
    before = api.events()
    again = _write(api, {"category_id": "tumor", "ids": [1, 2]}, "k-7", header=header)
    assert again.json_body["duplicate"] and again.json_body["command_id"] == first.json_body["command_id"]
    field = "Idempotency-Key" if header else "idempotency_key"
    for body, slide in [
        ({"category_id": "tumor", "ids": [1, 3]}, "s1"),
        ({"category_id": "stroma", "ids": [1, 2]}, "s1"),
        ({"category_id": "tumor", "ids": [1, 2]}, "s2"),
    ]:
        r = _write(api, body, "k-7", slide=slide, header=header)
        assert r.status_code == 422, (body, slide, r.body)
        assert r.json_body["error"] == "idempotency_key_reused" and r.json_body["field"] == field
        assert "'k-7'" in r.json_body["detail"]
    # Another user's key of the same name is their own.
    r = api.request(
        "POST",
        LABEL,
        user="olivia",
        body={"category_id": "stroma", "ids": [9]},
        headers={"Idempotency-Key": "k-7"},
    )
    assert r.status_code == 200 and not r.json_body["duplicate"]
    assert api.events() == before + 2  # olivia's event and her key's record


@pytest.mark.parametrize(
    ("key", "header", "status"),
    [
        ("a.b", True, 400),
        ("a:b", True, 400),
        ("a.b", False, 422),
        ("\u00e9t\u00e9", False, 422),
        ("x" * 129, True, 400),
    ],
)
def test_one_idempotency_key_pattern_for_header_and_body(api, key, header, status):
    r = _write(api, {"category_id": "tumor", "ids": [4]}, key, header=header)
    assert r.status_code == status, r.body
    assert r.json_body["field"] == ("Idempotency-Key" if header else "idempotency_key")


def test_header_and_body_keys_must_agree(api):
    r = api.request(
        "POST",
        LABEL,
        user="ana",
        body={"category_id": "tumor", "ids": [4], "idempotency_key": "a"},
        headers={"Idempotency-Key": "b"},
    )
    assert r.status_code == 400 and r.json_body["field"] == "Idempotency-Key"


# ---- the OpenAPI document says what the handlers check ---------------------------------------

DOC = openapi_document()


def _agree(model: type, name: str, body: dict) -> bool:
    """The document's verdict on a body, checked to be the model's verdict."""
    doc_ok = jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}", **DOC}).is_valid(body)
    try:
        model.model_validate(body)
        model_ok = True
    except ValueError:
        model_ok = False
    assert doc_ok == model_ok, (name, body, doc_ok, model_ok)
    return doc_ok


@pytest.mark.parametrize(
    ("model", "body", "valid"),
    [
        (schemas.LabelIn, {"category_id": "t", "ids": [1]}, True),
        (schemas.LabelIn, {"category_id": "t", "polygon": [[0, 0], [1, 0], [1, 1]]}, True),
        (schemas.LabelIn, {"category_id": "t", "ids": [1], "polygon": None}, True),
        (schemas.LabelIn, {"category_id": "t", "ids": [1], "polygon": [[0, 0], [1, 0], [1, 1]]}, False),
        (schemas.LabelIn, {"category_id": "t"}, False),
        (schemas.LabelIn, {"category_id": "t", "ids": None}, False),
        (schemas.LabelIn, {"category_id": "t", "ids": [1], "idempotency_key": "a.b"}, False),
        (schemas.UnlabelIn, {"polygon": [[0, 0], [1, 0], [1, 1]], "ids": [2]}, False),
        (schemas.RegisterSlideIn, {"name": "x", "filename": "x.svs"}, True),
        (schemas.RegisterSlideIn, {"name": "x", "filename": "x.svs", "source_uri": "s3://abc/x"}, False),
        (schemas.RegisterSlideIn, {"name": "x"}, False),
        (schemas.UpdateCategoryIn, {"hotkey": None}, True),
        (schemas.UpdateCategoryIn, {"name": "x"}, True),
        (schemas.AddCategoryIn, {"name": "x", "hotkey": "Ctrl+Shift+K"}, True),
        (schemas.AddCategoryIn, {"name": "x", "hotkey": "ctrl+"}, False),
        (schemas.AddCategoryIn, {"name": "x", "hotkey": "f13"}, False),
    ],
)
def test_cross_field_rules_are_in_the_document(model, body, valid):
    assert _agree(model, model.__name__, body) is valid


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        ({"ids": [1], "action": "change", "category_id": "stroma"}, True),
        ({"ids": [1], "action": "approve"}, True),
        ({"ids": [1], "action": "change"}, False),
        ({"ids": [1], "action": "clear", "category_id": "t"}, False),
    ],
)
def test_the_review_category_rule_is_in_the_document(api, body, valid):
    # The command holds the rule (400 naming category_id); the document says the same.
    doc_ok = jsonschema.Draft202012Validator({"$ref": "#/components/schemas/ReviewIn", **DOC}).is_valid(body)
    r = api.request("POST", P + "/slides/s1/review", user="rex", body=body)
    assert doc_ok is valid and (r.status_code == 200) is valid, r.body
    if not valid:
        assert r.json_body["field"] == "category_id"


def test_an_empty_category_update_is_refused_by_both(api):
    assert not jsonschema.Draft202012Validator(
        {"$ref": "#/components/schemas/UpdateCategoryIn", **DOC}
    ).is_valid({})
    r = api.request("PATCH", f"{P}/categories/stroma", user="ana", body={})
    assert r.status_code == 400, r.body


def test_one_idempotency_key_pattern_everywhere():
    op = DOC["paths"]["/projects/{project_id}/slides/{slide_id}/labels"]["post"]
    header = next(p for p in op["parameters"] if p["name"] == "Idempotency-Key")
    body = DOC["components"]["schemas"]["LabelIn"]["properties"]["idempotency_key"]["anyOf"][0]
    assert header["schema"]["pattern"] == body["pattern"] == IDEMPOTENCY_KEY_PATTERN
    assert "422" in header["description"]
    for path, method, words in [
        ("/projects/{project_id}/members/{user}", "patch", "last owner"),
        ("/projects/{project_id}/members/{user}", "delete", "last owner"),
    ]:
        assert words in DOC["paths"][path][method]["description"]


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "1",
        "f1",
        "f12",
        "f13",
        "ctrl+k",
        "Ctrl+K",
        " shift+1 ",
        "ctrl+alt+shift+meta+k",
        "ctrl+",
        "+k",
        "kk",
        "ctrl-k",
        "é",
        "F10",
        "alt+f0",
        "META+Z",
    ],
)
def test_the_documented_hotkey_pattern_is_check_hotkey(key):
    try:
        check_hotkey(key)
        ok = True
    except ValueError:
        ok = False
    assert bool(re.search(schemas.HOTKEY_PATTERN, key)) is ok, key
