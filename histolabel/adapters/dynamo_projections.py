"""The projection store on DynamoDB. A slide's labels live in buckets of consecutive ids
(one item each) beside a summary item that carries the checkpoint; one transaction writes the
summary, the touched buckets and the project's label total."""

from __future__ import annotations

import threading
import zlib
from typing import Any

from botocore.exceptions import ClientError

from histolabel.adapters.aws import client
from histolabel.config import Settings
from histolabel.events.envelope import label_stream, project_stream
from histolabel.projections.labels import SlideLabels
from histolabel.projections.project import HEAD, ProjectState, state_from_items, state_items
from histolabel.projections.store import (
    Membership,
    ProjectionConflict,
    SlideRewrite,
    decode_bucket,
    encode_buckets,
    encode_summary,
    membership_changes,
    memberships_of,
    slide_from_summary,
)

# Project states share one partition, so listing every project (the anchorer) is one query;
# project-stream events are rare next to label events, so the partition stays cool. A member's
# own list reads their membership items instead (`projects_of`): one small partition per member.
PROJECTS_PK = "PROJECTS"
MAX_TRANSACTION_ITEMS = 100


def _member_pk(user: str) -> str:
    return f"M#{user}"


def _membership_key(user: str, project_id: str) -> dict[str, Any]:
    return {"pk": {"S": _member_pk(user)}, "sk": {"S": project_id}}


def _membership_item(user: str, m: Membership) -> dict[str, Any]:
    return {**_membership_key(user, m.project_id), "name": {"S": m.name}, "role": {"S": m.role}}


def _stored_memberships(head_body: str | None) -> dict[str, Membership]:
    """The membership items a stored head was written with (none before the project's first)."""
    return memberships_of(ProjectState.model_validate_json(head_body)) if head_body else {}


def _marks_pk(project_id: str) -> str:
    return f"MARKS#{project_id}"


MARK_SHARDS = 16  # items a project's label marks are spread over: one Query reads them all


def _mark_shard(slide_id: str) -> str:
    return f"{zlib.crc32(slide_id.encode()) % MARK_SHARDS:02d}"


def _bucket_key(b: int) -> str:
    return f"B#{b:08d}"


