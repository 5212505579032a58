"""The web client's outbox (web/js/api.js, run by Node as the browser runs the module): an edit
answered 503 stays in the outbox and is sent again, with the same idempotency key, after the
Retry-After the API gave, until it is stored; an error that is not "retry later" waits for the
Retry button."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

API_JS = Path(__file__).resolve().parents[2] / "web" / "js" / "api.js"
SCRIPT = """
globalThis.sessionStorage = { getItem: () => null, setItem() {}, removeItem() {} };
const { Api, Outbox } = await import(process.argv[1]);
const [status, failures] = [Number(process.argv[2]), Number(process.argv[3])];
const calls = [];
let left = failures;
globalThis.fetch = async (url, opts) => {
  calls.push({ key: opts.headers["Idempotency-Key"], at: Date.now() });
  if (left-- > 0) {
    return new Response(JSON.stringify({ error: "unavailable", detail: "store down" }),
      { status, headers: { "Retry-After": "1", "Content-Type": "application/json" } });
  }
  return new Response(JSON.stringify({ appended: 1 }), { status: 200 });
};
const api = new Api("http://api.test");
api.retryDelays = [];  // the outbox's own re-sends, not the request's quick retries, are under test
const outbox = new Outbox(api);
const t0 = Date.now();
let done = null;
const edit = { ids: [1], category_id: "tumor" };
outbox.send("/projects/p/slides/s/labels", edit, { onDone: (r) => { done = r; } }).catch(() => {});
while (!done && Date.now() - t0 < Number(process.argv[4])) await new Promise((r) => setTimeout(r, 50));
const gaps = calls.slice(1).map((c, i) => c.at - calls[i].at);
console.log(JSON.stringify({ done, calls: calls.length, keys: new Set(calls.map((c) => c.key)).size,
  left: outbox.items.size, failed: outbox.failed.length, gaps }));
process.exit(0);
"""


def run_outbox(status: int, failures: int, wait_ms: int) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    args = [API_JS.as_uri(), str(status), str(failures), str(wait_ms)]
    out = subprocess.run(
        [node, "--input-type=module", "-e", SCRIPT, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_an_edit_answered_503_is_kept_and_sent_again_after_retry_after():
    seen = run_outbox(503, failures=2, wait_ms=8000)
    assert seen["done"] == {"appended": 1} and seen["left"] == 0
    assert seen["calls"] == 3 and seen["keys"] == 1  # the same edit, under its one key
    # Retry-After: 1 s, then doubled for the second re-send.
    assert seen["gaps"][0] >= 950 and seen["gaps"][1] >= 1900


def test_a_500_is_not_resent_on_its_own():
    seen = run_outbox(500, failures=1, wait_ms=2500)
    assert seen["done"] is None and seen["calls"] == 1 and seen["failed"] == 1
