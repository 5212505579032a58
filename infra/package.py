"""The Lambda code bundle: functions/ (app.py, chalicelib/) and histolabel/ at the zip root,
plus third-party packages built for the Lambda platform.

The zip is byte-for-byte reproducible (sorted entries, fixed timestamps), and its S3 key is
its content hash: an unchanged tree gives an unchanged template, so a redeploy is a no-op.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = Path(__file__).resolve().parent / "lambda-requirements.txt"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_SKIP_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", "tests"}


def _files(base: Path, under: Path) -> Iterator[tuple[Path, str]]:
    for path in sorted(under.rglob("*")):
        rel = path.relative_to(base)
        if path.is_file() and not _SKIP_PARTS.intersection(rel.parts) and path.suffix != ".pyc":
            yield path, rel.as_posix()


def bundle_sources(root: Path = ROOT, deps: Path | None = None) -> list[tuple[Path, str]]:
    functions = root / "functions"
    sources = [(functions / "app.py", "app.py")] if (functions / "app.py").is_file() else []
    if (functions / "chalicelib").is_dir():
        sources += list(_files(functions, functions / "chalicelib"))
    sources += list(_files(root, root / "histolabel"))
    if deps is not None:
        sources += list(_files(deps, deps))
    return sources


def build_bundle(root: Path = ROOT, deps: Path | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, name in bundle_sources(root, deps):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def bundle_key(bundle: bytes) -> str:
    return f"lambda/{hashlib.sha256(bundle).hexdigest()[:20]}.zip"


def build_dependencies(target: Path) -> Path:
    """pip-install the functions' requirements as manylinux x86_64 wheels for Python 3.11,
    cached by the requirements' hash."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12]
    out = target / digest
    if (out / ".complete").exists():
        return out
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--platform",
            "manylinux2014_x86_64",
            "--implementation",
            "cp",
            "--python-version",
            "3.11",
            "--only-binary=:all:",
            "--target",
            str(out),
            "-r",
            str(REQUIREMENTS),
        ],
        check=True,
    )
    (out / ".complete").write_text(digest)
    return out
