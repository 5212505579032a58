"""The event store on DynamoDB: conditional puts in one TransactWriteItems per command.

`append` is the only write path, and the only holder of the event MAC key: every put is
conditional on the (stream, seq) being free, so it can add events but never overwrite one, and
every event carries a MAC of its hash, made with a KMS data key whose wrapped copy is stored as
`K#{key id}` (histolabel/adapters/seals.py). IAM cannot force a
ConditionExpression on PutItem (no condition key says "only if absent"), so in AWS this path
runs under a role that alone may write the events table and use the MAC key; the API and jobs
reach it through it, never with table write grants of their own. An event written any other way
has no valid MAC, and `audit verify` and the anchorer say so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from histolabel.adapters.aws import client
from histolabel.adapters.seals import KmsSeals, MacKey, mac_key_id, mac_with
from histolabel.config import Settings
from histolabel.events.envelope import (
    GENESIS_HASH,
    StoredEvent,
    directory_of,
    directory_slot,
    member_of,
    slide_directory,
)
from histolabel.eventstore import AppendConflict, DuplicateCommand

_STRING_FIELDS = (
    "type",
    "data",
    "project",
    "actor_user",
    "actor_site",
    "at",
    "idem",
    "cmd",
    "prev_hash",
    "hash",
)


def to_item(event: StoredEvent) -> dict[str, Any]:
    item: dict[str, Any] = {
        "stream": {"S": event.stream},
        "seq": {"N": str(event.seq)},
        "v": {"N": str(event.v)},
    }
    for name in _STRING_FIELDS:
        item[name] = {"S": getattr(event, name)}
    return item


def directory_item(stream: str) -> dict[str, Any]:
    """A member label stream's entry in its slide's directory."""
    return {
        "stream": {"S": directory_of(stream)},
        "seq": {"N": str(directory_slot(stream))},
        "member_stream": {"S": stream},
    }


def items_of(event: StoredEvent) -> list[dict[str, Any]]:
    """What an append stores for the event, less its MAC: for copying histories in raw (bench)."""
    listed = event.seq == 1 and member_of(event.stream)
    return [to_item(event)] + ([directory_item(event.stream)] if listed else [])


def idempotency_item(stream: str, result: dict[str, Any]) -> dict[str, Any]:
    """The command's idempotency record, stored with its events: the result a retry is given."""
    return {"stream": {"S": stream}, "seq": {"N": "0"}, "result": {"S": json.dumps(result)}}


def mac_key_stream(key_id: str) -> str:
    return f"K#{key_id}"


def from_item(item: dict[str, Any]) -> StoredEvent:
    return StoredEvent(
        stream=item["stream"]["S"],
        seq=int(item["seq"]["N"]),
        v=int(item["v"]["N"]),
        **{name: item[name]["S"] for name in _STRING_FIELDS},
    )


