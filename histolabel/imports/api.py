"""The import routes' bodies and rules: an upload (a presigned PUT beside the slide) and a job
that imports it. Who may import what: a segmentation replaces the slide's superpixels (owner);
labels and features add to them (owner, annotator)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, StringConstraints

from histolabel.api.schemas import whole_number
from histolabel.events.catalogue import Color, FeatureKind
from histolabel.imports.errors import max_import_bytes

ImportKind = Literal["segmentation", "labels", "features"]
ROLES: dict[str, tuple[str, ...]] = {
    "segmentation": ("owner",),
    "labels": ("owner", "annotator"),
    "features": ("owner", "annotator"),
}
FileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")]
ImportId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]


class ImportOptions(BaseModel):
    # JSON numbers and booleans only: "2" is not level 2, 0 is not lenient=false.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    format: Literal["auto", "geojson", "histomics", "tiff"] = "auto"
    level: int | None = Field(default=None, ge=0, le=20)
    lenient: bool = False
    replace_labels: bool = False
    category: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    color: Color | None = None
    min_cover: float = Field(default=0.5, gt=0, le=1)
    match: Literal["auto", "id", "overlap"] = "auto"
    feature_kind: FeatureKind = "imported"


class ImportUploadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: ImportKind
    filename: FileName
    size: Annotated[
        int,
        Strict(),  # true is not 1 byte
        Field(
            gt=0,
            description="bytes; refused above the import limit",
            # The deployment's limit, so the OpenAPI document states it (HISTOLABEL_MAX_IMPORT_BYTES).
            json_schema_extra=lambda schema: schema.update(maximum=max_import_bytes()),
        ),
        BeforeValidator(whole_number),  # JSON Schema's integer: 6878.0 is 6878 bytes
    ]


class ImportStartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: ImportKind
    filename: FileName
    options: ImportOptions = Field(default_factory=ImportOptions)


class MaskQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Literal["tiff"] = "tiff"  # an OME-Zarr mask is a folder: `histolabel export masks`


def mask_filename(slide_id: str) -> str:
    return f"{slide_id}-mask.tif"


def new_import_id() -> str:
    return uuid.uuid4().hex


def upload_key(project_id: str, slide_id: str, import_id: str, filename: str) -> str:
    return f"projects/{project_id}/slides/{slide_id}/imports/{import_id}/{filename}"


def too_large(size: int) -> str | None:
    limit = max_import_bytes()
    if size > limit:
        return f"the file is {size / 2**20:.0f} MiB; imports are limited to {limit / 2**20:.0f} MiB"
    return None


def job_args(kind: str, project_id: str, slide_id: str, source: str, o: ImportOptions, user: str,
             site: str) -> list[str]:  # fmt: skip
    """The import job's command line (the CLI builds the same from its flags)."""
    args: list[Any] = ["--project", project_id, "--slide", slide_id, "--source", source, "--progress", "off"]
    if kind == "segmentation":
        args += ["--format", o.format] + (["--level", o.level] if o.level is not None else [])
        args += ["--lenient"] * o.lenient + ["--replace-labels"] * o.replace_labels
    elif kind == "labels":
        args += ["--user", user, "--site", site, "--min-cover", o.min_cover, "--match", o.match]
        args += (["--category", o.category] if o.category else []) + (["--color", o.color] if o.color else [])
    else:
        args += ["--kind", o.feature_kind]
    return [str(a) for a in args]
