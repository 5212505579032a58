"""Export files in the data bucket: the export job's output and progress, tagged so the
bucket's lifecycle rule expires them (resources.EXPORT_TAG, EXPORT_TTL_DAYS)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from histolabel.adapters.aws import client
from histolabel.config import Settings, get_settings
from histolabel.resources import EXPORT_TAG

TAGGING = f"{EXPORT_TAG['Key']}={EXPORT_TAG['Value']}"


def put_file(path: str, key: str, content_type: str, filename: str, settings: Settings | None = None) -> None:
    """Upload a local file (multipart past 8 MB: a GeoJSON of 10^6 superpixels is ~1 GB)."""
    s = settings or get_settings()
    extra = {
        "ContentType": content_type,
        "ContentDisposition": f'attachment; filename="{filename}"',
        "Tagging": TAGGING,
    }
    client("s3", s).upload_file(path, s.data_bucket, key, ExtraArgs=extra)


def put_json(key: str, body: dict[str, Any], settings: Settings | None = None) -> None:
    s = settings or get_settings()
    client("s3", s).put_object(
        Bucket=s.data_bucket,
        Key=key,
        Body=json.dumps(body).encode(),
        ContentType="application/json",
        Tagging=TAGGING,
    )


def get_json(key: str, settings: Settings | None = None) -> dict[str, Any] | None:
    """The object's JSON, or None when there is none."""
    s = settings or get_settings()
    try:
        body = client("s3", s).get_object(Bucket=s.data_bucket, Key=key)["Body"].read()
    except ClientError as err:
        if err.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    out: dict[str, Any] = json.loads(body)
    return out
