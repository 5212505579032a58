"""The anchored audit chain against the local cloud: each tampering an attacker with write access
to the events table could try, done to the real table, then `histolabel audit verify` run as the
auditor runs it. Also: the append path cannot overwrite, and anchors cannot be rewritten."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from histolabel.adapters.anchor_store import S3AnchorStore
from histolabel.adapters.aws import client
from histolabel.adapters.dynamo_events import DynamoEventStore, to_item
from histolabel.adapters.seals import MacKey, mac_key_id, mac_with
from histolabel.audit.rebuild import rebuild
from histolabel.audit.verify import verify
from histolabel.cli import main as cli
from histolabel.commands import LabelSuperpixels
from histolabel.events.envelope import StoredEvent, member_label_stream
from histolabel.eventstore import AppendConflict
from histolabel.runtime.anchorer_lambda import Anchorer
from tests.integration.conftest import ANNOTATOR, make_project


def _label(svc, project_id, sp):
    cmd = LabelSuperpixels(project_id=project_id, slide_id="s1", ids=[sp], category_id="tumor")
    svc.execute(cmd, ANNOTATOR)


@pytest.fixture
def anchored(svc, poller, project_id):
    """A slide stream of 6 events, anchored after event 2 (a) and after event 6 (b)."""
    make_project(svc, project_id)
    anchorer = Anchorer(svc)
    for sp in (1, 2):
        _label(svc, project_id, sp)
    first = anchorer.anchor_project(project_id)
    for sp in (3, 4, 5, 6):
        _label(svc, project_id, sp)
    second = anchorer.anchor_project(project_id)
    poller.drain()
    stream = member_label_stream(project_id, "s1", ANNOTATOR.user)
    assert first is not None and first.heads[stream][0] == 2
    assert second is not None and second.heads[stream][0] == 6
    assert verify(svc, project_id).ok
    return anchorer, stream


def _verify_cli(capsys, project_id) -> tuple[int, str]:
    code = cli(["audit", "verify", "--project", project_id])
    return code, capsys.readouterr().out


def _rehash_from(events: list[StoredEvent], index: int, **changes) -> list[StoredEvent]:
    """Rewrite events[index] and re-chain everything after it, as a careful forger would."""
    out = []
    prev = events[index - 1].hash
    for i, e in enumerate(events[index:]):
        forged = dataclasses.replace(e, prev_hash=prev, **(changes if i == 0 else {})).sealed()
        out.append(forged)
        prev = forged.hash
    return out


def test_a_forged_middle_event_with_later_hashes_recomputed_is_caught(svc, project_id, anchored, capsys):
    _anchorer, stream = anchored
    store = DynamoEventStore(svc.settings)
    events = list(store.read(stream))
    data = events[3].data.replace('"tumor"', '"stroma"')
    for forged in _rehash_from(events, 3, actor_user="mallory", data=data):
        store.raw_put(forged)
    # The chain itself is consistent now, and a rebuild makes the projection agree with it.
    assert cli(["projections", "rebuild", "--project", project_id]) == 0
    result = verify(svc, project_id)
    assert result.chain_findings == [] and result.projection_findings == []
    code, out = _verify_cli(capsys, project_id)
    assert code == 1
    # The newest anchor (seq 6) is contradicted; the one at seq 2 holds; seq 4 has no MAC.
    assert f"TAMPERED {stream} seq 3: breaks anchor" in out
    assert "rewritten history" in out and "covers it up to seq 2" in out
    assert f"TAMPERED {stream} seq 4: no valid append-path MAC" in out and "'mallory'" in out


def test_a_forged_event_appended_at_the_end_as_another_user_is_caught(svc, project_id, anchored, capsys):
    anchorer, stream = anchored
    store = DynamoEventStore(svc.settings)
    head = list(store.read(stream))[-1]
    forged = dataclasses.replace(
        head, seq=7, prev_hash=head.hash, actor_user="mallory", actor_site="elsewhere", cmd="x"
    ).sealed()
    store.raw_put(forged)
    # The timer runs before the auditor does: it must not vouch for the forgery.
    anchorer.anchor_all()
    latest = S3AnchorStore(svc.settings).latest(project_id)
    assert latest is not None and latest.heads[stream][0] == 6
    code, out = _verify_cli(capsys, project_id)
    assert code == 1
    assert f"TAMPERED {stream} seq 7: no valid append-path MAC" in out and "'mallory'" in out
    assert "first event after the last good anchor" in out and "seq 7" in out


def _forge_at_end(store: DynamoEventStore, stream: str, mac: str | None = None, **changes) -> StoredEvent:
    head = list(store.read(stream))[-1]
    forged = dataclasses.replace(
        head, seq=head.seq + 1, prev_hash=head.hash, actor_user="mallory", cmd="x", **changes
    ).sealed()
    item = to_item(forged)
    if mac is not None:
        item["mac"] = {"S": mac}
    store.ddb.put_item(TableName=store.table, Item=item)
    return forged


def _put_mac_key(store: DynamoEventStore, key: MacKey) -> None:
    item = {"stream": {"S": f"K#{key.id}"}, "seq": {"N": "0"}, "created": {"S": key.created},
            "wrapped": {"B": key.wrapped}}  # fmt: skip
    store.ddb.put_item(TableName=store.table, Item=item)


def test_a_mac_copied_from_a_real_event_or_made_with_a_key_of_ones_own_is_refused(svc, project_id, anchored):
    _anchorer, stream = anchored
    store = DynamoEventStore(svc.settings)
    real_mac = store.mac_of(stream, 6)
    assert real_mac and store.mac_valid(list(store.read(stream))[-1])
    copied = _forge_at_end(store, stream, mac=real_mac)
    assert not store.mac_valid(copied)
    # A key item of the forger's own: random bytes for a wrapped key, which KMS will not unwrap.
    own = MacKey("f" * 32, datetime.now(UTC).isoformat(), os.urandom(184), os.urandom(32))
    _put_mac_key(store, own)
    forged = _forge_at_end(store, stream, mac=mac_with(own, "x"))
    forged_item_mac = mac_with(own, forged.hash)
    store.ddb.put_item(TableName=store.table, Item={**to_item(forged), "mac": {"S": forged_item_mac}})
    assert not store.mac_valid(forged)
    result = verify(svc, project_id)
    assert [(f.stream, f.seq) for f in result.anchor_findings if "MAC" in f.problem] == [(stream, 7)]


def test_a_mac_key_taken_from_memory_vouches_only_for_events_of_its_life(svc, project_id, anchored):
    """A data key's plaintext copied out of a process: events stamped inside its five minutes
    pass (that is what anchors every minute are for), events stamped later do not, and moving
    its creation time forward breaks its unwrapping (the time is in the encryption context)."""
    _anchorer, stream = anchored
    store = svc.events  # the process whose memory the key is taken from
    head = list(store.read(stream))[-1]
    key_id = mac_key_id(store.mac_of(stream, head.seq) or "")
    stolen = store.seals.current_mac_key()
    assert key_id is not None
    later = (datetime.fromisoformat(head.at) + timedelta(hours=1)).isoformat(timespec="microseconds")
    late = dataclasses.replace(head, seq=head.seq + 1, prev_hash=head.hash, actor_user="mallory", at=later)
    late = late.sealed()
    store.ddb.put_item(
        TableName=store.table, Item={**to_item(late), "mac": {"S": mac_with(stolen, late.hash)}}
    )
    assert stolen.id == key_id  # the key the real events were MACed with
    assert not store.mac_valid(late)
    in_life = dataclasses.replace(late, at=head.at).sealed()
    store.ddb.put_item(
        TableName=store.table, Item={**to_item(in_life), "mac": {"S": mac_with(stolen, in_life.hash)}}
    )
    assert store.mac_valid(in_life)
    # Extending the key's life in its stored item: KMS no longer unwraps it.
    moved = dataclasses.replace(stolen, created=later, plain=b"")
    _put_mac_key(store, moved)
    fresh = DynamoEventStore(svc.settings)  # no unwrapped copy cached
    assert not fresh.mac_valid(late)
    assert not fresh.mac_valid(in_life)


def test_deleting_the_last_event_is_caught(svc, project_id, anchored, capsys):
    _anchorer, stream = anchored
    ddb = client("dynamodb", svc.settings)
    ddb.delete_item(TableName=svc.settings.events_table, Key={"stream": {"S": stream}, "seq": {"N": "6"}})
    assert verify(svc, project_id).chain_findings == []  # a shorter chain is still a chain
    code, out = _verify_cli(capsys, project_id)
    assert code == 1
    assert f"TAMPERED {stream} seq 3: breaks anchor" in out
    assert "anchored up to seq 6, but the stream ends at seq 5 (truncated)" in out
    assert "first event after it: seq 3" in out


def test_truncating_a_stream_is_caught_by_the_auditors_command(svc, project_id, anchored):
    _anchorer, stream = anchored
    ddb = client("dynamodb", svc.settings)
    for seq in (3, 4, 5, 6):
        key = {"stream": {"S": stream}, "seq": {"N": str(seq)}}
        ddb.delete_item(TableName=svc.settings.events_table, Key=key)
    # The auditor's own process, through the console script, as the README says.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(
        [sys.executable, "-m", "histolabel.cli", "audit", "verify", "--project", project_id],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "anchored up to seq 6, but the stream ends at seq 2 (truncated)" in run.stdout
    assert "covers it up to seq 2" in run.stdout


def test_the_append_path_refuses_to_overwrite_an_event(svc, project_id):
    make_project(svc, project_id)
    _label(svc, project_id, 9)
    store = DynamoEventStore(svc.settings)
    stream = member_label_stream(project_id, "s1", ANNOTATOR.user)
    original = next(iter(store.read(stream)))
    rewrite = dataclasses.replace(original, actor_user="mallory").sealed()
    with pytest.raises(AppendConflict) as refused:
        store.append([rewrite])
    assert refused.value.seen[stream] == (1, original.hash)
    assert list(store.read(stream)) == [original]
    assert store.mac_valid(original)


def test_anchors_cannot_be_deleted_and_a_rewritten_anchor_is_reported(svc, project_id, anchored, capsys):
    _anchorer, _stream = anchored
    anchors = S3AnchorStore(svc.settings)
    s3 = client("s3", svc.settings)
    versions = s3.list_object_versions(Bucket=anchors.bucket, Prefix=f"anchors/{project_id}/")["Versions"]
    newest = max(versions, key=lambda v: v["Key"])
    with pytest.raises(ClientError) as denied:
        s3.delete_object(Bucket=anchors.bucket, Key=newest["Key"], VersionId=newest["VersionId"])
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    # Someone without the signing key writes a new version over it and hides the rest.
    body = json.loads(s3.get_object(Bucket=anchors.bucket, Key=newest["Key"])["Body"].read())
    body["message"] = body["message"].replace('"timer"', '"forged"')
    s3.put_object(Bucket=anchors.bucket, Key=newest["Key"], Body=json.dumps(body).encode())
    s3.delete_object(Bucket=anchors.bucket, Key=newest["Key"])  # a delete marker on top
    code, out = _verify_cli(capsys, project_id)
    assert code == 1
    assert "has no valid signature (forged)" in out
    # The locked, signed versions underneath still count.
    assert verify(svc, project_id).last_good_anchor == (
        f"s3://{anchors.bucket}/{newest['Key']}?versionId={newest['VersionId']}"
    )


def test_rebuild_does_not_hide_a_rehashed_forgery(svc, project_id, anchored):
    """Before anchors, a re-hashed forgery only showed as a projection mismatch, gone after rebuild."""
    _anchorer, stream = anchored
    store = DynamoEventStore(svc.settings)
    events = list(store.read(stream))
    for forged in _rehash_from(events, 1, actor_user="mallory"):
        store.raw_put(forged)
    rebuild(svc, project_id, write=True)
    result = verify(svc, project_id)
    assert not result.ok
    assert [(f.stream, f.seq) for f in result.anchor_findings][:1] == [(stream, 1)]
