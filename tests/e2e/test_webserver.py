"""The static web server: files with module MIME types, the generated config, byte ranges, bad input."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from histolabel.localcloud.webserver import main, start, web_config


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as res:
            return res.status, res.headers, res.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def test_serves_app_and_config() -> None:
    server = start(web_config("http://127.0.0.1:9999/"))
    try:
        status, headers, body = get(server.url + "/config.json")
        assert status == 200 and json.loads(body) == {"apiUrl": "http://127.0.0.1:9999"}
        status, headers, body = get(server.url + "/js/app.js")
        assert status == 200 and headers["Content-Type"].startswith("text/javascript")
        status, _, body = get(server.url + "/index.html")
        assert status == 200 and b"js/app.js" in body
        assert get(server.url + "/nope.js")[0] == 404
    finally:
        server.stop()


def test_byte_ranges(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4
    (tmp_path / "shard").write_bytes(data)
    server = start({}, root=tmp_path)
    try:
        status, headers, body = get(server.url + "/shard", {"Range": "bytes=10-19"})
        assert (
            status == 206 and body == data[10:20] and headers["Content-Range"] == f"bytes 10-19/{len(data)}"
        )
        status, _, body = get(server.url + "/shard", {"Range": "bytes=-16"})
        assert status == 206 and body == data[-16:]
        status, _, body = get(server.url + "/shard", {"Range": "bytes=1000-"})
        assert status == 206 and body == data[1000:]
        assert get(server.url + "/shard", {"Range": "bytes=5000-6000"})[0] == 416
        assert get(server.url + "/shard", {"Range": "lines=1-2"})[0] == 416
    finally:
        server.stop()


def test_bad_input_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="api_url"):
        web_config("ftp://example.org")
    with pytest.raises(SystemExit) as exit_info:
        main(["--api-url", "not-a-url", "--port", "0"])
    assert exit_info.value.code == 2
    assert "api_url must be an http(s) URL" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--api-url", "http://x", "--root", str(tmp_path / "missing"), "--port", "0"])
    assert exit_info.value.code == 2
