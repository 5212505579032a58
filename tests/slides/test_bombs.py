"""A decompression bomb through the ingest job's door: refused from its header, fast, in little
memory, with nothing written (issue 17, item 3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

from tests.slides.test_ingest import ROOT, _listing
from tests.slides.test_readers import png_claiming

# The job as the runner starts it, timed from the call of its main and with the process's peak
# resident memory, imports included. The S3 client is warmed first (its first connection takes
# seconds on a busy machine whatever the file): the time is the job's handling of the file.
# (VmHWM, not getrusage: Linux carries ru_maxrss over from the forking parent across exec.)
HARNESS = """
import json, re, sys, time
from gpu_jobs.common import run
from gpu_jobs.ingest import main
from histolabel.adapters.s3 import filesystem
from histolabel.config import get_settings
t = time.perf_counter()
filesystem().ls(get_settings().data_bucket)
warm_up = time.perf_counter() - t
t0 = time.perf_counter()
code = run(main, sys.argv[1:])
seconds = time.perf_counter() - t0
with open("/proc/self/status") as status:
    peak_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1))
print(json.dumps({"exit": code, "seconds": seconds, "warm_up_s": warm_up, "max_rss_mb": peak_kb / 1024}))
"""


@pytest.mark.slow
def test_a_1mb_png_claiming_100k_by_100k_pixels_is_refused_in_2s_under_200mb(cloud, upload, dest) -> None:
    # ~1 MB of (incompressible) image data behind a header claiming 10^10 RGB pixels (28 GiB).
    payload = zlib.compress(np.random.default_rng(0).integers(0, 256, 2**20, dtype=np.uint8).tobytes())
    bomb = png_claiming(100_000, 100_000, payload)
    assert 1_000_000 < len(bomb) < 1_200_000
    source = upload(bomb, "bomb.png")
    args = ["--project", "p1", "--slide", "s1", "--source", source, "--dest", dest, "--no-events"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "functions")])}
    proc = subprocess.run([sys.executable, "-c", HARNESS, *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    print(report)
    assert report["exit"] == 2, proc.stderr
    assert "claims 10,000,000,000 pixels" in proc.stderr and "Traceback" not in proc.stderr
    assert report["seconds"] < 2.0 and report["max_rss_mb"] < 200, report
    assert _listing(dest, cloud) == []
