"""`histolabel local up|down|status`: the whole product on one machine.

Starts the local cloud (moto server), provisions the stack's tables and buckets from the same
definitions infra deploys, creates the Cognito pool and demo users, and starts the local
runtime (stream pollers -> projector and trigger), the API (`chalice local`) and the web app,
each as its own process recorded by PID in the state directory, then loads a demo project
(the CLI's histolabel/cli/demo.py, through its own commands).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from histolabel.config import Settings, settings_from_env
from histolabel.events.catalogue import Role

ROOT = Path(__file__).resolve().parents[2]
DEMO_SLIDE = ROOT / "localstack" / "demo" / "CMU-1-Small-Region.svs"
DEMO_PASSWORD = "Histolabel-demo-1"
DEMO_USERS: dict[str, Role] = {
    "olivia": "owner",
    "ana": "annotator",
    "ben": "annotator",
    "rex": "reviewer",
    "audrey": "auditor",
}
DEMO_SITES = {"olivia": "nyc", "ana": "chicago", "ben": "london", "rex": "boston", "audrey": "nyc"}


class LocalStackError(RuntimeError):
    """The local stack cannot start or load its demo (the CLI prints it, exit 2)."""


def state_dir() -> Path:
    path = Path(settings_from_env().local_dir or ROOT / ".histolabel")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _state_file() -> Path:
    return state_dir() / "stack.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def read_state() -> dict[str, Any] | None:
    path = _state_file()
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _spawn(name: str, command: list[str], env: dict[str, str], cwd: Path | None = None) -> int:
    log = open(state_dir() / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps the handle
    proc = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
    )
    return proc.pid


def _wait_http(url: str, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise LocalStackError(f"{what} did not answer at {url} within {timeout:.0f} s (see {state_dir()})")


def up(
    cloud_port: int,
    api_port: int,
    web_port: int,
    stage: str,
    demo: Callable[[Any], None] | None,
    endpoint: str | None = None,
    out: Any = sys.stdout,
) -> dict[str, Any]:
    """With `endpoint` (LocalStack, say), use that cloud instead of starting moto's server."""
    from histolabel.adapters import cognito
    from histolabel.adapters.provision import provision
    from histolabel.config import get_settings
    from histolabel.localcloud.stack import local_environment, start_server

    existing = read_state()
    if existing and any(_alive(pid) for pid in existing["pids"].values()):
        raise LocalStackError(
            f"already running (web app {existing['web_url']}); run `histolabel local down` first"
        )
    settings = Settings(stage=stage)
    pids: dict[str, int] = {}
    state: dict[str, Any] = {"pids": pids}
    try:
        if endpoint is None:
            print(f"starting the local cloud on 127.0.0.1:{cloud_port} ...", file=out, flush=True)
            server = start_server(cloud_port, log_path=state_dir() / "cloud.log")
            pids["cloud"] = server.pid
            endpoint = server.endpoint
        env = {
            **os.environ,
            **local_environment(endpoint, settings),
            "HISTOLABEL_JOB_RUNNER": "local",
            "HISTOLABEL_LOCAL_DIR": str(state_dir()),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        }
        os.environ.update(env)
        get_settings.cache_clear()
        made = provision(settings)
        pool = cognito.ensure_pool(settings)
        for user in DEMO_USERS:
            cognito.add_user(pool, user, DEMO_PASSWORD, settings=settings)
        env.update({"HISTOLABEL_USER_POOL_ID": pool.user_pool_id, "HISTOLABEL_CLIENT_ID": pool.client_id})
        os.environ.update(env)
        print(f"provisioned {', '.join(made)} and user pool {pool.user_pool_id}", file=out, flush=True)

        pids["runtime"] = _spawn("runtime", [sys.executable, "-m", "histolabel.localcloud.runtime"], env)
        # chalice local, answering 405 (not 501) to methods http.server has no handler for
        pids["api"] = _spawn(
            "api",
            [
                sys.executable,
                "-m",
                "histolabel.localcloud.api_server",
                "local",
                "--no-autoreload",
                "--host",
                "127.0.0.1",
                "--port",
                str(api_port),
                "--stage",
                "local",
            ],
            env,
            cwd=ROOT / "functions",
        )
        api_url = f"http://127.0.0.1:{api_port}"
        _wait_http(f"{api_url}/health", "the API")
        pids["web"] = _spawn(
            "web",
            [
                sys.executable,
                "-m",
                "histolabel.localcloud.webserver",
                "--api-url",
                api_url,
                "--port",
                str(web_port),
            ],
            env,
        )
        web_url = f"http://127.0.0.1:{web_port}/"
        _wait_http(web_url, "the web app")
        state.update(
            {"endpoint": endpoint, "api_url": api_url, "web_url": web_url, "stage": stage,
             "user_pool_id": pool.user_pool_id, "client_id": pool.client_id}
        )  # fmt: skip
        _state_file().write_text(json.dumps(state, indent=1))
        if demo is not None:
            demo(out)
    except BaseException:
        for pid in pids.values():
            _kill(pid)
        _state_file().unlink(missing_ok=True)
        raise
    print(
        f"\nHistoLabel is running:\n  web app  {web_url}\n  API      {api_url}\n  cloud    {endpoint}",
        file=out,
    )
    print(f"  sign in as any of {', '.join(DEMO_USERS)} with password {DEMO_PASSWORD}", file=out)
    print(f"  stop with: histolabel local down   (logs in {state_dir()})", file=out, flush=True)
    return state


def adopt_local_stack() -> bool:
    """Point this process at the running local stack (`histolabel local up`), unless it already
    names a cloud (AWS_ENDPOINT_URL): the CLI then works against the local stack with no
    variables to set. True when it did."""
    if settings_from_env().endpoint_url:
        return False
    state = read_state()
    if not state or not state.get("endpoint") or not all(_alive(p) for p in state["pids"].values()):
        return False
    from histolabel.config import get_settings
    from histolabel.localcloud.stack import local_environment

    os.environ.update(local_environment(state["endpoint"], Settings(stage=state.get("stage", "local"))))
    os.environ.setdefault("HISTOLABEL_JOB_RUNNER", "local")
    os.environ.setdefault("HISTOLABEL_LOCAL_DIR", str(state_dir()))
    for key, name in (("HISTOLABEL_USER_POOL_ID", "user_pool_id"), ("HISTOLABEL_CLIENT_ID", "client_id")):
        if state.get(name):
            os.environ.setdefault(key, state[name])
    get_settings.cache_clear()
    return True


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def down(out: Any = sys.stdout) -> int:
    state = read_state()
    if state is None:
        print("nothing to stop: no local stack is recorded", file=out)
        return 0
    for name, pid in reversed(list(state["pids"].items())):
        if _alive(pid):
            _kill(pid)
            print(f"stopped {name} (pid {pid})", file=out)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in state["pids"].values()):
        time.sleep(0.1)
    for pid in state["pids"].values():
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    _state_file().unlink(missing_ok=True)
    return 0


def status(out: Any = sys.stdout) -> int:
    state = read_state()
    if state is None:
        print("not running", file=out)
        return 1
    for name, pid in state["pids"].items():
        print(f"{name:8} pid {pid:<8} {'running' if _alive(pid) else 'STOPPED'}", file=out)
    print(
        f"web app {state.get('web_url')}  API {state.get('api_url')}  cloud {state.get('endpoint')}", file=out
    )
    return 0 if all(_alive(p) for p in state["pids"].values()) else 1
