"""The local stack for the browser tests: moto (the `cloud` fixture), a Cognito pool with a user,
the Chalice API served by chalice's local dev server, the stream poller feeding the projector,
a stand-in train job, the static web server, and headless Chromium.

Until `histolabel local up` lands, this fixture assembles the same pieces itself.
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

from tests.e2e.slide_data import make_local_slide, superpixel_rows

PASSWORD = "Correct-Horse-9"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
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
    trained: list[dict[str, Any]] = field(default_factory=list)
    fail_next: str | None = None  # the stand-in train job fails its next run with this reason

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
            {"name": name, "source_uri": f"s3://{self.settings.data_bucket}/demo/{name}.svs"},
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
        return str(slide_id)


class StandInTrainer:
    """Plays the train + predict jobs: 1-nearest-labeled-neighbour on superpixel centroids,
    published exactly as the jobs publish (parquet under predictions/, then events)."""

    def __init__(self, stack_ref: dict[str, Stack]) -> None:
        self.stack_ref = stack_ref

    def __call__(self, svc: Any, event: Any) -> None:
        import numpy as np
        import pyarrow as pa

        from histolabel.adapters.pyramids import write_table

        stack = self.stack_ref["stack"]
        project_id = event.project
        request_id = event.payload["request_id"]
        state = svc.project_state(project_id)
        cats = [c.id for c in state.live_categories() if not c.excluded]
        version = int((state.current_model or {}).get("model_version", 0)) + 1
        svc.record_job_event(
            project_id,
            "TrainingStarted",
            {"request_id": request_id, "job_id": f"local-{version}"},
            job="train",
        )
        if stack.fail_next:
            reason, stack.fail_next = stack.fail_next, None
            svc.record_job_event(
                project_id, "TrainingFailed", {"request_id": request_id, "reason": reason}, job="train"
            )
            return
        rows = stack.slide.rows
        ids = np.array([r["id"] for r in rows])
        cen = np.array([[r["cy"], r["cx"]] for r in rows], dtype=float)
        slides = [sid for sid, sl in state.slides.items() if getattr(sl, "segmentation", None)]
        prefix = f"s3://{stack.settings.data_bucket}/projects/{project_id}/predictions/{version}"
        total = 0
        for slide_id in slides:
            current = svc.slide_labels(project_id, slide_id).current()
            labeled = [(i, c) for i, c in current.items() if c in cats]
            total += len(labeled)
            probs = np.full((len(ids), len(cats)), 1.0 / max(len(cats), 1))
            if labeled:
                lid = np.array([i for i, _ in labeled])
                lcat = np.array([cats.index(c) for _, c in labeled])
                lcen = cen[np.searchsorted(ids, lid)]
                d = ((cen[:, None, :] - lcen[None, :, :]) ** 2).sum(-1)
                nearest = lcat[d.argmin(1)]
                probs[:] = 0.2 / max(len(cats) - 1, 1)
                probs[np.arange(len(ids)), nearest] = 0.8
                far = d.min(1) / (d.min(1).max() + 1e-9)
                probs = probs * (1 - far[:, None] * 0.5) + far[:, None] * 0.5 / len(cats)
            table = {
                "id": ids,
                **{f"prob_{c}": probs[:, k].astype(np.float32) for k, c in enumerate(cats)},
                "certainty": probs.max(1).astype(np.float32),
            }
            write_table(pa.table(table), f"{prefix}/{slide_id}.parquet", stack.settings)
        metrics = {
            "balanced_accuracy": 0.8,
            "per_class": {c: {"f1": 0.8} for c in cats},
            "learning_curve": [[max(1, total // 2), 0.6], [total, 0.8]],
        }
        svc.record_job_event(
            project_id,
            "TrainingCompleted",
            {
                "request_id": request_id,
                "model_version": version,
                "model_uri": f"{prefix}/model.safetensors",
                "metrics": metrics,
                "label_count": total,
            },
            job="train",
        )
        svc.record_job_event(
            project_id,
            "PredictionsPublished",
            {"model_version": version, "uri_prefix": prefix, "slides": slides, "metric": "confidence"},
            job="predict",
        )
        stack.trained.append({"project": project_id, "version": version})


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


@pytest.fixture(scope="session")
def stack(cloud: Any, local_slide: LocalSlide) -> Iterator[Stack]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    from chalice.config import Config
    from chalice.local import LocalDevServer

    from histolabel.adapters.cognito import add_user, ensure_pool
    from histolabel.localcloud.poller import StreamPoller
    from histolabel.localcloud.webserver import start, web_config
    from histolabel.runtime.projector import ProjectorRuntime
    from histolabel.service import HistoLabel

    pool = ensure_pool(cloud)
    users = {"pat": "pat@example.org", "rex": "rex@example.org"}
    for user, email in users.items():
        add_user(pool, user, PASSWORD, email, cloud)
    env = {"HISTOLABEL_USER_POOL_ID": pool.user_pool_id, "HISTOLABEL_CLIENT_ID": pool.client_id}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)

    from app import app
    from chalicelib.context import SERVICES

    SERVICES.service = SERVICES.submitter = SERVICES.pool = SERVICES.jwks = None
    svc = HistoLabel.from_env(cloud)
    ref: dict[str, Stack] = {}
    runtime = ProjectorRuntime(svc, on_training_requested=StandInTrainer(ref))
    poller = StreamPoller(cloud, runtime.handle, start_at="LATEST").start()
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
    stack = Stack(cloud, api_url, web.url, pool, svc, local_slide, users)
    ref["stack"] = stack
    try:
        yield stack
    finally:
        web.stop()
        api.shutdown()
        poller.stop()
        SERVICES.service = SERVICES.submitter = SERVICES.pool = SERVICES.jwks = None
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
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
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
