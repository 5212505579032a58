"""The local stack's API server answers a method it has no handler for with 405 and the path's
methods, as the OpenAPI document says, not with http.server's 501."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unknown_methods_answer_405_with_allow():
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "functions")])}
    command = [sys.executable, "-m", "histolabel.localcloud.api_server", "local", "--no-autoreload",
               "--port", str(port), "--stage", "local"]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT / "functions", env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", "/health")
                conn.getresponse().read()
                break
            except OSError:
                assert time.monotonic() < deadline, "the API server never answered"
                time.sleep(0.5)
        for method in ("TRACE", "QUERY"):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request(method, "/health")
            response = conn.getresponse()
            assert response.status == 405, method
            assert response.getheader("Allow") == "GET"
            response.read()
    finally:
        server.terminate()
        server.wait(timeout=30)
