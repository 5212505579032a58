"""Which S3 objects belong to a project.

Every object a route serves, or a job reads or writes, lies under its project's prefix of the
data bucket, `s3://{data bucket}/projects/{project}/`. A slide's source may also lie under a
prefix the deployer allow-listed for that project (`HISTOLABEL_SOURCE_PREFIXES`), so that a
lab's own scanner bucket can be ingested without a copy. Nothing else: an S3 URI is guessable
(ids come from file names), so knowing one must never be enough to read it.

Pure: the bucket and the allow-list come from Settings; the caller turns a refusal into a 403
or a failed job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from histolabel.config import Settings

PROJECT_TOKEN = "{project}"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class OutsideProject(ValueError):
    """An S3 URI that is not the project's to read or write."""

    def __init__(self, detail: str, field: str) -> None:
        super().__init__(detail)
        self.detail, self.field = detail, field


def split(uri: str, field: str = "uri") -> tuple[str, str]:
    """(bucket, key) of an s3:// URI whose key has no empty, '.' or '..' segment (one trailing
    '/' is allowed, for prefixes); anything else is refused rather than normalised."""
    if not uri.startswith("s3://"):
        raise OutsideProject(f"{uri!r} is not an S3 URI (s3://bucket/key)", field)
    bucket, _, key = uri[5:].partition("/")
    segments = key.removesuffix("/").split("/")
    if not _BUCKET.match(bucket) or any(s in ("", ".", "..") for s in segments):
        raise OutsideProject(f"{uri!r} is not a plain s3://bucket/key URI (no '.', '..' or '//')", field)
    return bucket, key


def project_prefix(project_id: str) -> str:
    """The key prefix of everything a project owns in the data bucket (with its final '/', so
    project 'a' never owns the keys of project 'ab')."""
    return f"projects/{project_id}/"


def in_project(uri: str, project_id: str, settings: Settings) -> bool:
    try:
        bucket, key = split(uri)
    except OutsideProject:
        return False
    return bucket == settings.data_bucket and key.startswith(project_prefix(project_id))


def require_in_project(uri: str, project_id: str, settings: Settings, field: str = "uri") -> str:
    split(uri, field)
    if not in_project(uri, project_id, settings):
        raise OutsideProject(
            f"{uri!r} is outside project {project_id!r} (s3://{settings.data_bucket}/"
            f"{project_prefix(project_id)})",
            field,
        )
    return uri


@dataclass(frozen=True)
class AllowedPrefix:
    """Sources under `prefix` (s3://bucket/key-prefix/, `{project}` standing for the caller's
    project) may be registered by `project` ("*": by every project)."""

    project: str
    prefix: str

    def admits(self, uri: str, project_id: str) -> bool:
        if self.project not in ("*", project_id):
            return False
        return uri.startswith(self.prefix.replace(PROJECT_TOKEN, project_id))

    @property
    def bucket(self) -> str:
        return self.prefix[5:].partition("/")[0]


def allowed_prefixes(settings: Settings) -> tuple[AllowedPrefix, ...]:
    """The deployer's allow-list: entries `PROJECT=s3://bucket/prefix/`, `*=s3://bucket/prefix/`
    (a library every project may read), or `s3://bucket/.../{project}/...` (each project its own
    sub-prefix). A bare prefix without `{project}` is refused: it would let every project read
    it, which must be said with `*=`. The data bucket cannot be listed (its projects' prefixes
    are the projects' own)."""
    out = []
    for entry in settings.source_prefixes:
        project, _, prefix = ("", "", entry) if entry.startswith("s3://") else entry.partition("=")
        if not project and PROJECT_TOKEN not in prefix:
            raise ValueError(
                f"source prefix {entry!r}: name its project (P=s3://..., *=s3://...) or use {{project}}"
            )
        prefix = prefix if prefix.endswith("/") else prefix + "/"
        bucket, _ = split(prefix.replace(PROJECT_TOKEN, "p"), "source_prefixes")
        if bucket == settings.data_bucket:
            raise ValueError(f"source prefix {entry!r} is in the data bucket, whose prefixes are per project")
        out.append(AllowedPrefix(project or "*", prefix))
    return tuple(out)


def require_source(uri: str, project_id: str, settings: Settings) -> str:
    """A slide's source: an upload into the project's own prefix, or under a prefix the deployer
    allow-listed for the project."""
    split(uri, "source_uri")
    if in_project(uri, project_id, settings):
        return uri
    if any(a.admits(uri, project_id) for a in allowed_prefixes(settings)):
        return uri
    raise OutsideProject(
        f"{uri!r} is outside project {project_id!r}: a slide's source must be an upload into "
        f"s3://{settings.data_bucket}/{project_prefix(project_id)} (register with filename to get an "
        "upload URL) or under a prefix the deployer allow-listed for this project",
        "source_uri",
    )
