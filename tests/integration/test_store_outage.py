"""A store outage under a running API: the local cloud's server is stopped while `chalice local`
serves (as `histolabel local up` runs it). Every call answers 503 with Retry-After within 5 s,
and /health says which dependency is down. A cloud of its own: the session's stays up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from histolabel.config import Settings

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Outage-Passw0rd!"
BOUND_S = 5.0


def call(url: str, method: str = "GET", token: str | None = None, body: Any = None) -> tuple[int, dict, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, dict(res.headers), json.loads(res.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read() or b"null")


@pytest.fixture
def outage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    from histolabel.adapters import cognito
    from histolabel.adapters.provision import provision
    from histolabel.localcloud.stack import LOCAL_CREDENTIALS, free_port, local_environment, start_server

    for key, value in LOCAL_CREDENTIALS.items():
        monkeypatch.setenv(key, value)

    server = start_server(log_path=tmp_path / "moto.log")
    settings = Settings(stage="local", endpoint_url=server.endpoint)  # chalice's local stage
    provision(settings)
    pool = cognito.ensure_pool(settings)
    cognito.add_user(pool, "olivia", PASSWORD, "olivia@example.org", settings=settings)
    token = cognito.login(pool, "olivia", PASSWORD, settings)
    port = free_port()
    env = {
        **os.environ,
        **local_environment(server.endpoint, settings),
        "HISTOLABEL_USER_POOL_ID": pool.user_pool_id,
        "HISTOLABEL_CLIENT_ID": pool.client_id,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "functions")]),
    }
    chalice = str(Path(sys.executable).with_name("chalice"))
    log = open(tmp_path / "api.log", "wb")  # noqa: SIM115 - the child keeps it
    api = subprocess.Popen(
        [chalice, "local", "--no-autoreload", "--host", "127.0.0.1", "--port", str(port), "--stage", "local"],
        cwd=ROOT / "functions", env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if call(f"{url}/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or api.poll() is not None:
                raise AssertionError(f"the API did not start: {(tmp_path / 'api.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield {"url": url, "token": token, "server": server}
    finally:
        api.terminate()
        api.wait(timeout=10)
        log.close()
        server.stop()


def timed(*args: Any, **kwargs: Any) -> tuple[float, int, dict, Any]:
    t0 = time.monotonic()
    status, headers, body = call(*args, **kwargs)
    return time.monotonic() - t0, status, headers, body


@pytest.mark.slow
def test_a_store_outage_answers_503_with_retry_after_within_5_s(outage):
    url, token = outage["url"], outage["token"]
    status, _, health = call(f"{url}/health")
    assert status == 200 and set(health["checks"].values()) == {"ok"}, health
    body = {"project_id": "outage", "name": "Outage", "site": "nyc"}
    status, _, created = call(f"{url}/projects", "POST", token, body)
    assert status in (200, 201), created
    category = {"name": "tumor", "idempotency_key": "k-outage-1"}
    assert call(f"{url}/projects/outage", token=token)[0] == 200

    outage["server"].stop()  # the store goes away under the running API

    for args, kwargs in [
        ((f"{url}/projects/outage",), {"token": token}),
        ((f"{url}/projects",), {"token": token}),
        ((f"{url}/projects/outage/categories", "POST", token, category), {}),
    ]:
        took, status, headers, answer = timed(*args, **kwargs)
        assert status == 503, (args, status, answer)
        assert answer["error"] == "unavailable" and int(headers["Retry-After"]) > 0
        assert took < BOUND_S, f"{args[0]} took {took:.1f} s"
        print(f"\n{args[1] if len(args) > 1 else 'GET'} {args[0]}: 503 in {took:.2f} s")

    took, status, headers, health = timed(f"{url}/health")
    assert status == 503 and health["status"] == "unavailable" and "Retry-After" in headers
    assert set(health["checks"]) == {"events_table", "projections_table", "data_bucket"}
    assert all(v.startswith("unavailable") for v in health["checks"].values()), health
    assert took < BOUND_S
