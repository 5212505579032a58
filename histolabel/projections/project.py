"""The project stream's fold and the folded state's storage shape. Each event type's effect on
the state is its model's `fold` (histolabel/events/catalogue.py): the fold dispatches by the
event's type to its model."""

from __future__ import annotations

import json

from histolabel.events.catalogue import ProjectEvent, model_for, upcast
from histolabel.events.envelope import StoredEvent
from histolabel.projections.state import Category as Category  # re-exported: callers import them from here
from histolabel.projections.state import Member as Member
from histolabel.projections.state import ProjectState, SlideInfo, TrainingRun


def apply_project_event(state: ProjectState, event: StoredEvent) -> ProjectState:
    """Fold one project-stream event into `state` (updated in place and returned)."""
    d = upcast(event.type, event.v, event.payload)
    model = model_for(event.type)
    if issubclass(model, ProjectEvent):
        model.fold(state, d, event)
    state.seq = event.seq
    state.hash = event.hash
    return state


def fold_project(events: list[StoredEvent], state: ProjectState | None = None) -> ProjectState:
    state = state if state is not None else ProjectState()
    for event in events:
        apply_project_event(state, event)
    return state


# ---- storage shape -------------------------------------------------------------------------
# A project's state is stored as many small items, not one that grows with every slide, job and
# training run: the head (settings, members, categories, checkpoint) and one item per slide, run,
# job and model, and the latest predictions. Keys hold each entry's place in its (append-only)
# collection, so items sort back into the order the fold made them in.

HEAD = "state"
PREDICTIONS = "predictions"
PARTS = {"slides": "S#", "training": "T#", "jobs": "J#", "models": "M#"}
_EXCLUDED_FROM_HEAD = set(PARTS) | {"predictions"}


def head_body(state: ProjectState) -> str:
    return state.model_dump_json(exclude=_EXCLUDED_FROM_HEAD)


def state_items(state: ProjectState) -> dict[str, str]:
    """Sort key -> JSON body of each stored item of `state`."""
    items = {HEAD: head_body(state)}
    for i, slide in enumerate(state.slides.values()):
        items[f"S#{i:06d}"] = slide.model_dump_json()
    for i, run in enumerate(state.training.values()):
        items[f"T#{i:06d}"] = run.model_dump_json()
    for i, (job_id, job) in enumerate(state.jobs.items()):
        items[f"J#{i:06d}"] = json.dumps({"job_id": job_id, "job": job}, separators=(",", ":"))
    for i, model in enumerate(state.models):
        items[f"M#{i:06d}"] = json.dumps(model, separators=(",", ":"))
    if state.predictions is not None:
        items[PREDICTIONS] = json.dumps(state.predictions, separators=(",", ":"))
    return items


def state_from_items(items: dict[str, str]) -> ProjectState:
    """The state `state_items` stored; items other than a project's own are ignored."""
    state = ProjectState.model_validate_json(items[HEAD])
    for key in sorted(items):
        body = items[key]
        if key.startswith("S#"):
            slide = SlideInfo.model_validate_json(body)
            state.slides[slide.slide_id] = slide
        elif key.startswith("T#"):
            run = TrainingRun.model_validate_json(body)
            state.training[run.request_id] = run
        elif key.startswith("J#"):
            entry = json.loads(body)
            state.jobs[entry["job_id"]] = entry["job"]
        elif key.startswith("M#"):
            state.models.append(json.loads(body))
        elif key == PREDICTIONS:
            state.predictions = json.loads(body)
    return state
