"""Make moto's DynamoDB cheap enough for a real workload (and keep its streams' records).

Queries: moto sorts every item of the table to answer a query on one partition, so a query
costs time proportional to the table. With DynamoDB calls serialized we can tell the table which
partition the running query wants and hand it only that partition's items.

Transactions:
moto backs up every table a transaction touches with `copy.deepcopy` before applying it, so a
transaction costs time proportional to the table size (60 ms at a few thousand events, growing).
Real DynamoDB checks every condition against the state before the transaction and then applies
all writes or none; with DynamoDB calls serialized by the server (see server.py) we do exactly
that: check all conditions first, raise the same cancellation reasons, then apply the writes.

Stream reads: moto's generic response serializer walked every attribute of every record of a
GetRecords answer, about two thirds of the server's time while a projector worked through a
backlog (bench/event_store.py); the records are JSON already, so they are dumped as they are.

S3 range reads: moto reads an object's whole body to answer any GET and then slices out the
range asked for, so a range read costs time proportional to the object. Slides are read in 4 MB
ranges of a source of hundreds of MB, and pyramids chunk by chunk out of shards: that was most of
the emulator's time under the ingest, segment and embed jobs. While a ranged GET is answered, a
key's value is a view that reads only the bytes sliced from it.

Dispatch: to route each request moto lists its own package folder (an `isdir` per service, some
200), under the dispatcher's lock; the listing cannot change while the server runs, so it is
taken once.
"""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime
from functools import cache
from typing import Any

from moto import backends
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import StreamRecord, StreamShard, Table
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.s3.models import FakeKey
from moto.s3.responses import S3Response


def _key_of(backend: DynamoDBBackend, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return dict(op["Key"])
    table = backend.get_table(op["TableName"])
    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = op["Item"][table.range_key_attr]
    return key


def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    seen: set[tuple[str, str]] = set()
    errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
    ops = []
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise ValueError("Unsupported transaction operation")
        key = _key_of(self, op_type, op)
        marker = (op["TableName"], str(dict(sorted(key.items()))))
        if marker in seen:
            raise MultipleTransactionsException()
        seen.add(marker)
        ops.append((op_type, op, key))
        old = None
        try:
            condition = op.get("ConditionExpression")
            if condition is not None:
                current = self.get_item(op["TableName"], key)
                expr = get_filter_expression(
                    condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
                )
                if not expr.expr(current):
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        old = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=old)
            errors.append((None, None, None))
        except ConditionalCheckFailed as e:
            errors.append(("ConditionalCheckFailed", str(e.message), old))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)
    for op_type, op, key in ops:
        names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        if op_type == "Put":
            self.put_item(op["TableName"], op["Item"], expression_attribute_names=names,
                          expression_attribute_values=values)  # fmt: skip
        elif op_type == "Delete":
            self.delete_item(op["TableName"], key)
        elif op_type == "Update":
            self.update_item(
                op["TableName"],
                key,
                update_expression=op["UpdateExpression"],
                expression_attribute_names=names,
                expression_attribute_values=values,
            )


_original_query = Table.query
_original_all_items = Table.all_items


def _all_items(self: Table) -> list[Any]:
    hint = getattr(self, "_partition_hint", None)
    if hint is None:
        return _original_all_items(self)
    partition = self.items.get(hint)
    if not partition:
        return []
    return list(partition.values()) if self.range_key_attr else [partition]


def _query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
    if index_name is not None or hash_key is None:
        return _original_query(self, hash_key, *args, **kwargs)
    self._partition_hint = hash_key  # type: ignore[attr-defined]
    try:
        return _original_query(self, hash_key, *args, **kwargs)
    finally:
        self._partition_hint = None  # type: ignore[attr-defined]


def _stream_add(self: StreamShard, old: Any, new: Any) -> None:
    """Record the change and nothing else. moto's own version also hands the shard's records to
    the Lambda functions of event source mappings on the table (a deployed stack has two),
    whose code it cannot run, and then drops the records: the stream pollers (our stand-in for
    those mappings, delivering to the functions' real handlers) would never see them."""
    view = self.table.stream_specification["StreamViewType"]  # type: ignore[index]
    name = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
    seq = len(self.items) + self.starting_sequence_number
    self.items.append(StreamRecord(self.table, view, name, old, new, seq))


def _json_value(value: Any) -> float | str:
    """What the JSON protocol says for the two non-JSON values in moto's records."""
    if isinstance(value, datetime):
        # moto stamps records with naive UTC times; timestamps are epoch seconds.
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()  # binary attributes (B, BS)
    raise TypeError(f"{type(value).__name__} in a stream record")


def _get_records(self: DynamoDBStreamsHandler) -> str:
    limit = self._get_param("Limit") or 1000
    result = self.backend.get_records(self._get_param("ShardIterator"), limit)
    return json.dumps(result, default=_json_value)


_ranged = threading.local()
_original_value: property = FakeKey.value  # type: ignore[assignment]
_original_key_response = S3Response.key_response


class _StoredBytes:
    """An object's body as `_handle_range_header` uses it (its length and one slice), read from
    the key's buffer only where sliced."""

    def __init__(self, key: FakeKey) -> None:
        self.key = key

    def __len__(self) -> int:
        return int(self.key.size)

    def __getitem__(self, part: slice) -> bytes:
        start, stop, _ = part.indices(len(self))
        with self.key.lock:
            self.key._value_buffer.seek(start)
            return bytes(self.key._value_buffer.read(max(stop - start, 0)))


def _value(self: FakeKey) -> Any:
    if getattr(_ranged, "active", False):
        return _StoredBytes(self)
    return _original_value.fget(self)  # type: ignore[misc]


def _key_response(self: S3Response, request: Any, *args: Any, **kwargs: Any) -> Any:
    _ranged.active = request.method == "GET" and request.headers.get("range", "") != ""
    try:
        response = _original_key_response(self, request, *args, **kwargs)
    finally:
        _ranged.active = False
    if isinstance(response, tuple) and len(response) == 3 and isinstance(response[2], _StoredBytes):
        # answered whole after all (a range S3 ignores, a part number): every byte, as moto would
        response = (response[0], response[1], response[2][:])
    return response


_original_modules = backends.list_of_moto_modules


@cache
def _list_of_moto_modules() -> tuple[str, ...]:
    return tuple(_original_modules())


def apply() -> None:
    backends.list_of_moto_modules = _list_of_moto_modules
    FakeKey.value = property(_value, _original_value.fset)  # type: ignore[method-assign,assignment]
    S3Response.key_response = _key_response  # type: ignore[method-assign]
    StreamShard.add = _stream_add  # type: ignore[method-assign]
    DynamoDBStreamsHandler.get_records = _get_records  # type: ignore[method-assign,assignment]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    Table.query = _query  # type: ignore[method-assign]
    Table.all_items = _all_items  # type: ignore[method-assign]
