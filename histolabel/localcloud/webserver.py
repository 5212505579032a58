"""A tiny static server for web/ (the labeling app) with a generated /config.json.

In the cloud the app is served from the web bucket and /config.json is uploaded beside it;
locally this server plays that part, so the app reads its API address the same way in both.
Nothing here talks to AWS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

WEB_ROOT = Path(__file__).resolve().parents[2] / "web"

# ES modules must be served with a JavaScript type or the browser refuses them.
EXTRA_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".svg": "image/svg+xml",
}


def web_config(api_url: str, **extra: Any) -> dict[str, Any]:
    """What the app needs before login: the API address (Cognito settings come from GET /config)."""
    if not api_url.startswith(("http://", "https://")):
        raise ValueError(f"api_url must be an http(s) URL, got {api_url!r}")
    return {"apiUrl": api_url.rstrip("/"), **extra}


class _Handler(SimpleHTTPRequestHandler):
    config_body: bytes = b"{}"
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **EXTRA_TYPES}

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] in ("/config.json",):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(self.config_body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(self.config_body)
            return
        byte_range = self.headers.get("Range")
        if byte_range:
            self._send_range(byte_range)
            return
        super().do_GET()

    def do_OPTIONS(self) -> None:
        # CORS preflight for Range requests from a page served on another port.
        self.send_response(204)
        self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "Range, Content-Type")
        self.send_header("Access-Control-Max-Age", "600")
        self.end_headers()

    def _send_range(self, header: str) -> None:
        """One byte range (`a-b`, `a-` or `-n`), as S3 answers it: the zarr shard reader needs it."""
        path = self.translate_path(self.path)
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
        if not os.path.isfile(path):
            self.send_error(404)
            return
        size = os.path.getsize(path)
        if not match or match.groups() == ("", ""):
            self.send_error(416)
            return
        first, last = match.groups()
        if first == "":
            start, end = max(0, size - int(last)), size - 1
        else:
            start, end = int(first), min(size - 1, int(last)) if last else size - 1
        if start > end or start >= size:
            self.send_error(416)
            return
        with open(path, "rb") as fh:
            fh.seek(start)
            body = fh.read(end - start + 1)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def end_headers(self) -> None:
        # Development server: always serve the files as they are on disk now, to any origin
        # (the stand-alone viewer and the benchmark read zarr folders served from another port).
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Expose-Headers", "Content-Range, Content-Length")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class WebServer:
    """A running static server; `url` is its base address."""

    httpd: ThreadingHTTPServer
    thread: threading.Thread = field(repr=False)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def make_server(
    config: dict[str, Any], root: Path = WEB_ROOT, host: str = "127.0.0.1", port: int = 0
) -> ThreadingHTTPServer:
    if not root.is_dir():
        raise FileNotFoundError(f"web root {root} is not a directory")
    handler = type("Handler", (_Handler,), {"config_body": json.dumps(config).encode()})
    httpd = ThreadingHTTPServer((host, port), partial(handler, directory=str(root)))
    httpd.daemon_threads = True
    return httpd


def start(config: dict[str, Any], root: Path = WEB_ROOT, host: str = "127.0.0.1", port: int = 0) -> WebServer:
    """Serve `root` in a background thread (port 0 picks a free one)."""
    httpd = make_server(config, root, host, port)
    thread = threading.Thread(target=httpd.serve_forever, name="histolabel-web", daemon=True)
    thread.start()
    return WebServer(httpd, thread)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the HistoLabel web app")
    parser.add_argument("--api-url", required=True, help="base URL of the HistoLabel API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--root", type=Path, default=WEB_ROOT)
    args = parser.parse_args(argv)
    try:
        httpd = make_server(web_config(args.api_url), args.root, args.host, args.port)
    except (ValueError, OSError) as err:
        parser.exit(2, f"error: {err}\n")
    print(f"HistoLabel web app on http://{args.host}:{httpd.server_address[1]}/", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


if __name__ == "__main__":
    main()
