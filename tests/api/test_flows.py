"""What the routes do: labels per user, idempotency, queue, review filters, agreement, audit."""

from __future__ import annotations

P = "/projects/proj"
S1 = P + "/slides/s1"


def label(api, user, cat, ids, key=None, path="labels"):
    headers = {"Idempotency-Key": key} if key else None
    r = api.request("POST", f"{S1}/{path}", user=user, body={"category_id": cat, "ids": ids}, headers=headers)
    assert r.status_code == 200, r.body
    return r.json_body


def test_labels_are_kept_per_user_and_idempotent(api):
    first = label(api, "ana", "tumor", [1, 2, 3], key="k1")
    assert first["appended"] == 1 and not first["duplicate"]
    before = api.events()
    again = label(api, "ana", "tumor", [1, 2, 3], key="k1")
    assert again["duplicate"] and again["command_id"] == first["command_id"]
    assert api.events() == before
    label(api, "olivia", "stroma", [2])
    entries = {e["id"]: e for e in api.request("GET", f"{S1}/labels", user="audrey").json_body["entries"]}
    assert entries[2]["c"] == "stroma" and entries[2]["cb"] == "olivia"
    assert entries[2]["l"]["ana"][0] == "tumor"
    r = api.request("POST", f"{S1}/unlabel", user="olivia", body={"ids": [2]})
    assert r.status_code == 200
    entries = {e["id"]: e for e in api.request("GET", f"{S1}/labels", user="ana").json_body["entries"]}
    assert entries[2]["c"] == "tumor"


def test_queue_never_returns_what_was_just_answered(api):
    first = api.request("GET", f"{P}/queue?n=20", user="ana").json_body["items"]
    assert len(first) == 20 and len({i["id"] for i in first}) == 20
    assert all(1 <= i["id"] <= 5000 and i["slide_id"] == "s1" for i in first)
    # The order is fixed for the project: asking again gives the same superpixels (renewing
    # their leases); a colleague asking meanwhile gets the next ones (tests/api/test_leases.py).
    assert api.request("GET", f"{P}/queue?n=20", user="ana").json_body["items"] == first
    answered = [i["id"] for i in first[:5]]
    label(api, "ana", "tumor", answered)
    after = [i["id"] for i in api.request("GET", f"{P}/queue?n=20", user="ana").json_body["items"]]
    assert not set(answered) & set(after)
    assert after[:15] == [i["id"] for i in first[5:]]


def test_review_filters_sorts_groups_and_pages(api):
    label(api, "ana", "tumor", [1, 2, 3, 4])
    label(api, "olivia", "stroma", [3, 4, 5])
    r = api.request("POST", f"{S1}/review", user="rex", body={"action": "approve", "ids": [1]})
    assert r.status_code == 200
    r = api.request(
        "POST", f"{S1}/review", user="rex", body={"action": "change", "ids": [5], "category_id": "tumor"}
    )
    assert r.status_code == 200
    page = api.request("GET", f"{P}/review?group_by=label&limit=2", user="audrey").json_body
    assert page["total"] == 5 and page["groups"] == {"stroma": 2, "tumor": 3}
    assert len(page["items"]) == 2 and page["next_cursor"] == "2"
    rest = api.request("GET", f"{P}/review?group_by=label&limit=2&cursor=2", user="audrey").json_body
    assert [i["label"] for i in page["items"] + rest["items"]][:2] == ["stroma", "stroma"]
    differs = api.request(
        "GET", f"{P}/review?compare_a=user:ana&compare_b=user:olivia&compare=differs", user="ana"
    )
    assert [i["id"] for i in differs.json_body["items"]] == [3, 4]
    approved = api.request("GET", f"{P}/review?review=approve", user="ana").json_body["items"]
    assert [(i["id"], i["review"]["by"]) for i in approved] == [(1, "rex")]
    by_rex = api.request("GET", f"{P}/review?reviewed_by=rex&sort=review&order=desc", user="ana").json_body
    assert [i["id"] for i in by_rex["items"]] == [5, 1]  # "change" after "approve", reversed
    by_olivia = api.request("GET", f"{P}/review?labeled_by=olivia", user="ana").json_body
    assert [i["id"] for i in by_olivia["items"]] == [3, 4, 5]


def test_agreement_between_users(api):
    label(api, "ana", "tumor", [1, 2, 3, 4])
    label(api, "olivia", "tumor", [1, 2])
    label(api, "olivia", "stroma", [3, 4])
    body = api.request("GET", f"{P}/agreement", user="audrey").json_body
    (pair,) = body["users"]["pairs"]
    assert (pair["a"], pair["b"], pair["n"]) == ("ana", "olivia", 4)
    # ana always says tumor: expected agreement equals observed, so kappa is 0.
    assert abs(pair["kappa"]) < 1e-9
    assert body["predictions"] is None


