"""Queue leases in the projections table: one item per (project, slide, superpixel, slot),
taken with a conditional put. `ttl` lets DynamoDB drop expired leases; correctness never waits
for it (the condition compares `until` with now)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from histolabel.adapters.aws import client
from histolabel.config import Settings
from histolabel.leases import Lease

TTL_MARGIN_S = 3600


def lease_pk(project_id: str) -> str:
    return f"LEASE#{project_id}"


def lease_sk(lease: Lease) -> str:
    return f"{lease.slide_id}#{lease.id:012d}#{lease.slot}"


class DynamoLeaseStore:
    def __init__(self, settings: Settings) -> None:
        self.table = settings.projections_table
        self.ddb = client("dynamodb", settings)

    def held(self, project_id: str, now: float) -> list[Lease]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :p",
            "FilterExpression": "#u > :now",
            "ExpressionAttributeNames": {"#u": "until"},
            "ExpressionAttributeValues": {":p": {"S": lease_pk(project_id)}, ":now": {"N": repr(now)}},
            "ConsistentRead": True,
        }
        out = []
        while True:
            resp = self.ddb.query(**kwargs)
            for item in resp.get("Items", []):
                slide, sp, slot = item["sk"]["S"].rsplit("#", 2)
                out.append(Lease(slide, int(sp), int(slot), item["holder"]["S"], float(item["until"]["N"])))
            if "LastEvaluatedKey" not in resp:
                return out
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def take(self, project_id: str, lease: Lease, now: float, spent: str | None = None) -> bool:
        condition = "attribute_not_exists(pk) OR #u < :now OR holder = :me"
        values: dict[str, Any] = {":now": {"N": repr(now)}, ":me": {"S": lease.holder}}
        if spent is not None:
            condition += " OR holder = :spent"
            values[":spent"] = {"S": spent}
        try:
            self.ddb.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": lease_pk(project_id)},
                    "sk": {"S": lease_sk(lease)},
                    "holder": {"S": lease.holder},
                    "until": {"N": repr(lease.until)},
                    "ttl": {"N": str(int(lease.until) + TTL_MARGIN_S)},
                },
                ConditionExpression=condition,
                ExpressionAttributeNames={"#u": "until"},
                ExpressionAttributeValues=values,
            )
        except ClientError as err:
            if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True
