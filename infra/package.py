"""Function artifacts: what each Lambda function runs, built from the source tree and the lock.

- projector, trigger, job_events: zips of their light handler modules (functions/handlers/),
  the histolabel package and the third-party packages their modules import (found by reading
  the imports, pinned from requirements.lock, built as manylinux wheels for the runtime's
  Python); boto3 and its dependencies come with the Lambda runtime.
- api: a container image (numpy, pyarrow, scikit-image, shapely, zarr and s3fs are ~530 MB,
  over the 250 MB zip limit): its build context holds a Dockerfile on the AWS Lambda Python
  base image (Amazon Linux 2023), requirements pinned from the lock, and the sources.

`python -m infra package --out DIR` writes them and DIR/manifest.json. Zips are byte-for-byte
reproducible (sorted entries, fixed timestamps); an artifact's name carries its content hash,
so an unchanged tree gives an unchanged template and a redeploy is a no-op.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from infra.callsites import module_file, reachable
from infra.errors import InfraError
from infra.functions import FUNCTIONS, RUNTIME, FunctionArtifact

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_SKIP_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", "tests"}
ZIP_LIMIT_BYTES = 250 * 2**20  # Lambda's limit on a function's unzipped code and layers
# What the Lambda Python runtime itself provides (boto3 and what it imports).
RUNTIME_PROVIDED = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six"}
)
# Installers a distribution declares (chalice's packager) but the running function never imports.
BUILD_TOOLS = frozenset({"pip", "setuptools", "wheel"})
# Packages imported only where the import sits behind a guard the functions never take, or
# needed without being imported by name.
EXTRA = {"api": ("cryptography",)}  # PyJWT verifies RS256 tokens with it (an optional import there)
LAMBDA_PYTHON = "3.12"
API_BASE_IMAGE = "public.ecr.aws/lambda/python:3.12"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[_canonical(name)] = version.split(";", 1)[0].strip()
    return pins


# Imported only to offer a feature when installed; their absence gives the user a clear error.
OPTIONAL = {"h5py": "HDF5 feature tables (gpu_jobs.import_features)"}


def _imported(modules: Iterable[str]) -> set[str]:
    """Top-level names of the third-party packages the modules import (anywhere in them)."""
    ours = {"histolabel", "gpu_jobs", "infra", "chalicelib", "handlers", "app"}
    names: set[str] = set()
    for module in modules:
        path = module_file(
            module.rsplit(".", 1)[0] if module.startswith("histolabel.composition.") else module
        )
        if path is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".", 1)[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".", 1)[0])
    return {n for n in names if n not in ours and n not in OPTIONAL and n not in sys.stdlib_module_names}


def _closure(distributions: Iterable[str]) -> set[str]:
    """The distributions and everything they require (markers evaluated here; extras not)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [_canonical(d) for d in distributions]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for spec in importlib.metadata.requires(name) or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(_canonical(req.name))
    return seen


def requirements(fn: FunctionArtifact) -> list[str]:
    """`name==version` lines, from the lock, of what the function's modules import."""
    modules = reachable(fn.entries, fn.factories).modules
    by_module = importlib.metadata.packages_distributions()
    dists: set[str] = set(EXTRA.get(fn.name, ()))
    for name in _imported(modules):
        found = by_module.get(name)
        if not found:
            raise InfraError(f"{fn.name}: cannot tell which distribution provides {name!r}")
        dists.update(found)
    wanted = _closure(dists)
    wanted -= BUILD_TOOLS
    if fn.package_type == "Zip":
        wanted -= RUNTIME_PROVIDED
    pins = locked()
    missing = sorted(d for d in wanted if d not in pins)
    if missing:
        raise InfraError(f"{fn.name}: {missing} are not in requirements.lock")
    return sorted(f"{d}=={pins[d]}" for d in wanted)


def _files(base: Path, under: Path) -> Iterator[tuple[Path, str]]:
    for path in sorted(under.rglob("*")):
        rel = path.relative_to(base)
        if path.is_file() and not _SKIP_PARTS.intersection(rel.parts) and path.suffix != ".pyc":
            yield path, rel.as_posix()


def _sources(fn: FunctionArtifact, root: Path = ROOT) -> list[tuple[Path, str]]:
    functions = root / "functions"
    sources = list(_files(root, root / "histolabel"))
    if fn.name == "api":
        sources.append((functions / "app.py", "app.py"))
        sources += list(_files(functions, functions / "chalicelib"))
    else:
        sources += [(functions / "handlers" / "__init__.py", "handlers/__init__.py")]
        module = fn.handler.rsplit(".", 1)[0]
        sources.append(
            (functions.joinpath(*module.split(".")).with_suffix(".py"), f"{module.replace('.', '/')}.py")
        )
    return sources


