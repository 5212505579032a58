"""S3 access through s3fs (for zarr and files) bound to the configured endpoint."""

from __future__ import annotations

import atexit
import contextlib
from functools import lru_cache
from typing import Any

import s3fs

from histolabel.config import Settings, get_settings


class S3PathError(ValueError):
    """An S3 URI that is malformed or points outside the stack's bucket."""


def split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise S3PathError(f"not an S3 URI: {uri!r} (expected s3://bucket/key)")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise S3PathError(f"S3 URI without a bucket: {uri!r}")
    return bucket, key


def require_in_bucket(uri: str, settings: Settings | None = None) -> tuple[str, str]:
    """Refuse any URI outside the stack's data bucket, or one that escapes with '..'."""
    s = settings or get_settings()
    bucket, key = split_uri(uri)
    if bucket != s.data_bucket:
        raise S3PathError(f"{uri!r} is outside the allowed bucket s3://{s.data_bucket}/")
    if any(part in ("..", ".") for part in key.split("/")):
        raise S3PathError(f"{uri!r} has a relative path component")
    return bucket, key


def require_readable_source(uri: str, settings: Settings | None = None) -> tuple[str, str]:
    """A slide source: in the data bucket, or in a bucket the deployer allow-listed for sources
    (which project may read which prefix is histolabel.confinement's to say)."""
    from histolabel.confinement import allowed_prefixes

    s = settings or get_settings()
    bucket, _ = split_uri(uri)
    if bucket in {a.bucket for a in allowed_prefixes(s)}:
        key = uri[len(f"s3://{bucket}/") :]
        if any(part in ("..", ".") for part in key.split("/")):
            raise S3PathError(f"{uri!r} has a relative path component")
        return bucket, key
    return require_in_bucket(uri, s)


@lru_cache(maxsize=8)
def _fs(region: str, endpoint_url: str | None, asynchronous: bool) -> s3fs.S3FileSystem:
    client_kwargs: dict[str, Any] = {"region_name": region}
    if endpoint_url:
        client_kwargs["endpoint_url"] = endpoint_url
    fs = s3fs.S3FileSystem(client_kwargs=client_kwargs, asynchronous=asynchronous, skip_instance_cache=True)
    if asynchronous:
        _async_filesystems.append(fs)
        if len(_async_filesystems) == 1:
            atexit.register(_close_async_sessions)
    return fs


# s3fs closes the HTTP session of a synchronous filesystem itself; one used asynchronously (by
# zarr, on zarr's event loop) is left open, and aiohttp complains about it at exit.
_async_filesystems: list[s3fs.S3FileSystem] = []


def _close_async_sessions() -> None:
    from zarr.core.sync import sync

    for fs in _async_filesystems:
        client = getattr(fs, "_s3", None)
        if client is None:
            continue
        # The process is ending: a session that will not close has nothing left to save.
        with contextlib.suppress(Exception):
            sync(client.close())


def filesystem(settings: Settings | None = None) -> s3fs.S3FileSystem:
    """A synchronous s3fs filesystem for file-like reads and writes."""
    s = settings or get_settings()
    return _fs(s.region, s.endpoint_url, False)


def zarr_store(uri: str, *, mode: str = "r", settings: Settings | None = None) -> Any:
    """A zarr v3 FsspecStore on an S3 URI ("s3://bucket/path.zarr")."""
    from zarr.storage import FsspecStore

    s = settings or get_settings()
    fs = _fs(s.region, s.endpoint_url, True)
    bucket, key = split_uri(uri)
    return FsspecStore(fs, path=f"{bucket}/{key}".rstrip("/"), read_only=(mode == "r"))