class DynamoEventStore:
    def __init__(self, settings: Settings, seals: KmsSeals | None = None) -> None:
        self.table = settings.events_table
        self.ddb = client("dynamodb", settings)
        self.seals = seals or KmsSeals(settings)
        self._stored_keys: set[str] = set()
        # Key items are written once (conditional put): a verifier reads each once, not per event.
        self._read_keys: dict[str, MacKey] = {}

    def _mac_key(self) -> MacKey:
        """The seals' current data key, its wrapped copy stored before its first MAC is."""
        key = self.seals.current_mac_key()
        if key.id not in self._stored_keys:
            try:
                self.ddb.put_item(
                    TableName=self.table,
                    Item={
                        "stream": {"S": mac_key_stream(key.id)},
                        "seq": {"N": "0"},
                        "created": {"S": key.created},
                        "wrapped": {"B": key.wrapped},
                    },
                    ConditionExpression="attribute_not_exists(#s)",
                    ExpressionAttributeNames={"#s": "stream"},
                )
            except ClientError as err:
                # Another store sharing these seals stored it first (ids are random).
                if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
            self._stored_keys.add(key.id)
        return key

    def stored_mac_key(self, key_id: str) -> MacKey | None:
        key = self._read_keys.get(key_id) or self._read_mac_key(key_id)
        if key is not None:
            self._read_keys[key_id] = key
        return key

    def _read_mac_key(self, key_id: str) -> MacKey | None:
        resp = self.ddb.get_item(
            TableName=self.table,
            Key={"stream": {"S": mac_key_stream(key_id)}, "seq": {"N": "0"}},
            ConsistentRead=True,
        )
        item = resp.get("Item")
        if not item or "wrapped" not in item or "created" not in item:
            return None
        return MacKey(key_id, item["created"]["S"], bytes(item["wrapped"]["B"]), b"")

    def mac_of(self, stream: str, seq: int) -> str | None:
        resp = self.ddb.get_item(
            TableName=self.table,
            Key={"stream": {"S": stream}, "seq": {"N": str(seq)}},
            ConsistentRead=True,
            ProjectionExpression="mac",
        )
        mac = resp.get("Item", {}).get("mac")
        return mac["S"] if mac else None

    def mac_valid(self, event: StoredEvent) -> bool:
        """Whether the stored event carries the append path's MAC of its hash, made with a key
        the append path stored while the event was made."""
        mac = self.mac_of(event.stream, event.seq)
        key_id = mac_key_id(mac) if mac else None
        key = self.stored_mac_key(key_id) if key_id else None
        return self.seals.mac_valid(event.hash, event.at, mac, key)

    def head(self, stream: str) -> tuple[int, str]:
        resp = self.ddb.query(
            TableName=self.table,
            KeyConditionExpression="#s = :s",
            ExpressionAttributeNames={"#s": "stream", "#h": "hash"},
            ExpressionAttributeValues={":s": {"S": stream}},
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
            ProjectionExpression="seq, #h",
        )
        items = resp.get("Items", [])
        if not items:
            return 0, GENESIS_HASH
        return int(items[0]["seq"]["N"]), items[0]["hash"]["S"]

    def streams_after(self, heads: dict[str, int]) -> set[str]:
        """Seqs are dense, so a stream moved past `seq` exactly when (stream, seq + 1) exists:
        BatchGetItem of those keys, 100 at a time, keys only."""
        keys = [{"stream": {"S": s}, "seq": {"N": str(seq + 1)}} for s, seq in sorted(heads.items())]
        moved: set[str] = set()
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": keys[start : start + 100],
                    "ConsistentRead": True,
                    "ProjectionExpression": "#s",
                    "ExpressionAttributeNames": {"#s": "stream"},
                }
            }
            while request:
                resp = self.ddb.batch_get_item(RequestItems=request)
                moved |= {i["stream"]["S"] for i in resp["Responses"].get(self.table, [])}
                request = resp.get("UnprocessedKeys") or {}
        return moved

    def read(self, stream: str, after: int = 0, upto: int | None = None) -> Iterator[StoredEvent]:
        values: dict[str, Any] = {":s": {"S": stream}, ":a": {"N": str(after)}}
        condition = "#s = :s AND seq > :a"
        if upto is not None:
            condition = "#s = :s AND seq BETWEEN :lo AND :hi"
            values = {":s": {"S": stream}, ":lo": {"N": str(after + 1)}, ":hi": {"N": str(upto)}}
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": {"#s": "stream"},
            "ExpressionAttributeValues": values,
            "ConsistentRead": True,
        }
        while True:
            resp = self.ddb.query(**kwargs)
            for item in resp.get("Items", []):
                yield from_item(item)
            if "LastEvaluatedKey" not in resp:
                return
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def append(
        self,
        events: list[StoredEvent],
        idempotency: tuple[str, dict[str, Any]] | None = None,
        guard: tuple[str, int] | None = None,
    ) -> None:
        ops: list[dict[str, Any]] = []
        if idempotency is not None:
            stream, result = idempotency
            ops.append(
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": idempotency_item(stream, result),
                        "ConditionExpression": "attribute_not_exists(#s)",
                        "ExpressionAttributeNames": {"#s": "stream"},
                    }
                }
            )
        # Every event, not only a command's last: an honest append on top of a forged event
        # must not lend the forgery its MAC (its hash commits to the forged one).
        mac_key = self._mac_key() if events else None
        for event in events:
            stored = to_item(event)
            if mac_key is not None:
                stored["mac"] = {"S": mac_with(mac_key, event.hash)}
            ops.append(
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": stored,
                        "ConditionExpression": "attribute_not_exists(#s)",
                        "ExpressionAttributeNames": {"#s": "stream"},
                        # The winner's event comes back, so a retry can chain onto it directly.
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                }
            )
        for event in events:
            if event.seq == 1 and member_of(event.stream):
                # A member's first event on a slide lists its stream in the slide's directory, in
                # the same transaction: a stream exists exactly when it is listed.
                ops.append(
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": directory_item(event.stream),
                            "ConditionExpression": "attribute_not_exists(#s)",
                            "ExpressionAttributeNames": {"#s": "stream"},
                        }
                    }
                )
        if guard is not None:
            ops.append(
                {
                    "ConditionCheck": {
                        "TableName": self.table,
                        "Key": {"stream": {"S": guard[0]}, "seq": {"N": str(guard[1])}},
                        "ConditionExpression": "attribute_not_exists(#s)",
                        "ExpressionAttributeNames": {"#s": "stream"},
                    }
                }
            )
        try:
            if len(ops) == 1:
                self.ddb.put_item(**ops[0]["Put"])
            else:
                self.ddb.transact_write_items(TransactItems=ops)
        except ClientError as err:
            code = err.response["Error"]["Code"]
            if code == "ConditionalCheckFailedException":
                reasons = [{"Code": "ConditionalCheckFailed", "Item": err.response.get("Item")}]
            elif code == "TransactionCanceledException":
                reasons = err.response.get("CancellationReasons", [])
            else:
                raise
            failed = [
                (op, reason) for op, reason in zip(ops, reasons, strict=False)
                if reason.get("Code") in ("ConditionalCheckFailed", "TransactionConflict")
            ]  # fmt: skip
            if idempotency is not None and failed and failed[0][0] is ops[0]:
                previous = self.idempotent_result(idempotency[0])
                if previous is not None:
                    raise DuplicateCommand(previous) from None
            if not failed:
                raise
            seen: dict[str, tuple[int, str]] = {}
            moved: set[str] = set()
            for op, reason in failed:
                body = op.get("Put") or op.get("ConditionCheck") or {}
                key = body.get("Item") or body.get("Key") or {}
                stream = key.get("stream", {}).get("S")
                if stream is None or reason.get("Code") != "ConditionalCheckFailed":
                    raise AppendConflict() from None
                moved.add(stream)
                item = reason.get("Item")
                if item and "hash" in item:
                    seen[stream] = (int(item["seq"]["N"]), item["hash"]["S"])
            raise AppendConflict(seen, moved) from None

    def idempotent_result(self, stream: str) -> dict[str, Any] | None:
        resp = self.ddb.get_item(
            TableName=self.table, Key={"stream": {"S": stream}, "seq": {"N": "0"}}, ConsistentRead=True
        )
        item = resp.get("Item")
        return json.loads(item["result"]["S"]) if item else None

    def label_streams(self, project_id: str, slide_id: str) -> list[str]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#s = :s",
            "ExpressionAttributeNames": {"#s": "stream"},
            "ExpressionAttributeValues": {":s": {"S": slide_directory(project_id, slide_id)}},
            "ProjectionExpression": "member_stream",
            "ConsistentRead": True,
        }
        streams: list[str] = []
        while True:
            resp = self.ddb.query(**kwargs)
            streams.extend(i["member_stream"]["S"] for i in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                return sorted(streams)
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def scan_streams(self, prefix: str) -> list[str]:
        """Every stream whose name starts with prefix (an audit-time scan, not a hot path)."""
        streams: set[str] = set()
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "begins_with(#s, :p)",
            "ExpressionAttributeNames": {"#s": "stream"},
            "ExpressionAttributeValues": {":p": {"S": prefix}},
            "ProjectionExpression": "#s",
        }
        while True:
            resp = self.ddb.scan(**kwargs)
            streams.update(i["stream"]["S"] for i in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                return sorted(streams)
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def raw_put(self, event: StoredEvent) -> None:
        """Overwrite a stored event as-is: for tamper tests and the raw-put baseline only."""
        self.ddb.put_item(TableName=self.table, Item=to_item(event))
