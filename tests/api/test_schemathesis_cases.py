"""The cases the long schemathesis run against the local API found (scripts/schemathesis-local),
each as it was sent: the OpenAPI document and the handler must give the same verdict, and a
refused body names its field and writes nothing."""

from __future__ import annotations

import re
import unicodedata

import jsonschema
import pytest
from pydantic import TypeAdapter

from histolabel.api import schemas
from histolabel.api.openapi import openapi_document
from histolabel.imports.errors import max_import_bytes

P = "/projects/proj"
DOC = openapi_document()


def _documented(name: str, body: dict) -> bool:
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}", **DOC}).is_valid(body)


# ---- sizes: JSON Schema's integer includes 6878.0 ------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"filename": "tz0Wn", "kind": "features", "size": 6878.0},  # schemathesis d7WRYQ
        {"kind": "labels", "size": 3548582.0, "filename": "3w4WZ"},  # schemathesis x8Dsqp
    ],
)
def test_an_import_size_written_as_a_whole_float_is_accepted(api, body):
    assert _documented("ImportUploadIn", body)
    r = api.request("POST", P + "/slides/s1/imports", user="ana", body=body)
    assert r.status_code == 201, r.body
    assert r.json_body["upload_url"] and r.json_body["key"].endswith(
        f"/imports/{r.json_body['import_id']}/{body['filename']}"
    )


@pytest.mark.parametrize("size", ["6878", True, 6878.5, 0.0])
def test_an_import_size_that_is_not_a_whole_number_is_refused(api, size):
    body = {"filename": "tz0Wn", "kind": "features", "size": size}
    assert not _documented("ImportUploadIn", body)
    before = api.events()
    r = api.request("POST", P + "/slides/s1/imports", user="ana", body=body)
    assert (r.status_code, r.json_body["field"]) == (422, "size"), r.body
    assert api.events() == before


def test_an_import_size_over_the_documented_maximum_is_422_naming_size(api):
    """schemathesis 0BFMTf: size 1073741825, one over the (default) maximum the document states,
    was answered 413, which is about a body too large to read, not a field's value."""
    body = {"filename": "0", "kind": "labels", "size": max_import_bytes() + 1}
    assert not _documented("ImportUploadIn", body)
    before = api.events()
    r = api.request("POST", P + "/slides/s1/imports", user="ana", body=body)
    assert (r.status_code, r.json_body["field"]) == (422, "size"), r.body
    assert "limited to" in r.json_body["detail"]
    assert api.events() == before


def test_an_upload_size_is_a_json_integer(api):
    ok = {"filename": "s2.svs", "size": 100.0}
    assert _documented("CreateUploadIn", ok)
    r = api.request("POST", P + "/uploads", user="olivia", body=ok)
    assert r.status_code == 201, r.body
    before = api.events()
    for size in ["100", True]:
        body = {"filename": "s2.svs", "size": size}
        assert not _documented("CreateUploadIn", body)
        r = api.request("POST", P + "/uploads", user="olivia", body=body)
        assert (r.status_code, r.json_body["field"]) == (422, "size"), r.body
    assert api.events() == before


# ---- category names: the refused characters are in the document -----------------------------


@pytest.mark.parametrize(
    ("method", "path", "model", "body"),
    [
        # schemathesis wXCXL4 (stateful): U+0081, a C1 control
        (
            "POST",
            P + "/categories",
            "AddCategoryIn",
            {"name": "\u00df\U00018870(\u1722A\u00ff\u0081", "color": "#4e79a7", "category_id": "category"},
        ),
        # schemathesis LlWAVU: U+0014
        ("POST", P + "/categories", "AddCategoryIn", {"name": "\u0014"}),
        # schemathesis NZYqRb: U+0010 and U+C63DC (unassigned)
        (
            "PATCH",
            P + "/categories/stroma",
            "UpdateCategoryIn",
            {"name": "\u00fb\U000c63dc\u00a3_\u0010h", "color": None},
        ),
    ],
)
def test_a_name_the_handler_refuses_is_invalid_in_the_document(api, method, path, model, body):
    assert not _documented(model, body)
    before = api.events()
    r = api.request(method, path, user="ana", body=body)
    assert (r.status_code, r.json_body["field"]) == (422, "name"), r.body
    assert api.events() == before


@pytest.mark.parametrize(
    "name",
    [" fat\t", "\u3000" + "a" * 100 + "\u2028", "\U00010400 deseret", "caf\u00e9 au lait", "x"],
    ids=["trimmed", "100-after-trim", "astral-letter", "latin", "one-char"],
)
def test_a_name_the_handler_accepts_is_valid_in_the_document(api, name):
    assert _documented("AddCategoryIn", {"name": name})
    r = api.request("POST", P + "/categories", user="ana", body={"name": name})
    assert r.status_code == 201, r.body
    assert r.json_body["name"] == unicodedata.normalize("NFC", name.strip(" \t\u3000\u2028"))


def test_the_name_pattern_is_the_validator():
    """Every code point below U+3100 (controls, white space, format characters) and a stride over
    the rest, alone, leading and inside a name: the pattern's verdict is the validator's."""
    pattern = re.compile(schemas.category_name_pattern())
    name = TypeAdapter(schemas.DocumentedName)

    def accepted(text: str) -> bool:
        try:
            name.validate_python(text)
            return True
        except ValueError:
            return False

    points = [*range(0x3100), *range(0x3100, 0x110000, 251)]
    for cp in points:
        if 0xD800 <= cp <= 0xDFFF:
            continue
        for text in (chr(cp), chr(cp) + "a", "a" + chr(cp) + "b"):
            assert bool(pattern.search(text)) is accepted(text), (hex(cp), text)
    for text in ["a" * 100, "a" * 101, " " * 5 + "a" * 100 + "\n", "", " \t"]:
        assert bool(pattern.search(text)) is accepted(text), text
