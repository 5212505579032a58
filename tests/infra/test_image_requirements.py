"""The API image's requirements (pinned from the lock) installed into a clean virtual
environment, with nothing of this machine's site-packages, import the API handler from the
image's build context. The wheels are fetched once into build/wheelhouse (then installed with
--no-index from there), so a rerun spends its time on the install itself."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from infra.package import ROOT

pytestmark = pytest.mark.slow
WHEELHOUSE = ROOT / "build" / "wheelhouse"


def test_api_image_requirements_install_clean_and_import_the_handler(tmp_path):
    from infra.__main__ import main

    out = tmp_path / "artifacts"
    assert (
        main(["package", "--out", str(out), "--python", f"{sys.version_info.major}.{sys.version_info.minor}"])
        == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    api = next(f for f in manifest["functions"] if f["package_type"] == "Image")
    context = out / api["artifact"]
    requirements = context / "requirements.txt"
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    fetched = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--no-deps",
         "-d", str(WHEELHOUSE), "-r", str(requirements)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr[-3000:]
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    python = env_dir / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--find-links",
         str(WHEELHOUSE), "-r", str(requirements)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]
    module, attr = api["handler"].rsplit(".", 1)
    probe = (
        "import sys, importlib; sys.path.insert(0, sys.argv[1])\n"
        f"handler = getattr(importlib.import_module({module!r}), {attr!r})\n"
        "assert all(not p.startswith(sys.argv[2]) for p in sys.path), 'the machine site-packages leaked in'\n"
        "print(type(handler).__name__)"
    )
    env = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"}
    done = subprocess.run(
        [str(python), "-I", "-c", probe, str(context), str(Path(sys.prefix))],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "Chalice"
