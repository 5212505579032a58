"""Fixtures for slide tests: upload shared test slides into the local cloud's data bucket."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from histolabel.config import Settings


@pytest.fixture
def upload(cloud: Settings) -> Callable[[Path | bytes, str], str]:
    """Upload a file (or bytes) under a fresh prefix; returns its s3:// URI."""
    from histolabel.adapters.s3 import filesystem

    # Under the project the job command runs for (test_ingest: --project p1): jobs read and
    # write their own project's objects only.
    prefix = f"{cloud.data_bucket}/projects/p1/slides/{uuid.uuid4().hex[:10]}/source"

    def _upload(src: Path | bytes, name: str) -> str:
        fs = filesystem(cloud)
        if isinstance(src, bytes):
            fs.pipe_file(f"{prefix}/{name}", src)
        else:
            fs.put_file(str(src), f"{prefix}/{name}")
        return f"s3://{prefix}/{name}"

    return _upload


@pytest.fixture
def dest(cloud: Settings) -> str:
    return f"s3://{cloud.data_bucket}/projects/p1/slides/{uuid.uuid4().hex[:10]}/image.ome.zarr"
