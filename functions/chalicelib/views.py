"""Route logic that needs the service or S3: current labels with no projection lag, brush
selections, predictions of the current model, review rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from chalicelib import data
from histolabel import confinement
from histolabel.api.review import Row, rows_for_slide
from histolabel.api.tables import Predictions
from histolabel.commands import CommandRejected
from histolabel.config import get_settings
from histolabel.projections.labels import SlideLabels
from histolabel.projections.project import ProjectState
from histolabel.service import HistoLabel


def current_labels(svc: HistoLabel, project_id: str, slide_id: str) -> SlideLabels:
    """The projection caught up with the events it has not seen yet: cheap and never stale, so
    what a user has just answered is already in it."""
    return svc.slide_labels_current(project_id, slide_id)


def segmented_slides(state: ProjectState) -> dict[str, dict[str, Any]]:
    return {sid: s.segmentation for sid, s in state.slides.items() if s.segmentation is not None}


def require_slide(state: ProjectState, slide_id: str, segmented: bool = False) -> dict[str, Any] | None:
    slide = state.slides.get(slide_id)
    if slide is None:
        raise CommandRejected("not_found", f"slide {slide_id!r} does not exist", "slide_id", 404)
    if segmented and slide.segmentation is None:
        raise CommandRejected("invalid", f"slide {slide_id!r} has no superpixels yet", "slide_id", 409)
    return slide.segmentation


def own(state: ProjectState, uri: str, field: str = "slide_id") -> str:
    """A URI the project's state names (jobs record them), served only when it lies under the
    project's own prefix: a misdirected or forged job event must not make a route read another
    project's object."""
    if not confinement.in_project(uri, state.project_id, get_settings()):
        detail = f"the project's state names an object outside project {state.project_id!r}"
        raise CommandRejected("forbidden", detail, field, 403)
    return uri


def table_for(state: ProjectState, slide_id: str) -> Any:
    seg = require_slide(state, slide_id, segmented=True)
    assert seg is not None
    uri = own(state, seg["table_uri"])
    try:
        return data.superpixel_table(uri, seg.get("at", ""))
    except (OSError, ValueError) as exc:
        raise CommandRejected(
            "unavailable",
            f"the superpixel table of slide {slide_id!r} cannot be read: {exc}",
            "slide_id",
            409,
        ) from None


def ids_in_polygon(state: ProjectState, slide_id: str, polygon: list[list[float]]) -> list[int]:
    """Superpixels whose centroid lies inside the brush polygon ([x, y] level-0 px)."""
    shape = shapely.Polygon(polygon)
    if not shape.is_valid:
        shape = shape.buffer(0)
    if shape.is_empty:
        raise CommandRejected("invalid", "the polygon encloses no area", "polygon")
    table = table_for(state, slide_id)
    inside = shapely.contains_xy(shape, table.centroid[:, 1], table.centroid[:, 0])
    ids = [int(i) for i in table.ids[np.asarray(inside)]]
    if not ids:
        raise CommandRejected("invalid", "the polygon contains no superpixel centroid", "polygon")
    return ids


def model_predictions(state: ProjectState, slide_ids: list[str]) -> dict[str, Predictions]:
    pub = state.predictions
    if not pub:
        return {}
    out = {}
    for sid in slide_ids:
        if sid in pub["slides"]:
            try:
                out[sid] = data.predictions(own(state, data.prediction_uri(pub["uri_prefix"], sid)))
            except FileNotFoundError:
                continue
    return out


def slide_predictions(state: ProjectState, slide_id: str) -> tuple[int, Predictions]:
    """The latest published predictions of one slide (the train job predicts right after it
    trains, so these are the current model's once it is done) and their model version."""
    require_slide(state, slide_id)
    pub = state.predictions
    if not pub:
        if state.current_model is None:
            raise CommandRejected("not_found", "the project has no trained model yet", "project_id", 404)
        version = state.current_model["model_version"]
        raise CommandRejected(
            "conflict", f"model v{version} has no published predictions yet", "project_id", 409
        )
    version = int(pub["model_version"])
    if slide_id not in pub["slides"]:
        raise CommandRejected(
            "conflict", f"model v{version} has no predictions for slide {slide_id!r}", "slide_id", 409
        )
    uri = own(state, data.prediction_uri(pub["uri_prefix"], slide_id))
    try:
        return version, data.predictions(uri)
    except (OSError, ValueError) as exc:
        raise CommandRejected(
            "unavailable", f"the predictions of slide {slide_id!r} cannot be read: {exc}", "slide_id", 409
        ) from None


def review_rows(svc: HistoLabel, state: ProjectState, slide: str | None = None) -> list[Row]:
    slides = [slide] if slide else sorted(state.slides)
    preds = model_predictions(state, slides)
    rows: list[Row] = []
    for sid in slides:
        lookup = preds[sid].lookup() if sid in preds else None
        rows.extend(rows_for_slide(current_labels(svc, state.project_id, sid), state.resolve, lookup))
    return rows