def test_categories_merge_and_delete_are_explicit(api):
    label(api, "ana", "stroma", [1, 2])
    label(api, "ana", "necrosis", [3])
    r = api.request(
        "POST", f"{P}/categories/merge", user="olivia", body={"sources": ["stroma"], "target": "tumor"}
    )
    assert r.status_code == 200 and r.json_body["id"] == "tumor"
    rows = api.request("GET", f"{P}/review", user="olivia").json_body["items"]
    assert [(i["id"], i["label"]) for i in rows] == [(1, "tumor"), (2, "tumor"), (3, "necrosis")]
    # The slide's labels (what the overlay is coloured from) follow the merge too.
    labels = api.request("GET", f"{S1}/labels", user="ana").json_body
    assert [(e["id"], e["c"], e["l"]["ana"][0]) for e in labels["entries"]] == [
        (1, "tumor", "tumor"),
        (2, "tumor", "tumor"),
        (3, "necrosis", "necrosis"),
    ]
    assert labels["counts"] == {"tumor": 2, "necrosis": 1}
    r = api.request("DELETE", f"{P}/categories/necrosis", user="olivia")
    assert r.json_body == {"deleted": "necrosis", "labels_cleared": 1}
    labels = api.request("GET", f"{S1}/labels", user="ana").json_body
    assert [e["id"] for e in labels["entries"]] == [1, 2] and labels["counts"] == {"tumor": 2}
    ids = [c["id"] for c in api.request("GET", P, user="ana").json_body["categories"]]
    assert ids == ["tumor"]


def test_category_defaults_and_edits(api):
    r = api.request("POST", f"{P}/categories", user="ana", body={"name": "Fat"})
    assert r.status_code == 201
    cat = r.json_body
    assert cat["hotkey"] == "4" and cat["color"].startswith("#")
    r = api.request(
        "PATCH", f"{P}/categories/{cat['id']}", user="ana", body={"hotkey": "Shift+F", "color": "#00ff00"}
    )
    assert (r.json_body["hotkey"], r.json_body["color"]) == ("shift+f", "#00ff00")
    r = api.request("PATCH", f"{P}/categories/{cat['id']}", user="ana", body={"hotkey": None})
    assert r.json_body["hotkey"] is None


def test_audit_history_and_replay(api):
    label(api, "ana", "tumor", [1, 2])
    label(api, "ana", "stroma", [2])
    hist = api.request("GET", f"{P}/audit/history?slide=s1&superpixel=2", user="audrey").json_body
    assert hist["chain_ok"] and [e["data"]["category_id"] for e in hist["events"]] == ["tumor", "stroma"]
    first_at = hist["events"][0]["at"]
    replay = api.request("GET", f"{P}/audit/replay?as_of={first_at}", user="audrey").json_body
    assert replay["slides"]["s1"]["counts"] == {"tumor": 2}
    assert all(replay["chains"].values())
    now = api.request("GET", f"{P}/audit/replay?as_of=2999-01-01", user="audrey").json_body
    assert now["slides"]["s1"]["counts"] == {"tumor": 1, "stroma": 1}
    assert (
        api.request("GET", f"{P}/audit/replay?as_of=1999-01-01", user="audrey").json_body["project"] is None
    )
    # One slide's replay carries its labels, so the web app paints the server's fold, not its own.
    one = api.request("GET", f"{P}/audit/replay?as_of={first_at}&slide=s1", user="audrey").json_body
    assert one["slides"]["s1"]["labels"] == {"1": "tumor", "2": "tumor"}
    latest = api.request("GET", f"{P}/audit/replay?as_of=2999-01-01&slide=s1", user="audrey").json_body
    assert latest["slides"]["s1"]["labels"] == {"1": "tumor", "2": "stroma"}
    assert "labels" not in now["slides"]["s1"]  # a whole-project replay stays a summary


def test_training_request_and_status(api):
    r = api.request("POST", f"{P}/training", user="ana")
    assert r.status_code == 202
    request_id = r.json_body["request_id"]
    status = api.request("GET", f"{P}/training", user="audrey").json_body
    assert [run["request_id"] for run in status["runs"]] == [request_id]
    assert status["runs"][0]["status"] == "requested" and status["threshold"] == 50
    assert api.request("POST", f"{P}/training", user="rex").status_code == 409