def build_zip(files: Iterable[tuple[Path, str]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, name in sorted(files, key=lambda f: f[1]):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def dependencies(lines: list[str], cache: Path, python_version: str) -> Path:
    """pip-install pinned packages as manylinux x86_64 wheels for `python_version`, cached."""
    digest = hashlib.sha256("\n".join([python_version, *lines]).encode()).hexdigest()[:16]
    out = cache / digest
    if (out / ".complete").exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    # Built beside the cache entry and renamed into place: two builds at once (two deploys, two
    # test workers) never see or remove each other's half-installed tree.
    work = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=cache))
    reqs = work / "requirements.txt"
    reqs.write_text("\n".join(lines) + "\n")
    target = work / "site"
    result = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
            "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64",
            "--implementation", "cp", "--python-version", python_version, "--only-binary=:all:",
            "--target", str(target), "-r", str(reqs),
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    if result.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        raise InfraError(f"building Lambda dependencies failed: {result.stderr.strip()[-2000:]}")
    (target / ".complete").write_text(digest)
    if out.exists() and not (out / ".complete").exists():
        shutil.rmtree(out, ignore_errors=True)  # a build that died half-way, before this scheme
    try:
        target.rename(out)
    except OSError:  # another build finished first: use its tree
        if not (out / ".complete").exists():
            raise
    shutil.rmtree(work, ignore_errors=True)
    return out


def unzipped_size(data: bytes) -> int:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return sum(i.file_size for i in archive.infolist())


DOCKERFILE = """# The API function's image: Lambda's Python base image (Amazon Linux 2023), requirements
# pinned from requirements.lock, the Chalice app and the histolabel package.
FROM {base}
COPY requirements.txt ${{LAMBDA_TASK_ROOT}}/requirements.txt
RUN pip install --no-cache-dir --only-binary=:all: --target ${{LAMBDA_TASK_ROOT}} \\
    -r ${{LAMBDA_TASK_ROOT}}/requirements.txt
COPY app.py ${{LAMBDA_TASK_ROOT}}/
COPY chalicelib ${{LAMBDA_TASK_ROOT}}/chalicelib
COPY histolabel ${{LAMBDA_TASK_ROOT}}/histolabel
CMD ["{handler}"]
"""


def context_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:20]


def package(out: Path, *, python_version: str = LAMBDA_PYTHON, deps_cache: Path | None = None,
            build_deps: bool = True) -> dict[str, object]:  # fmt: skip
    """Write every function's artifact under `out` and out/manifest.json; returns the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    cache = deps_cache or ROOT / "build" / "lambda-deps"
    entries = []
    for fn in FUNCTIONS:
        art = fn.artifact
        lines = requirements(art)
        if art.package_type == "Zip":
            files = _sources(art)
            if build_deps and lines:
                deps = dependencies(lines, cache, python_version)
                files += [(p, rel) for p, rel in _files(deps, deps) if not rel.startswith(".complete")]
            data = build_zip(files)
            name = f"{art.name}-{hashlib.sha256(data).hexdigest()[:20]}.zip"
            (out / name).write_bytes(data)
            size = unzipped_size(data)
            if size > ZIP_LIMIT_BYTES:
                raise InfraError(f"{art.name}: {size / 2**20:.0f} MB unzipped, over Lambda's 250 MB limit")
            entries.append({"name": art.name, "package_type": "Zip", "handler": art.handler,
                            "runtime": RUNTIME, "artifact": name, "unzipped_bytes": size})  # fmt: skip
        else:
            context = out / art.name
            if context.exists():
                shutil.rmtree(context)
            context.mkdir()
            for path, rel in _sources(art):
                target = context / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
            (context / "requirements.txt").write_text("\n".join(lines) + "\n")
            (context / "Dockerfile").write_text(DOCKERFILE.format(base=API_BASE_IMAGE, handler=art.handler))
            size = sum(p.stat().st_size for p in context.rglob("*") if p.is_file())
            entries.append({"name": art.name, "package_type": "Image", "handler": art.handler,
                            "runtime": RUNTIME, "artifact": art.name, "unzipped_bytes": size})  # fmt: skip
    manifest: dict[str, object] = {"functions": entries}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


JOB_REQUIREMENTS = ROOT / "gpu_jobs" / "requirements-job.txt"
JOB_REQUIREMENTS_HEADER = """\
# What the Batch jobs import, pinned from requirements.lock: written by
# `python -m infra job-requirements` (tests/infra/test_artifacts.py fails when it drifts).
# torch==2.13.0 resolves to the CUDA 12.8 build through the index gpu_jobs/Dockerfile adds
# (a local version 2.13.0+cu128 is preferred to PyPI's 2.13.0, a CUDA 13 build that needs
# NVIDIA driver 580+); CUDA 12.x runs on every driver >= 525 by minor-version compatibility,
# which the ECS AL2023 NVIDIA AMI's driver is. Its CUDA libraries are pinned by torch itself.
"""


def job_requirements() -> str:
    """The jobs' requirements file: every gpu_jobs module's imports, closed and pinned."""
    jobs = sorted(p.stem for p in (ROOT / "gpu_jobs").glob("*.py") if p.stem not in ("__init__", "common"))
    artifact = FunctionArtifact(
        "jobs", "Image", "", tuple(f"gpu_jobs.{j}" for j in jobs), ("service_from_env",)
    )
    return JOB_REQUIREMENTS_HEADER + "\n".join(requirements(artifact)) + "\n"
