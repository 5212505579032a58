"""Are the API's stores reachable? One cheap read of each, in parallel, with the API's bounded
timeouts: a key that does not exist is enough (any answer from the service proves it is there),
so the checks need no grant beyond those the API already has."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from histolabel.adapters.aws import client, store_unavailable
from histolabel.config import Settings

PROBE_KEY = "health/probe"


def _table(settings: Settings, table: str, key: dict[str, Any]) -> Callable[[], None]:
    def probe() -> None:
        client("dynamodb", settings).get_item(TableName=table, Key=key)

    return probe


def _bucket(settings: Settings, bucket: str) -> Callable[[], None]:
    def probe() -> None:
        try:
            client("s3", settings).head_object(Bucket=bucket, Key=PROBE_KEY)
        except ClientError as exc:
            if store_unavailable(exc):
                raise
            # 404 (no such key) or 403 (no list grant): S3 answered, so it is up.

    return probe


def _run(probe: Callable[[], None]) -> str:
    try:
        probe()
    except (BotoCoreError, ClientError) as exc:
        return f"unavailable: {exc}"[:300]
    return "ok"


def check(settings: Settings) -> dict[str, Any]:
    """{"status": "ok"|"unavailable", "checks": {dependency: "ok" | "unavailable: why"}}."""
    probes = {
        "events_table": _table(
            settings, settings.events_table, {"stream": {"S": PROBE_KEY}, "seq": {"N": "0"}}
        ),
        "projections_table": _table(
            settings, settings.projections_table, {"pk": {"S": PROBE_KEY}, "sk": {"S": PROBE_KEY}}
        ),
        "data_bucket": _bucket(settings, settings.data_bucket),
    }
    with ThreadPoolExecutor(len(probes)) as pool:
        results = dict(zip(probes, pool.map(_run, probes.values()), strict=True))
    ok = all(r == "ok" for r in results.values())
    return {"status": "ok" if ok else "unavailable", "checks": results}
