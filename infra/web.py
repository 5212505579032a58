"""Publish the static web app to the web bucket, with the `config.json` that tells it where
the API and the user pool are."""

from __future__ import annotations

import hashlib
import json
import mimetypes
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
_SKIP = {"node_modules", "tests", ".DS_Store"}


def web_files(web: Path = WEB) -> dict[str, bytes]:
    if not web.is_dir():
        return {}
    return {
        p.relative_to(web).as_posix(): p.read_bytes()
        for p in sorted(web.rglob("*"))
        if p.is_file() and not _SKIP.intersection(p.relative_to(web).parts)
    }


def site_config(*, region: str, api_url: str, user_pool_id: str, client_id: str) -> bytes:
    config = {"region": region, "apiUrl": api_url, "userPoolId": user_pool_id, "userPoolClientId": client_id}
    return json.dumps(config, indent=2, sort_keys=True).encode()


def _etag(s3: Any, bucket: str, key: str) -> str | None:
    try:
        return str(s3.head_object(Bucket=bucket, Key=key)["ETag"]).strip('"')
    except ClientError as err:
        if err.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def publish(s3: Any, bucket: str, files: dict[str, bytes]) -> list[str]:
    """Upload what differs (by MD5, which is the ETag of a single-part upload); return those keys."""
    changed = []
    for key, body in files.items():
        if _etag(s3, bucket, key) == hashlib.md5(body, usedforsecurity=False).hexdigest():
            continue
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        cache = "no-cache" if key in ("index.html", "config.json") else "public, max-age=300"
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, CacheControl=cache)
        changed.append(key)
    return changed
