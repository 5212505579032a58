"""`python -m infra package`: every function's artifact, imported the way Lambda imports it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infra.__main__ import main
from infra.package import RUNTIME_PROVIDED, ZIP_LIMIT_BYTES

HEAVY = ("numpy", "pyarrow", "skimage", "torch", "zarr", "s3fs", "shapely", "scipy")
PY = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    """Built through the CLI for this interpreter's Python (the only one here; a deploy builds
    for python3.12: the same pins, other wheel tags for the compiled packages)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("artifacts")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["package", "--out", str(out), "--python", PY]) == 0
    return out, json.loads((out / "manifest.json").read_text()), printed.getvalue()


@pytest.fixture(scope="module")
def runtime_boto3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding only boto3 and what it imports, standing in for the Lambda runtime's."""
    import importlib.util

    folder = tmp_path_factory.mktemp("runtime")
    for name in ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six"):
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        origin = Path(spec.origin)
        if origin.name == "__init__.py":
            shutil.copytree(origin.parent, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(origin, folder / origin.name)
    return folder


def test_manifest_lists_every_function_as_specified(packaged):
    out, manifest, printed = packaged
    names = {f["name"] for f in manifest["functions"]}
    assert names == {"api", "projector", "trigger", "job_events", "anchorer"}
    for fn in manifest["functions"]:
        assert set(fn) == {"name", "package_type", "handler", "runtime", "artifact", "unzipped_bytes"}
        assert fn["package_type"] in ("Zip", "Image") and fn["runtime"] == "python3.12"
        assert (out / fn["artifact"]).exists()
        assert f"{fn['name']}: {fn['package_type']}" in printed and "MB unzipped" in printed
    api = next(f for f in manifest["functions"] if f["name"] == "api")
    assert api["package_type"] == "Image" and api["handler"] == "app.app"
    dockerfile = (out / api["artifact"] / "Dockerfile").read_text()
    assert "public.ecr.aws/lambda/python:3.12" in dockerfile and 'CMD ["app.app"]' in dockerfile


def test_zips_fit_and_carry_no_runtime_boto3(packaged):
    out, manifest, _ = packaged
    for fn in manifest["functions"]:
        if fn["package_type"] != "Zip":
            continue
        assert fn["unzipped_bytes"] < ZIP_LIMIT_BYTES
        with zipfile.ZipFile(out / fn["artifact"]) as archive:
            tops = {n.split("/", 1)[0] for n in archive.namelist()}
        assert not tops & {"boto3", "botocore"}, RUNTIME_PROVIDED
        assert not tops & set(HEAVY), f"{fn['name']} ships {tops & set(HEAVY)}"


@pytest.mark.parametrize("name", ["projector", "trigger", "job_events"])
def test_zip_handler_imports_with_only_its_artifact_and_runtime_boto3(
    packaged, runtime_boto3, tmp_path, name
):
    out, manifest, _ = packaged
    fn = next(f for f in manifest["functions"] if f["name"] == name)
    root = tmp_path / name
    with zipfile.ZipFile(out / fn["artifact"]) as archive:
        archive.extractall(root)
    module, attr = fn["handler"].rsplit(".", 1)
    probe = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
        f"import importlib; h = getattr(importlib.import_module({module!r}), {attr!r}); assert callable(h)\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "assert not heavy, heavy\n"
        "print('imported', sys.argv[1])"
    )
    # -S -I: no site-packages, no PYTHONPATH, no user site: the artifact and boto3 only.
    done = subprocess.run(
        [sys.executable, "-S", "-I", "-c", probe, str(root), str(runtime_boto3)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"AWS_DEFAULT_REGION": "us-east-1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