def test_export_csv_anonymized(api):
    label(api, "ana", "tumor", [1])
    label(api, "olivia", "stroma", [2])
    named = api.request("GET", f"{P}/export?format=csv", user="rex").body.decode()
    assert "ana" in named and "olivia" in named
    anon = api.request("GET", f"{P}/export?format=csv&anonymize=true", user="rex").body.decode()
    assert "ana" not in anon and "olivia" not in anon and "annotator-1" in anon
    lines = anon.strip().splitlines()
    assert lines[0].startswith("slide_id,id,label") and len(lines) == 3


def test_cors_preflight_allows_the_idempotency_key_header(api):
    from chalice.config import Config
    from chalice.local import LocalGateway

    # chalice.test.Client cannot read a preflight answer (no body); the local gateway can.
    r = LocalGateway(api.app, Config()).handle_request(
        "OPTIONS",
        f"{S1}/labels",
        {
            "origin": "http://web.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization,content-type,idempotency-key",
        },
        b"",
    )
    assert r["statusCode"] == 200
    allowed = {h.strip().lower() for h in r["headers"]["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed
    assert r["headers"]["Access-Control-Allow-Origin"] == "*"


def test_many_labels_are_a_redirect_to_a_copy_per_label_state(api, cloud, monkeypatch):
    """A slide's labels past the inline limit: a 303 to a copy in the data bucket; a new edit is a
    new state (a new copy), the same state is the same copy."""
    import json
    import urllib.request

    label(api, "ana", "tumor", list(range(1, 2001)), key="bulk")
    inline = api.request("GET", f"{S1}/labels", user="ana").json_body
    assert len(inline["entries"]) == 2000
    monkeypatch.setenv("HISTOLABEL_INLINE_RESPONSE_BYTES", "5000")
    first = api.request("GET", f"{S1}/labels", user="ana")
    assert first.status_code == 303, first.body
    with urllib.request.urlopen(first.headers["Location"], timeout=10) as res:
        assert json.loads(res.read()) == inline
    assert (
        api.request("GET", f"{S1}/labels", user="audrey").headers["Location"].split("?")[0]
        == (first.headers["Location"].split("?")[0])
    )
    label(api, "olivia", "stroma", [7])
    after = api.request("GET", f"{S1}/labels", user="ana")
    assert after.headers["Location"].split("?")[0] != first.headers["Location"].split("?")[0]
    with urllib.request.urlopen(after.headers["Location"], timeout=10) as res:
        entries = {e["id"]: e for e in json.loads(res.read())["entries"]}
    assert entries[7]["c"] == "stroma" and len(entries) == 2000
    assert api.request("GET", f"{S1}/labels", user="oscar").status_code == 403


def test_resolved_entries_follow_merges_and_deletions():
    from histolabel.api.views import resolved_entries

    now = {"stroma": "tumor", "tumor": "tumor", "fat": None}.get
    entries = {
        2: {
            "c": "stroma",
            "cb": "ana",
            "ca": "t1",
            "l": {"ana": ["stroma", "t1"], "rex": ["fat", "t2"]},
            "r": None,
        },
        1: {"c": "fat", "cb": "ana", "ca": "t1", "l": {"ana": ["fat", "t1"]}, "r": None},
        3: {
            "c": "fat",
            "cb": "rex",
            "ca": "t3",
            "l": {"ana": ["stroma", "t1"], "rex": ["fat", "t3"]},
            "r": {"by": "olivia", "a": "change", "c": "stroma", "at": "t4"},
        },
    }
    out, counts = resolved_entries(entries, now)
    assert [(e["id"], e["c"], e["l"], (e["r"] or {}).get("c")) for e in out] == [
        (2, "tumor", {"ana": ["tumor", "t1"]}, None),
        (3, None, {"ana": ["tumor", "t1"]}, "tumor"),
    ]
    assert counts == {"tumor": 1}
    assert entries[2]["c"] == "stroma"  # the stored entries are left as they were


def test_review_ids_page_through_everything_that_matches(api):
    label(api, "ana", "tumor", list(range(1, 1201)))
    label(api, "ana", "stroma", list(range(1201, 1301)))
    got: list[int] = []
    cursor = None
    pages = 0
    while True:
        q = "label=tumor&limit=500" + (f"&cursor={cursor}" if cursor else "")
        r = api.request("GET", f"{P}/review/ids?{q}", user="rex")
        assert r.status_code == 200, r.body
        assert r.json_body["total"] == 1200 and set(r.json_body["slides"]) <= {"s1"}
        got += r.json_body["slides"].get("s1", [])
        pages += 1
        cursor = r.json_body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and got == list(range(1, 1201))
    r = api.request("GET", f"{P}/review/ids?limit=100001", user="rex")
    assert r.status_code == 422 and r.json_body["field"] == "limit"
