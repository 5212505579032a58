"""GET .../changes: what a client polls for live updates. It must bring exactly the superpixels
touched since the client's label cursor (a seq per label stream of the slide: one per member),
as GET .../labels answers them, whether the projector is behind, caught up or ahead of the
client, and say when the project stream moved."""

from __future__ import annotations

from histolabel.projections.projector import Projector

P = "/projects/proj"
S1 = P + "/slides/s1"


def post(api, user, path, body):
    r = api.request("POST", f"{S1}/{path}", user=user, body=body)
    assert r.status_code == 200, r.body
    return r.json_body


def changes(api, user, cursor, slide="s1"):
    seq, text = cursor
    r = api.request("GET", f"{P}/changes?slide={slide}&labels_seq={seq}&labels_cursor={text}", user=user)
    assert r.status_code == 200, r.body
    return r.json_body


def moved_to(out):
    return out["labels_seq"], out["labels_cursor"]


def project_all(api):
    svc = api.svc
    Projector(svc.projections, svc.events).handle_all(
        e for s in svc.events.streams.values() for e in s.values()
    )


def full(api, user="audrey"):
    body = api.request("GET", f"{S1}/labels", user=user).json_body
    return (body["seq"], body["cursor"]), {e["id"]: e for e in body["entries"]}


def test_changes_bring_the_touched_superpixels_as_the_labels_route_shows_them(api):
    post(api, "ana", "labels", {"category_id": "tumor", "ids": [1, 2, 3]})
    seq, _ = full(api)
    nothing = changes(api, "rex", seq)
    assert moved_to(nothing) == seq and nothing["entries"] == [] and nothing["removed"] == []
    assert not nothing["reload"]

    # A colleague labels over ana's superpixel, another clears one, an unlabel empties a third.
    post(api, "olivia", "labels", {"category_id": "stroma", "ids": [2, 900]})
    post(api, "rex", "review", {"action": "clear", "ids": [3]})
    post(api, "ana", "unlabel", {"ids": [1]})
    out = changes(api, "rex", seq)
    after, entries = full(api)
    assert moved_to(out) == after and after[0] == seq[0] + 3
    got = {e["id"]: e for e in out["entries"]}
    assert set(got) == {2, 3, 900} and out["removed"] == [1]
    assert got == {i: entries[i] for i in (2, 3, 900)}
    assert got[2]["c"] == "stroma" and set(got[2]["l"]) == {"ana", "olivia"}
    assert changes(api, "ana", after)["entries"] == []


def test_changes_exact_when_the_projection_is_behind_or_ahead_of_the_client(api):
    post(api, "ana", "labels", {"category_id": "tumor", "ids": [10, 11]})
    project_all(api)  # projection at the first label event
    post(api, "olivia", "labels", {"category_id": "stroma", "ids": [11, 300]})
    client_seq, _ = full(api)
    post(api, "ana", "labels", {"category_id": "necrosis", "ids": [300, 600]})
    # Projection behind the client: buckets are caught up through the client's seq first.
    out = changes(api, "rex", client_seq)
    _, entries = full(api)
    assert {e["id"]: e for e in out["entries"]} == {300: entries[300], 600: entries[600]}
    assert set(entries[300]["l"]) == {"olivia", "ana"}
    # Projection ahead of the client: the same answer.
    project_all(api)
    assert changes(api, "rex", client_seq)["entries"] == out["entries"]


def test_project_seq_moves_with_category_changes_and_bad_queries_are_refused(api):
    before = changes(api, "audrey", (0, ""))["project_seq"]
    assert api.request("GET", P, user="ana").json_body["seq"] == before
    r = api.request("PATCH", f"{P}/categories/tumor", user="ana", body={"name": "Tumour"})
    assert r.status_code == 200, r.body
    assert changes(api, "audrey", (0, ""))["project_seq"] == before + 1
    assert api.request("GET", f"{P}/changes", user="audrey").json_body == {"project_seq": before + 1}
    bad = api.request("GET", f"{P}/changes?slide=s1&labels_seq=-1", user="audrey")
    assert bad.status_code == 422 and bad.json_body["field"] == "labels_seq"
    bad = api.request("GET", f"{P}/changes?slide=s1&labels_cursor=no%20such", user="audrey")
    assert bad.status_code == 422 and bad.json_body["field"] == "labels_cursor", bad.body
    # Garbage, broken base64, a JSON list: not a cursor this API handed out, so start again.
    for cursor in ("not-a-cursor", "e30x", "WyJhIl0"):
        assert changes(api, "audrey", (0, cursor))["reload"]
    # A client that holds a seq but no cursor (before cursors) is told to reload, not misled.
    assert changes(api, "audrey", (3, ""))["reload"]
    missing = api.request("GET", f"{P}/changes?slide=nope", user="audrey")
    assert missing.status_code == 404
    outsider = api.request("GET", f"{P}/changes", user="oscar")
    assert outsider.status_code == 403
