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
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

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


def apply() -> None:
    StreamShard.add = _stream_add  # type: ignore[method-assign]
    DynamoDBStreamsHandler.get_records = _get_records  # type: ignore[method-assign,assignment]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    Table.query = _query  # type: ignore[method-assign]
    Table.all_items = _all_items  # type: ignore[method-assign]
