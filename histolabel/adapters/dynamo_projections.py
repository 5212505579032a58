"""The projection store on DynamoDB. A slide's labels live in buckets of consecutive ids
(one item each) beside a summary item that carries the checkpoint; one transaction writes the
summary, the touched buckets and the project's label total."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from histolabel.adapters.aws import client
from histolabel.config import Settings
from histolabel.events.envelope import label_stream, project_stream
from histolabel.projections.labels import SlideLabels
from histolabel.projections.project import ProjectState
from histolabel.projections.store import (
    ProjectionConflict,
    decode_bucket,
    encode_bucket,
    encode_summary,
    slide_from_summary,
)

# Project states share one partition, so listing the projects is one query; project-stream
# events are rare next to label events, so the partition stays cool.
PROJECTS_PK = "PROJECTS"


def _bucket_key(b: int) -> str:
    return f"B#{b:08d}"


def _checkpoint_condition(expected_seq: int) -> dict[str, Any]:
    if expected_seq == 0:
        return {"ConditionExpression": "attribute_not_exists(pk)"}
    return {
        "ConditionExpression": "seq = :e",
        "ExpressionAttributeValues": {":e": {"N": str(expected_seq)}},
    }


class DynamoProjectionStore:
    def __init__(self, settings: Settings) -> None:
        self.table = settings.projections_table
        self.ddb = client("dynamodb", settings)

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        resp = self.ddb.get_item(
            TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
        )
        return resp.get("Item")

    def load_project(self, project_id: str) -> ProjectState | None:
        item = self._get(PROJECTS_PK, project_id)
        return ProjectState.model_validate_json(item["body"]["S"]) if item else None

    def save_project(self, state: ProjectState, expected_seq: int) -> None:
        try:
            self.ddb.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": PROJECTS_PK},
                    "sk": {"S": state.project_id},
                    "seq": {"N": str(state.seq)},
                    "body": {"S": state.model_dump_json()},
                },
                **_checkpoint_condition(expected_seq),
            )
        except ClientError as err:
            if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ProjectionConflict(state.project_id) from None
            raise

    def _query(self, pk: str, **extra: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": pk}},
            "ConsistentRead": True,
            **extra,
        }
        while True:
            resp = self.ddb.query(**kwargs)
            items.extend(resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                return items
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def list_projects(self) -> list[ProjectState]:
        """Every project's state: one partition holds them all (sorted by project id)."""
        items = self._query(
            PROJECTS_PK, ProjectionExpression="pk, sk, #b", ExpressionAttributeNames={"#b": "body"}
        )
        return [ProjectState.model_validate_json(i["body"]["S"]) for i in items]

    def load_slide(self, project_id: str, slide_id: str, buckets: set[int] | None = None) -> SlideLabels:
        pk = label_stream(project_id, slide_id)
        if buckets is None:
            items = self._query(pk)
            summary = next((i for i in items if i["sk"]["S"] == "summary"), None)
            state = slide_from_summary(project_id, slide_id, summary["body"]["S"] if summary else None)
            for item in items:
                if item["sk"]["S"].startswith("B#"):
                    state.entries.update(decode_bucket(item["body"]["S"]))
            return state
        keys = [{"pk": {"S": pk}, "sk": {"S": "summary"}}] + [
            {"pk": {"S": pk}, "sk": {"S": _bucket_key(b)}} for b in sorted(buckets)
        ]
        found: dict[str, str] = {}
        for start in range(0, len(keys), 100):
            request = {self.table: {"Keys": keys[start : start + 100], "ConsistentRead": True}}
            while request:
                resp = self.ddb.batch_get_item(RequestItems=request)
                for item in resp["Responses"].get(self.table, []):
                    found[item["sk"]["S"]] = item["body"]["S"]
                request = resp.get("UnprocessedKeys") or {}
        state = slide_from_summary(project_id, slide_id, found.get("summary"))
        for sk, body in found.items():
            if sk.startswith("B#"):
                state.entries.update(decode_bucket(body))
        return state

    def save_slide(self, state: SlideLabels, buckets: set[int], expected_seq: int, labels_delta: int) -> None:
        pk = label_stream(state.project_id, state.slide_id)
        ops: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {
                        "pk": {"S": pk},
                        "sk": {"S": "summary"},
                        "seq": {"N": str(state.seq)},
                        "body": {"S": encode_summary(state)},
                    },
                    **_checkpoint_condition(expected_seq),
                }
            }
        ]
        for b in sorted(buckets):
            body = encode_bucket(state, b)
            key = {"pk": {"S": pk}, "sk": {"S": _bucket_key(b)}}
            if body == "{}":
                ops.append({"Delete": {"TableName": self.table, "Key": key}})
            else:
                ops.append({"Put": {"TableName": self.table, "Item": {**key, "body": {"S": body}}}})
        if labels_delta:
            ops.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": {"pk": {"S": project_stream(state.project_id)}, "sk": {"S": "labels_total"}},
                        "UpdateExpression": "ADD n :d",
                        "ExpressionAttributeValues": {":d": {"N": str(labels_delta)}},
                    }
                }
            )
        try:
            self.ddb.transact_write_items(TransactItems=ops)
        except ClientError as err:
            if err.response["Error"]["Code"] == "TransactionCanceledException":
                reasons = err.response.get("CancellationReasons", [])
                if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                    raise ProjectionConflict(pk) from None
            raise

    def labels_total(self, project_id: str) -> int:
        item = self._get(project_stream(project_id), "labels_total")
        return int(item["n"]["N"]) if item else 0

    def drop_project(self, project_id: str, slide_ids: list[str]) -> None:
        self.ddb.delete_item(TableName=self.table, Key={"pk": {"S": PROJECTS_PK}, "sk": {"S": project_id}})
        for pk in [project_stream(project_id)] + [label_stream(project_id, s) for s in slide_ids]:
            keys = [{"pk": i["pk"], "sk": i["sk"]} for i in self._query(pk, ProjectionExpression="pk, sk")]
            for start in range(0, len(keys), 25):
                request = {self.table: [{"DeleteRequest": {"Key": k}} for k in keys[start : start + 25]]}
                while request:
                    request = self.ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}

    def put_rebuilt(self, project: ProjectState, slides: list[SlideLabels], total: int) -> None:
        """Write a freshly folded projection wholesale (after drop_project)."""
        puts: list[dict[str, Any]] = [
            {
                "pk": {"S": PROJECTS_PK},
                "sk": {"S": project.project_id},
                "seq": {"N": str(project.seq)},
                "body": {"S": project.model_dump_json()},
            },
            {
                "pk": {"S": project_stream(project.project_id)},
                "sk": {"S": "labels_total"},
                "n": {"N": str(total)},
            },
        ]
        for slide in slides:
            pk = label_stream(slide.project_id, slide.slide_id)
            puts.append(
                {
                    "pk": {"S": pk},
                    "sk": {"S": "summary"},
                    "seq": {"N": str(slide.seq)},
                    "body": {"S": encode_summary(slide)},
                }
            )
            for b in sorted({i // 256 for i in slide.entries}):
                puts.append(
                    {"pk": {"S": pk}, "sk": {"S": _bucket_key(b)}, "body": {"S": encode_bucket(slide, b)}}
                )
        for start in range(0, len(puts), 25):
            request = {self.table: [{"PutRequest": {"Item": i}} for i in puts[start : start + 25]]}
            while request:
                request = self.ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
