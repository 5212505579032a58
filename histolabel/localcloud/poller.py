"""The local stand-in for Lambda's DynamoDB Streams event source mapping.

Reads every shard of the events table's stream and calls the projector handler with
Lambda-shaped batches. Like a mapping with ReportBatchItemFailures, a reported failure makes the
poller deliver again from the first failed record (the records after it come again too). Like a
mapping, it keeps its position: with a `positions` file, each shard's last delivered sequence
number is saved after every batch, and a restarted poller goes on after it instead of replaying
the stream from its start.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from histolabel.adapters.aws import client
from histolabel.config import Settings

log = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
# New shards appear when DynamoDB splits or rolls a stream's shards (hours apart in AWS); looking
# every poll costs a DescribeStream per GetRecords.
SHARD_REFRESH_S = 2.0


class StreamPoller:
    def __init__(
        self,
        settings: Settings,
        handler: Handler,
        batch_size: int = 100,
        idle_sleep: float = 0.05,
        start_at: str = "TRIM_HORIZON",
        positions: Path | None = None,
    ) -> None:
        self.settings = settings
        self.handler = handler
        self.batch_size = batch_size
        self.idle_sleep = idle_sleep
        self.start_at = start_at
        self.positions = positions
        self.streams = client("dynamodbstreams", settings)
        ddb = client("dynamodb", settings)
        self.stream_arn = ddb.describe_table(TableName=settings.events_table)["Table"]["LatestStreamArn"]
        self.position: dict[str, str] = self._load_positions()
        self.iterators: dict[str, str | None] = {}
        self.last_seq: dict[str, str] = {}
        self.pending: dict[str, list[dict[str, Any]]] = {}
        self.delivered = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refresh_shards()

    def _load_positions(self) -> dict[str, str]:
        if self.positions is None or not self.positions.exists():
            return {}
        saved = json.loads(self.positions.read_text())
        # Positions belong to one stream; a recreated table starts afresh.
        return dict(saved["shards"]) if saved.get("stream") == self.stream_arn else {}

    def _save_positions(self) -> None:
        if self.positions is None:
            return
        tmp = self.positions.with_suffix(".tmp")
        tmp.write_text(json.dumps({"stream": self.stream_arn, "shards": self.position}))
        os.replace(tmp, self.positions)  # atomic: a kill leaves the old or the new file

    def _iterator(self, sid: str) -> str:
        saved = self.position.get(sid)
        if saved is not None:
            kind, seq = saved.split(":", 1)
            try:
                return str(
                    self.streams.get_shard_iterator(
                        StreamArn=self.stream_arn, ShardId=sid, ShardIteratorType=kind, SequenceNumber=seq
                    )["ShardIterator"]
                )
            except ClientError:
                log.warning("saved position %s of %s is gone; starting at %s", saved, sid, self.start_at)
        return str(
            self.streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=sid, ShardIteratorType=self.start_at
            )["ShardIterator"]
        )

    def _refresh_shards(self) -> None:
        self._refreshed = time.monotonic()
        desc = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        for shard in desc["Shards"]:
            sid = shard["ShardId"]
            if sid not in self.iterators:
                self.iterators[sid] = self._iterator(sid)
                self.pending[sid] = []

    def _lambda_event(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "Records": [
                {
                    **r,
                    "eventSource": "aws:dynamodb",
                    "eventSourceARN": self.stream_arn,
                    "awsRegion": self.settings.region,
                }
                for r in records
            ]
        }

    def poll_once(self) -> int:
        """Fetch and deliver what is available now; returns records handled."""
        if time.monotonic() - self._refreshed > SHARD_REFRESH_S:
            self._refresh_shards()
        handled = 0
        for sid, iterator in list(self.iterators.items()):
            queue = self.pending[sid]
            if iterator is not None and len(queue) < self.batch_size:
                resp = self.streams.get_records(ShardIterator=iterator, Limit=self.batch_size)
                records = resp.get("Records", [])
                if records and sid not in self.position:
                    # Where LATEST pointed, pinned: a restart before the first acknowledgement
                    # must still see these records.
                    self.position[sid] = f"AT_SEQUENCE_NUMBER:{records[0]['dynamodb']['SequenceNumber']}"
                    self._save_positions()
                queue.extend(records)
                self.iterators[sid] = resp.get("NextShardIterator")
            while queue:
                batch = queue[: self.batch_size]
                try:
                    result = self.handler(self._lambda_event(batch), None) or {}
                    failed = [f["itemIdentifier"] for f in result.get("batchItemFailures", [])]
                except Exception:
                    log.exception("projector handler raised; the whole batch is retried")
                    failed = [batch[0]["dynamodb"]["SequenceNumber"]]
                if failed:
                    self.failures += 1
                    first = next(i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in failed)
                    handled += first
                    self._advance(sid, batch[:first])
                    del queue[:first]
                    break  # deliver again from the first failure on the next poll
                handled += len(batch)
                self._advance(sid, batch)
                del queue[: len(batch)]
        self.delivered += handled
        return handled

    def _advance(self, sid: str, delivered: list[dict[str, Any]]) -> None:
        if delivered:
            self.position[sid] = f"AFTER_SEQUENCE_NUMBER:{delivered[-1]['dynamodb']['SequenceNumber']}"
            self._save_positions()

    def drain(self, timeout: float = 30.0, quiet: float = 0.3) -> None:
        """Poll until nothing new has arrived for `quiet` seconds (tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        last_work = time.monotonic()
        while time.monotonic() < deadline:
            if self.poll_once() or any(self.pending.values()):
                last_work = time.monotonic()
            elif time.monotonic() - last_work > quiet:
                return
            else:
                time.sleep(self.idle_sleep)
        raise TimeoutError("stream poller did not drain in time")

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.poll_once():
                    time.sleep(self.idle_sleep)
            except Exception:
                log.exception("stream poll failed; retrying")
                time.sleep(1.0)

    def start(self) -> StreamPoller:
        self._thread = threading.Thread(target=self.run, name="stream-poller", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
