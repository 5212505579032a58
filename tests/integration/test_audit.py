"""Audit against the local cloud: replay as of a past time, tamper evidence, rebuild."""

from __future__ import annotations

import dataclasses
import json
import time

from histolabel.adapters.dynamo_events import DynamoEventStore
from histolabel.audit.rebuild import rebuild
from histolabel.audit.replay import Cutoff, replay
from histolabel.audit.verify import verify
from histolabel.cli import main as cli
from histolabel.commands import LabelSuperpixels, ReviewLabels, UnlabelSuperpixels
from histolabel.events.catalogue import Actor
from histolabel.events.envelope import member_label_stream
from tests.integration.conftest import ANNOTATOR, make_project

REVIEWER = Actor(user="olivia", site="nyc")


def _label(svc, project_id, ids, category, actor=ANNOTATOR):
    svc.execute(LabelSuperpixels(project_id=project_id, slide_id="s1", ids=ids, category_id=category), actor)


def test_replay_as_of_a_past_time_equals_the_state_recorded_then(svc, poller, project_id, capsys):
    make_project(svc, project_id)
    _label(svc, project_id, [1, 2, 3], "tumor")
    _label(svc, project_id, [4], "stroma")
    time.sleep(0.01)
    recorded_at = svc.clock()
    recorded = {(r["slide"], r["superpixel"]): r["category"] for r in replay(svc, project_id, Cutoff())}
    time.sleep(0.01)
    _label(svc, project_id, [2, 4, 5], "stroma")
    svc.execute(UnlabelSuperpixels(project_id=project_id, slide_id="s1", ids=[1]), ANNOTATOR)
    svc.execute(ReviewLabels(project_id=project_id, slide_id="s1", ids=[3], action="clear"), REVIEWER)
    then = {
        (r["slide"], r["superpixel"]): r["category"]
        for r in replay(svc, project_id, Cutoff(as_of=recorded_at))
    }
    assert (
        then == recorded == {("s1", 1): "tumor", ("s1", 2): "tumor", ("s1", 3): "tumor", ("s1", 4): "stroma"}
    )
    now = {(r["slide"], r["superpixel"]): r["category"] for r in replay(svc, project_id, Cutoff())}
    assert now[("s1", 2)] == "stroma" and ("s1", 1) not in now and now[("s1", 3)] is None

    assert cli(["audit", "replay", "--project", project_id, "--as-of", recorded_at, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["slide"], r["superpixel"]): r["category"] for r in rows} == recorded
    assert cli(["audit", "replay", "--project", project_id, "--slide", "s1", "--seq", "1"]) == 0
    assert capsys.readouterr().out.count("\n") == 4  # header + superpixels 1..3


def test_flipping_one_byte_of_one_event_fails_verify_and_names_it(svc, poller, project_id, capsys):
    make_project(svc, project_id)
    for i in range(5):
        _label(svc, project_id, [10 + i], "tumor")
    poller.drain()
    assert verify(svc, project_id).ok
    assert cli(["audit", "verify", "--project", project_id]) == 0

    store = DynamoEventStore(svc.settings)
    victim = list(store.read(member_label_stream(project_id, "s1", ANNOTATOR.user)))[2]
    flipped = victim.data.replace('"tumor"', '"tumot"')
    assert flipped != victim.data
    store.raw_put(dataclasses.replace(victim, data=flipped))
    result = verify(svc, project_id)
    assert not result.ok
    assert [(f.stream, f.seq) for f in result.chain_findings] == [
        (member_label_stream(project_id, "s1", ANNOTATOR.user), 3)
    ]
    assert cli(["audit", "verify", "--project", project_id]) == 1
    out = capsys.readouterr().out
    assert f"TAMPERED {member_label_stream(project_id, 's1', ANNOTATOR.user)} seq 3" in out


def test_rebuild_from_zero_equals_the_live_projection(svc, poller, project_id, capsys):
    make_project(svc, project_id, slides=("s1", "s2"))
    for i in range(30):
        svc.execute(
            LabelSuperpixels(project_id=project_id, slide_id=("s1", "s2")[i % 2], ids=[i + 1, 500 + i * 7],
                             category_id=("tumor", "stroma")[i % 3 == 0]),
            ANNOTATOR,
        )  # fmt: skip
    poller.drain()
    events, differences = rebuild(svc, project_id, write=False)
    assert differences == [] and events == 30 + 9  # labels + project setup
    assert cli(["projections", "rebuild", "--project", project_id, "--check"]) == 0
    live_total = svc.labels_total(project_id)
    assert cli(["projections", "rebuild", "--project", project_id]) == 0
    assert svc.labels_total(project_id) == live_total == 60
    assert verify(svc, project_id).ok
    capsys.readouterr()


def test_history_lists_who_did_what(svc, project_id, capsys):
    make_project(svc, project_id)
    _label(svc, project_id, [42], "tumor")
    assert (
        cli(["audit", "history", "--project", project_id, "--superpixel", "s1:42", "--format", "json"]) == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [(r["user"], r["type"]) for r in rows] == [("ana", "SuperpixelsLabeled")]
    assert cli(["audit", "history", "--project", "nope-" + project_id]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_rebuild_repairs_a_damaged_projection_in_place_and_rewrites_only_what_differs(
    svc, poller, project_id, capsys
):
    """`histolabel projections rebuild` on a projection with a wrong bucket and a stray one:
    both are put right (the stray deleted) and a sound bucket is not written at all (an extra
    attribute on its item survives), so the live projection is never dropped wholesale."""
    from histolabel.adapters.aws import client
    from histolabel.events.envelope import label_stream

    make_project(svc, project_id)
    _label(svc, project_id, [1, 2, 3], "tumor")
    _label(svc, project_id, [300, 301], "stroma")
    poller.drain()
    ddb, table = client("dynamodb", svc.settings), svc.settings.projections_table
    pk = label_stream(project_id, "s1")

    def item(sk):
        key = {"pk": {"S": pk}, "sk": {"S": sk}}
        return ddb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")

    wrong = item("B#00000000")
    wrong["body"]["S"] = wrong["body"]["S"].replace("tumor", "stroma")
    ddb.put_item(TableName=table, Item=wrong)
    # a label on superpixel 9 * 256 + 1 that no event ever made
    ghost = json.dumps({"2305": json.loads(item("B#00000001")["body"]["S"])["300"]})
    ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": "B#00000009"}, "body": {"S": ghost}})
    ddb.update_item(
        TableName=table,
        Key={"pk": {"S": pk}, "sk": {"S": "B#00000001"}},
        UpdateExpression="SET marker = :m",
        ExpressionAttributeValues={":m": {"S": "untouched"}},
    )
    assert not verify(svc, project_id).ok
    assert cli(["projections", "rebuild", "--project", project_id]) == 0
    assert verify(svc, project_id).ok
    assert svc.projections.load_slide(project_id, "s1").current() == {
        1: "tumor", 2: "tumor", 3: "tumor", 300: "stroma", 301: "stroma"
    }  # fmt: skip
    assert item("B#00000009") is None
    assert item("B#00000001")["marker"]["S"] == "untouched"
    capsys.readouterr()
