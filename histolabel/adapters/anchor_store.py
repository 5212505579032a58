"""Anchors in S3 under Object Lock (compliance mode), signed with the anchor KMS key.

Reading lists object *versions*: an overwrite adds a version and a delete adds a marker, but the
locked versions underneath stay, so neither can hide an anchor. A version whose signature does
not verify (written by someone without the key) is reported, never trusted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from histolabel.adapters.aws import client
from histolabel.adapters.seals import KmsSeals
from histolabel.audit.anchors import Anchor, StoredAnchor, payload
from histolabel.config import Settings
from histolabel.resources import (
    ANCHOR_RETENTION_DAYS,
    ANCHOR_SIGNING_ALGORITHM,
    anchor_key_alias,
    anchors_bucket_name,
)


def _prefix(project: str) -> str:
    return f"anchors/{project}/"


class S3AnchorStore:
    def __init__(self, settings: Settings, seals: KmsSeals | None = None) -> None:
        self.settings = settings
        self.bucket = anchors_bucket_name(settings)
        self.s3 = client("s3", settings)
        self.seals = seals or KmsSeals(settings)

    def put(self, anchor: Anchor) -> str:
        signature = self.seals.sign_anchor(anchor.message())
        body = payload(anchor, signature, anchor_key_alias(self.settings), ANCHOR_SIGNING_ALGORITHM)
        # Keys sort by time, so listing newest-first needs no reads.
        key = f"{_prefix(anchor.project)}{anchor.at}.json"
        self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=json.dumps(body).encode(),
            ContentType="application/json",
            ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=datetime.now(UTC) + timedelta(days=ANCHOR_RETENTION_DAYS),
        )
        return key

    def _versions(self, project: str) -> list[dict[str, Any]]:
        versions: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": _prefix(project)}
        while True:
            resp = self.s3.list_object_versions(**kwargs)
            versions.extend(resp.get("Versions", []))
            if not resp.get("IsTruncated"):
                break
            kwargs["KeyMarker"] = resp["NextKeyMarker"]
            kwargs["VersionIdMarker"] = resp["NextVersionIdMarker"]
        return sorted(versions, key=lambda v: (v["Key"], v["LastModified"]), reverse=True)

    def newest_first(self, project: str) -> Iterator[StoredAnchor]:
        """Every stored anchor version of the project, newest first, read lazily."""
        for v in self._versions(project):
            name = f"s3://{self.bucket}/{v['Key']}?versionId={v['VersionId']}"
            body = self.s3.get_object(Bucket=self.bucket, Key=v["Key"], VersionId=v["VersionId"])["Body"]
            yield self._parse(name, body.read())

    def _parse(self, name: str, raw: bytes) -> StoredAnchor:
        try:
            doc = json.loads(raw)
            message = doc["message"].encode()
            anchor = Anchor.from_message(message)
            ok = self.seals.signature_valid(message, doc["signature"])
        except (ValueError, KeyError, TypeError):
            return StoredAnchor(name, None, False)
        return StoredAnchor(name, anchor, ok)

    def latest(self, project: str) -> Anchor | None:
        """The newest anchor with a valid signature."""
        for stored in self.newest_first(project):
            if stored.valid:
                return stored.anchor
        return None
