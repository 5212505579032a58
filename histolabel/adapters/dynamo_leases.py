"""Queue leases in the projections table: one item per (project, slide, superpixel, slot),
taken with a conditional put. `ttl` lets DynamoDB drop expired leases; correctness never waits
for it (the condition compares `until` with now)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from histolabel.adapters.aws import client
from histolabel.config import Settings
from histolabel.leases import Lease

TTL_MARGIN_S = 3600
MAX_TRANSACTION_ITEMS = 100
MAX_CONFLICTS = 5  # retries of a transaction cancelled by a concurrent one (not by a held slot)


def lease_pk(project_id: str) -> str:
    return f"LEASE#{project_id}"


def lease_sk(lease: Lease) -> str:
    return f"{lease.slide_id}#{lease.id:012d}#{lease.slot}"


class DynamoLeaseStore:
    def __init__(self, settings: Settings) -> None:
        self.table = settings.projections_table
        self.ddb = client("dynamodb", settings)

    def held(self, project_id: str, now: float, slots: Mapping[tuple[str, int], int]) -> list[Lease]:
        """BatchGetItem of the slots' keys, 100 a call (a Query of the project's partition read
        every lease the project's annotators hold, expired ones too until the TTL drops them)."""
        pk = lease_pk(project_id)
        keys = [
            {"pk": {"S": pk}, "sk": {"S": lease_sk(Lease(s, i, k, "", 0.0))}}
            for (s, i), n in sorted(slots.items())
            for k in range(n)
        ]
        out = []
        for start in range(0, len(keys), 100):
            batch = keys[start : start + 100]
            request: dict[str, Any] = {self.table: {"Keys": batch, "ConsistentRead": True}}
            while request:
                resp = self.ddb.batch_get_item(RequestItems=request)
                for item in resp["Responses"].get(self.table, []):
                    until = float(item["until"]["N"])
                    if until > now:
                        slide, sp, slot = item["sk"]["S"].rsplit("#", 2)
                        out.append(Lease(slide, int(sp), int(slot), item["holder"]["S"], until))
                request = resp.get("UnprocessedKeys") or {}
        return out

    def _put(self, project_id: str, lease: Lease, now: float, spent: str | None) -> dict[str, Any]:
        condition = "attribute_not_exists(pk) OR #u < :now OR holder = :me"
        values: dict[str, Any] = {":now": {"N": repr(now)}, ":me": {"S": lease.holder}}
        if spent is not None:
            condition += " OR holder = :spent"
            values[":spent"] = {"S": spent}
        return {
            "TableName": self.table,
            "Item": {
                "pk": {"S": lease_pk(project_id)},
                "sk": {"S": lease_sk(lease)},
                "holder": {"S": lease.holder},
                "until": {"N": repr(lease.until)},
                "ttl": {"N": str(int(lease.until) + TTL_MARGIN_S)},
            },
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#u": "until"},
            "ExpressionAttributeValues": values,
        }

    def take(self, project_id: str, lease: Lease, now: float, spent: str | None = None) -> bool:
        try:
            self.ddb.put_item(**self._put(project_id, lease, now, spent))
        except ClientError as err:
            if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def take_all(self, project_id: str, attempts: list[tuple[Lease, str | None]], now: float) -> list[bool]:
        """One transaction per 100 leases. A slot held by someone else fails its condition and
        cancels the transaction, whose reasons name it; the rest are written again without it.
        A page's leases cost a round trip or two instead of one each (on the local cloud, 20
        puts 135 ms at once, a transaction of them 39 ms); a transaction's write costs twice a
        put's capacity, a few units a page."""
        taken = [False] * len(attempts)
        for first in range(0, len(attempts), MAX_TRANSACTION_ITEMS):
            pending = list(range(first, min(first + MAX_TRANSACTION_ITEMS, len(attempts))))
            conflicts = 0
            while pending:
                ops = [{"Put": self._put(project_id, attempts[i][0], now, attempts[i][1])} for i in pending]
                try:
                    self.ddb.transact_write_items(TransactItems=ops)
                except ClientError as err:
                    if err.response["Error"]["Code"] != "TransactionCanceledException":
                        raise
                    reasons = err.response.get("CancellationReasons", [])
                    refused = {
                        i
                        for i, r in zip(pending, reasons, strict=False)
                        if r.get("Code") == "ConditionalCheckFailed"
                    }
                    if not refused:  # another writer's transaction touched one of these: again
                        conflicts += 1
                        if conflicts > MAX_CONFLICTS:
                            raise
                    pending = [i for i in pending if i not in refused]
                    continue
                for i in pending:
                    taken[i] = True
                pending = []
        return taken