def summary_item(state: SlideLabels) -> dict[str, Any]:
    """A slide's summary item: its counts and checkpoint (`seq`, which saves are conditional on)."""
    return {"pk": {"S": label_stream(state.project_id, state.slide_id)}, "sk": {"S": "summary"},
            "seq": {"N": str(state.seq)}, "body": {"S": encode_summary(state)}}  # fmt: skip


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
        # Per project, the bodies as last read or written at a checkpoint: a save writes only
        # the items whose bodies changed since.
        self._known: dict[str, tuple[int, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        resp = self.ddb.get_item(
            TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
        )
        return resp.get("Item")

    def load_project(self, project_id: str) -> ProjectState | None:
        """The project's head, slides, runs, jobs and models: one Query of its partition, or,
        when this store last read or wrote the checkpoint the head still holds (the projector,
        event after event), the head alone."""
        with self._lock:
            known = self._known.get(project_id)
        if known is not None:
            head = self._get(project_stream(project_id), HEAD)
            if head is not None and int(head["seq"]["N"]) == known[0]:
                return state_from_items(known[1])
        items = self._query(project_stream(project_id))
        bodies = {i["sk"]["S"]: i["body"]["S"] for i in items if "body" in i}
        if HEAD not in bodies:
            return None  # never projected (or only in the old one-item shape: folded afresh)
        state = state_from_items(bodies)
        with self._lock:
            self._known[project_id] = (state.seq, bodies)
        return state

    def _stored_bodies(self, project_id: str, expected_seq: int) -> dict[str, str]:
        with self._lock:
            known = self._known.get(project_id)
        if known is not None and known[0] == expected_seq:
            return known[1]
        if expected_seq == 0:
            return {}
        items = self._query(project_stream(project_id))
        return {i["sk"]["S"]: i["body"]["S"] for i in items if "body" in i}

    def save_project(self, state: ProjectState, expected_seq: int) -> None:
        """Write the items that changed since `expected_seq`, atomically with the checkpoint in
        the head. The projector saves every few events, so a save fits one transaction."""
        pk = project_stream(state.project_id)
        stored = self._stored_bodies(state.project_id, expected_seq)
        bodies = state_items(state)
        changed = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {"pk": {"S": pk}, "sk": {"S": sk}, "body": {"S": body}},
                }
            }
            for sk, body in sorted(bodies.items())
            if sk != HEAD and stored.get(sk) != body
        ] + [
            {"Delete": {"TableName": self.table, "Key": {"pk": {"S": pk}, "sk": {"S": sk}}}}
            for sk in sorted(set(stored) - set(bodies))
        ]
        head = {
            "Put": {
                "TableName": self.table,
                "Item": {"pk": {"S": pk}, "sk": {"S": HEAD}, "seq": {"N": str(state.seq)},
                         "body": {"S": bodies[HEAD]}},
                **_checkpoint_condition(expected_seq),
            }
        }  # fmt: skip
        # The project list's entry: the head alone, so listing projects stays one small Query.
        listed_item = {"pk": {"S": PROJECTS_PK}, "sk": {"S": state.project_id}, "seq": {"N": str(state.seq)},
                       "body": {"S": bodies[HEAD]}}  # fmt: skip
        listed = {"Put": {"TableName": self.table, "Item": listed_item}}
        # The members' items, written with the head that lists them: the stored head says which
        # items exist, so only the memberships this save changes are written.
        if stored.get(HEAD) != bodies[HEAD]:
            changes = membership_changes(_stored_memberships(stored.get(HEAD)), memberships_of(state))
            changed += [self._membership_op(state.project_id, user, m) for user, m in sorted(changes.items())]
        if len(changed) + 2 > MAX_TRANSACTION_ITEMS:
            # Never from the projector (it saves every MAX_EVENTS_PER_SAVE events, each touching
            # at most three entries or one membership); written in parts, a reader could see
            # entries ahead of it.
            raise ValueError(f"a project save of {len(changed)} changed items exceeds one transaction")
        try:
            self.ddb.transact_write_items(TransactItems=[head, listed, *changed])
        except ClientError as err:
            with self._lock:
                self._known.pop(state.project_id, None)
            if err.response["Error"]["Code"] == "TransactionCanceledException":
                reasons = err.response.get("CancellationReasons", [])
                if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                    raise ProjectionConflict(state.project_id) from None
            raise
        with self._lock:
            self._known[state.project_id] = (state.seq, bodies)

    def _membership_op(self, project_id: str, user: str, m: Membership | None) -> dict[str, Any]:
        if m is None:
            return {"Delete": {"TableName": self.table, "Key": _membership_key(user, project_id)}}
        return {"Put": {"TableName": self.table, "Item": _membership_item(user, m)}}

    def projects_of(self, user: str) -> list[Membership]:
        """One Query of the member's partition (sorted by project id)."""
        items = self._query(_member_pk(user))
        return [Membership(i["sk"]["S"], i["name"]["S"], i["role"]["S"]) for i in items]

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
                    state.load_bucket(decode_bucket(item["body"]["S"]))
            return state
        return self.load_slides(project_id, {slide_id: buckets})[slide_id]

    def load_bodies(self, project_id: str, slide_id: str) -> tuple[SlideLabels, dict[int, str]]:
        items = self._query(label_stream(project_id, slide_id))
        bodies = {i["sk"]["S"]: i["body"]["S"] for i in items}
        state = slide_from_summary(project_id, slide_id, bodies.get("summary"))
        return state, {int(sk[2:]): body for sk, body in bodies.items() if sk.startswith("B#")}

    def load_slides(self, project_id: str, buckets: dict[str, set[int]]) -> dict[str, SlideLabels]:
        """Summaries and the given buckets of many slides: BatchGetItem, 100 keys a call, across
        slides (a queue page touching many slides costs a few calls, not one per slide)."""
        keys, pks = [], {}
        for slide_id, wanted in sorted(buckets.items()):
            pk = label_stream(project_id, slide_id)
            pks[pk] = slide_id
            keys += [{"pk": {"S": pk}, "sk": {"S": "summary"}}]
            keys += [{"pk": {"S": pk}, "sk": {"S": _bucket_key(b)}} for b in sorted(wanted)]
        found: dict[str, dict[str, str]] = {pk: {} for pk in pks}
        for start in range(0, len(keys), 100):
            request = {self.table: {"Keys": keys[start : start + 100], "ConsistentRead": True}}
            while request:
                resp = self.ddb.batch_get_item(RequestItems=request)
                for item in resp["Responses"].get(self.table, []):
                    found[item["pk"]["S"]][item["sk"]["S"]] = item["body"]["S"]
                request = resp.get("UnprocessedKeys") or {}
        out = {}
        for pk, bodies in found.items():
            state = slide_from_summary(project_id, pks[pk], bodies.get("summary"))
            for sk, body in bodies.items():
                if sk.startswith("B#"):
                    state.load_bucket(decode_bucket(body))
            out[pks[pk]] = state
        return out

    def save_slide(self, state: SlideLabels, buckets: set[int], expected_seq: int, labels_delta: int) -> None:
        pk = label_stream(state.project_id, state.slide_id)
        ops: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": summary_item(state),
                    **_checkpoint_condition(expected_seq),
                }
            }
        ]
        for b, body in sorted(encode_buckets(state, buckets).items()):
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

    def mark_labeled(self, project_id: str, slide_ids: set[str]) -> None:
        """An ADD to the slide's own attribute (`s:{slide}`) of one of the project's few mark
        items: an ADD never conflicts, so annotators never retry on each other's marks (as a
        transaction with the appends would make them), and the items stay small (~1 WCU)."""
        for sid in sorted(slide_ids):
            self.ddb.update_item(
                TableName=self.table,
                Key={"pk": {"S": _marks_pk(project_id)}, "sk": {"S": _mark_shard(sid)}},
                UpdateExpression="ADD #s :one",
                ExpressionAttributeNames={"#s": f"s:{sid}"},
                ExpressionAttributeValues={":one": {"N": "1"}},
            )

    def label_marks(self, project_id: str) -> dict[str, int]:
        return {
            name[2:]: int(value["N"])
            for item in self._query(_marks_pk(project_id))
            for name, value in item.items()
            if name.startswith("s:")
        }

    def put_rebuilt(self, project: ProjectState, slides: list[SlideRewrite], total: int) -> None:
        """The project's items (and a delete for any it no longer has), then each slide's changed
        buckets, then its summary; written in place, so the live projection never goes missing."""
        with self._lock:
            self._known.pop(project.project_id, None)
        ppk = project_stream(project.project_id)
        bodies = state_items(project)
        writes: list[dict[str, Any]] = [
            {"PutRequest": {"Item": item}}
            for item in [
                {
                    "pk": {"S": PROJECTS_PK},
                    "sk": {"S": project.project_id},
                    "seq": {"N": str(project.seq)},
                    "body": {"S": bodies[HEAD]},
                },
                {"pk": {"S": ppk}, "sk": {"S": "labels_total"}, "n": {"N": str(total)}},
            ]
            + [
                {"pk": {"S": ppk}, "sk": {"S": sk}, "body": {"S": body}}
                | ({"seq": {"N": str(project.seq)}} if sk == HEAD else {})
                for sk, body in bodies.items()
            ]
        ]
        stored = {i["sk"]["S"] for i in self._query(ppk, ProjectionExpression="pk, sk")}
        stale = stored - {*bodies, "labels_total"}
        writes += [{"DeleteRequest": {"Key": {"pk": {"S": ppk}, "sk": {"S": sk}}}} for sk in sorted(stale)]
        writes += self._membership_rewrites(project)
        self._batch_write(writes)
        for rewrite in slides:
            slide = rewrite.state
            pk = label_stream(slide.project_id, slide.slide_id)
            keys = {b: {"pk": {"S": pk}, "sk": {"S": _bucket_key(b)}} for b in rewrite.buckets}
            self._batch_write(
                [
                    {"DeleteRequest": {"Key": keys[b]}}
                    if body == "{}"
                    else {"PutRequest": {"Item": {**keys[b], "body": {"S": body}}}}
                    for b, body in sorted(rewrite.buckets.items())
                ]
            )
            # The summary (the slide's checkpoint) last: a projector that saves meanwhile from
            # the old checkpoint is refused and folds again from this one.
            self.ddb.put_item(TableName=self.table, Item=summary_item(slide))

    def _membership_rewrites(self, project: ProjectState) -> list[dict[str, Any]]:
        """The batch writes that make the membership items of the members of the stored head and
        of `project` those of `project`: missing or wrong ones put, non-members' deleted. (An item
        of someone in neither is not looked for: only a save writes them, with the head.)"""
        pid = project.project_id
        head = self._get(project_stream(pid), HEAD)
        wanted = memberships_of(project)
        before = _stored_memberships(head["body"]["S"] if head and "body" in head else None)
        users = sorted({*before, *wanted})
        keys = [_membership_key(u, pid) for u in users]
        stored: dict[str, Membership] = {}
        for start in range(0, len(keys), 100):
            batch = keys[start : start + 100]
            request: dict[str, Any] = {self.table: {"Keys": batch, "ConsistentRead": True}}
            while request:
                resp = self.ddb.batch_get_item(RequestItems=request)
                for i in resp["Responses"].get(self.table, []):
                    stored[i["pk"]["S"][2:]] = Membership(pid, i["name"]["S"], i["role"]["S"])
                request = resp.get("UnprocessedKeys") or {}
        return [
            {"DeleteRequest": {"Key": _membership_key(u, pid)}}
            if m is None
            else {"PutRequest": {"Item": _membership_item(u, m)}}
            for u, m in sorted(membership_changes(stored, wanted).items())
        ]

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        for start in range(0, len(requests), 25):
            request = {self.table: requests[start : start + 25]}
            while request:
                request = self.ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
