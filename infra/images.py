"""The container images a stage runs (the API function's, the jobs'), named by the hash of
their build context: present in ECR, built there by CodeBuild, or refused with a message.

`deploy` never points a function or job definition at an image that is not in ECR: that
would make a stack whose API fails on every request and whose jobs never start.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from histolabel.adapters.aws import client
from histolabel.config import Settings
from infra.errors import InfraError
from infra.foundation import IMAGE_CONTEXTS, SOURCE_KEY_PREFIX
from infra.package import ROOT, _files, build_zip, context_digest
from infra.stackops import Echo

# What the jobs' image is built from (gpu_jobs/Dockerfile copies these).
JOB_CONTEXT = ("pyproject.toml", "README.md", "gpu_jobs", "histolabel")
BUILD_POLL_S = 15


def job_context_files(root: Path = ROOT) -> list[tuple[Path, str]]:
    files: list[tuple[Path, str]] = []
    for name in JOB_CONTEXT:
        path = root / name
        files += [(path, name)] if path.is_file() else list(_files(root, path))
    return files


def job_image_tag(root: Path = ROOT) -> str:
    h = hashlib.sha256()
    for path, rel in sorted(job_context_files(root), key=lambda f: f[1]):
        h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:20]


def image_exists(ecr: Any, repository: str, tag: str) -> bool:
    try:
        ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
        return True
    except ClientError as err:
        if err.response["Error"]["Code"] in ("ImageNotFoundException", "RepositoryNotFoundException"):
            return False
        raise


def source_zip(artifacts_dir: Path) -> bytes:
    """The build source CodeBuild gets: the jobs' context and the API's (as packaged)."""
    api = artifacts_dir / "api"
    files = job_context_files() + [
        (p, f"api/{p.relative_to(api).as_posix()}") for p in sorted(api.rglob("*")) if p.is_file()
    ]
    return build_zip(files)


def _build(settings: Settings, outputs: dict[str, str], image: str, uri: str, tag: str,
           source_key: str, echo: Echo) -> None:  # fmt: skip
    codebuild = client("codebuild", settings)
    dockerfile, context = IMAGE_CONTEXTS[image]
    project = outputs.get("ImageBuilderName")
    if not project:
        raise InfraError("the foundation stack has no image builder (CodeBuild project); rerun deploy")
    env = {"DOCKERFILE": dockerfile, "CONTEXT": context, "REPOSITORY_URI": uri, "IMAGE_TAG": tag}
    build = codebuild.start_build(
        projectName=project,
        sourceTypeOverride="S3",
        sourceLocationOverride=f"{outputs['ArtifactsBucketName']}/{source_key}",
        environmentVariablesOverride=[{"name": k, "value": v, "type": "PLAINTEXT"} for k, v in env.items()],
    )["build"]
    echo(f"building the {image} image with CodeBuild ({build['id']}); this takes several minutes")
    while True:
        time.sleep(BUILD_POLL_S)
        state = codebuild.batch_get_builds(ids=[build["id"]])["builds"][0]
        if state["buildStatus"] == "SUCCEEDED":
            echo(f"built {uri}:{tag}")
            return
        if state["buildStatus"] != "IN_PROGRESS":
            logs = state.get("logs", {}).get("deepLink", "its CloudWatch log")
            raise InfraError(
                f"building the {image} image failed ({state['buildStatus']}); see {logs}. "
                "The app stack was not touched."
            )


def ensure_images(settings: Settings, outputs: dict[str, str], artifacts_dir: Path, echo: Echo, *,
                  job_tag: str | None, build: bool, emulated: bool) -> dict[str, str]:  # fmt: skip
    """image -> URI:tag of each image the app stack needs, each present in ECR."""
    ecr = client("ecr", settings)
    wanted = {
        "api": (outputs["ApiRepositoryUri"], context_digest(artifacts_dir / "api")),
        "jobs": (outputs["JobRepositoryUri"], job_tag or job_image_tag()),
    }
    source_key = ""
    result = {}
    for image, (uri, tag) in wanted.items():
        repository = uri.rsplit("/", 1)[1]
        if not image_exists(ecr, repository, tag):
            if image == "jobs" and job_tag:
                raise InfraError(
                    f"--image-tag {job_tag}: {uri}:{job_tag} is not in ECR; push it, or omit --image-tag "
                    "to build the image of this source tree. The app stack was not touched."
                )
            if not build:
                how = (
                    "the emulator has no CodeBuild: push an image with that tag to its ECR first"
                    if emulated
                    else "rerun without --no-build-images to build it with CodeBuild"
                )
                raise InfraError(
                    f"the {image} image {uri}:{tag} is not in ECR ({how}). The app stack was not touched."
                )
            if not source_key:
                data = source_zip(artifacts_dir)
                source_key = f"{SOURCE_KEY_PREFIX}{hashlib.sha256(data).hexdigest()[:20]}.zip"
                client("s3", settings).put_object(
                    Bucket=outputs["ArtifactsBucketName"], Key=source_key, Body=data
                )
            _build(settings, outputs, image, uri, tag, source_key, echo)
        result[image] = f"{uri}:{tag}"
    return result


def push_placeholder_image(settings: Settings, uri: str) -> None:
    """For the emulator only (it builds nothing): record an image manifest under `uri`'s tag,
    as a CodeBuild push would."""
    repository, tag = uri.rsplit("/", 1)[1].split(":", 1)
    manifest = (
        '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
        '"config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,'
        f'"digest":"sha256:{hashlib.sha256(tag.encode()).hexdigest()}"}},"layers":[]}}'
    )
    client("ecr", settings).put_image(repositoryName=repository, imageManifest=manifest, imageTag=tag)
