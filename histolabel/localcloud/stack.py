"""Start and stop the local cloud's server process and provision the stack in it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from histolabel.config import ALLOW_CPU, ENDPOINT_URL, REGION, STAGE, Settings
from histolabel.localcloud.server import MOTO_CONFIG

LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(url: str, body: dict | None = None) -> None:
    data = json.dumps(body or {}).encode()
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10):
        pass


def configure(endpoint: str) -> None:
    """Tell moto to run no Docker for Lambda/Batch; a reset drops this, so send it again then."""
    _post(f"{endpoint}/moto-api/config", MOTO_CONFIG)


def reset(endpoint: str) -> None:
    _post(f"{endpoint}/moto-api/reset")
    configure(endpoint)


@dataclass
class ServerProcess:
    endpoint: str
    pid: int
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_server(port: int | None = None, log_path: Path | None = None) -> ServerProcess:
    port = port or free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen(
        [sys.executable, "-m", "histolabel.localcloud.server", "--port", str(port)],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"local cloud server exited with code {proc.returncode}")
        try:
            configure(endpoint)
            return ServerProcess(endpoint=endpoint, pid=proc.pid, process=proc)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("local cloud server did not become ready within 30 s")


def local_environment(endpoint: str, settings: Settings) -> dict[str, str]:
    """The variables a process needs to talk to this local cloud. Its jobs may run on CPU
    (a workstation has no GPU; on AWS a GPU job without CUDA fails instead)."""
    return {
        **LOCAL_CREDENTIALS,
        ENDPOINT_URL: endpoint,
        "AWS_DEFAULT_REGION": settings.region,
        REGION: settings.region,
        STAGE: settings.stage,
        ALLOW_CPU: "1",
    }
