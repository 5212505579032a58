"""The local stack for the browser tests, built from the real local-cloud pieces: moto (the
`cloud` fixture), a Cognito pool with users, the Chalice API on chalice's local dev server, the
local runtime's two stream pollers (projector + training trigger, as `histolabel local up` runs
them), the local job runner (HISTOLABEL_JOB_RUNNER=local: embed, train and predict run as
`python -m gpu_jobs.<job>` processes), the static web server, and headless Chromium.

Module-scoped: the trigger acts on every TrainingRequested in the moto server, so the stack must
not outlive the module that uses it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from histolabel.composition import service_from_env
from histolabel.localcloud.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.slide_data import make_local_slide, superpixel_rows

PASSWORD = "Correct-Horse-9"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalSlide:
    """A slide pyramid + superpixel label pyramid + table on local disk, ready to upload."""

    root: Path
    count: int
    width: int
    height: int
    levels: int
    rows: list[dict[str, int]]


@dataclass
class Stack:
    settings: Any
    api_url: str
    web_url: str
    pool: Any
    svc: Any
    slide: LocalSlide
    users: dict[str, str] = field(default_factory=dict)

    def token(self, user: str) -> str:
        from histolabel.adapters.cognito import login

        return login(self.pool, user, PASSWORD, self.settings)

    def call(self, method: str, path: str, user: str, body: Any = None) -> Any:
        import json
        import urllib.error
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.api_url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token(user)}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as res:
                return json.loads(res.read() or b"null")
        except urllib.error.HTTPError as err:
            raise AssertionError(f"{method} {path} -> {err.code}: {err.read()[:500]!r}") from err

    def add_slide(self, project_id: str, owner: str, name: str = "CMU-1-Small-Region") -> str:
        """Register a slide through the API, put the pyramid where ingest would, and report the
        ingest and segment jobs as those jobs do."""
        from histolabel.adapters.s3 import filesystem

        out = self.call(
            "POST",
            f"/projects/{project_id}/slides",
            owner,
            {"name": name, "filename": f"{name}.svs"},
        )
        slide_id = out["slide"]["slide_id"]
        prefix = f"{self.settings.data_bucket}/projects/{project_id}/slides/{slide_id}"
        fs = filesystem(self.settings)
        fs.put(str(self.slide.root / "image.ome.zarr"), f"{prefix}/image.ome.zarr", recursive=True)
        fs.put(str(self.slide.root / "superpixels.parquet"), f"{prefix}/superpixels.parquet")
        fs.invalidate_cache()
        uri = f"s3://{prefix}"
        s = self.slide
        self.svc.record_job_event(
            project_id,
            "SlideIngested",
            {
                "slide_id": slide_id,
                "zarr_uri": f"{uri}/image.ome.zarr",
                "width": s.width,
                "height": s.height,
                "levels": s.levels,
                "mpp": 0.499,
            },
            job="ingest",
        )
        self.svc.record_job_event(
            project_id,
            "SegmentationCompleted",
            {
                "slide_id": slide_id,
                "count": s.count,
                "labels_uri": f"{uri}/image.ome.zarr/labels/superpixels",
                "table_uri": f"{uri}/superpixels.parquet",
                "superpixel_size": 64,
                "compactness": 10,
            },
            job="segment",
        )
        # Features, as the owner's pipeline would ask for them: the embed job of the project's
        # feature kind (handcrafted by default), run by the local job runner.
        job = self.call("POST", f"/projects/{project_id}/slides/{slide_id}/jobs", owner, {"job": "embed"})
        self.wait_for_job(project_id, job["job_id"], owner)
        return str(slide_id)

    def wait_for_job(
        self, project_id: str, job_id: str, owner: str, timeout: float = 600.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status: dict[str, Any] = self.call("GET", f"/projects/{project_id}/jobs/{job_id}", owner)
            if status["status"] == "SUCCEEDED":
                return status
            if status["status"] == "FAILED" or time.monotonic() > deadline:
                log = Path(str(status.get("log", ""))).read_text()[-2000:] if status.get("log") else ""
                raise AssertionError(f"job {job_id}: {status} {log}")
            time.sleep(0.25)


@pytest.fixture(scope="session")
def local_slide(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> LocalSlide:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("slide")
    group, count = make_local_slide(shared_data / "slides" / "CMU-1-Small-Region.svs", root, n_segments=300)
    rows = superpixel_rows(group)
    pq.write_table(pa.Table.from_pylist(rows), root / "superpixels.parquet")
    h, w = group["0"].shape[-2:]
    n_levels = len(group.attrs["ome"]["multiscales"][0]["datasets"])  # type: ignore[index, call-overload]
    return LocalSlide(root, count, int(w), int(h), n_levels, rows)


@pytest.fixture(scope="module")
def stack(cloud: Any, local_slide: LocalSlide, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    from chalice.config import Config
    from chalice.local import LocalDevServer

    from histolabel.adapters.cognito import add_user, ensure_pool
    from histolabel.localcloud.runtime import start_pollers
    from histolabel.localcloud.webserver import start, web_config

    pool = ensure_pool(cloud)
    users = {"pat": "pat@example.org", "rex": "rex@example.org"}
    for user, email in users.items():
        add_user(pool, user, PASSWORD, email, cloud)
    env = {
        "HISTOLABEL_USER_POOL_ID": pool.user_pool_id,
        "HISTOLABEL_CLIENT_ID": pool.client_id,
        "HISTOLABEL_JOB_RUNNER": "local",
        "HISTOLABEL_LOCAL_DIR": str(tmp_path_factory.mktemp("local")),
        # Small, so that the browser reads this slide's predictions the way it reads those of a
        # slide with a million superpixels: through a 303 to a copy in the data bucket.
        "HISTOLABEL_INLINE_RESPONSE_BYTES": "2000",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)

    from app import app
    from chalicelib.context import SERVICES

    SERVICES.service = SERVICES.submitter = SERVICES.pool = SERVICES.jwks = SERVICES.directory = None
    svc = service_from_env(cloud)
    pollers = start_pollers(cloud, start_at="LATEST")
    port = _free_port()
    api = LocalDevServer(app, Config(), "127.0.0.1", port)
    api_thread = threading.Thread(target=api.serve_forever, daemon=True)
    api_thread.start()
    api_url = f"http://127.0.0.1:{port}"
    web = start(web_config(api_url))
    deadline = time.monotonic() + 10
    import urllib.request

    while True:
        try:
            urllib.request.urlopen(api_url + "/health", timeout=2).read()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    try:
        yield Stack(cloud, api_url, web.url, pool, svc, local_slide, users)
    finally:
        web.stop()
        api.shutdown()
        for poller in pollers:
            poller.stop()
        SERVICES.service = SERVICES.submitter = SERVICES.pool = SERVICES.jwks = SERVICES.directory = None
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def browser_context(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 720},
        )
        # Waits are deadlines sized for a loaded machine (two test workers share two cores).
        context.set_default_timeout(90_000)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
