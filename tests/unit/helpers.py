"""Builders for unit tests: an in-memory service with a project, categories and a segmented slide."""

from __future__ import annotations

from itertools import count

from histolabel.adapters.memory import InMemoryEventStore, InMemoryProjectionStore
from histolabel.commands import AddCategory, AddMember, CreateProject, RegisterSlide
from histolabel.config import Settings, get_settings
from histolabel.events.catalogue import Actor
from histolabel.service import HistoLabel

OWNER = Actor(user="olivia", site="nyc")
ANNOTATOR = Actor(user="ana", site="chicago")
REVIEWER = Actor(user="rex", site="boston")
AUDITOR = Actor(user="audrey", site="nyc")


def ticking_clock(start: int = 0):
    ticks = count(start)
    return lambda: f"2026-01-01T00:{next(ticks) // 60 % 60:02d}:{next(ticks) % 60:02d}.000000Z"


def memory_service(clock=None) -> HistoLabel:
    kwargs = {"clock": clock} if clock else {}
    return HistoLabel(Settings(stage="unit"), InMemoryEventStore(), InMemoryProjectionStore(), **kwargs)


def seeded_project(svc: HistoLabel, project_id: str = "proj", superpixels: int = 5000) -> list[str]:
    svc.execute(CreateProject(project_id=project_id, name="Demo"), OWNER)
    svc.execute(
        AddMember(project_id=project_id, user=ANNOTATOR.user, role="annotator", site=ANNOTATOR.site), OWNER
    )
    svc.execute(
        AddMember(project_id=project_id, user=REVIEWER.user, role="reviewer", site=REVIEWER.site), OWNER
    )
    svc.execute(AddMember(project_id=project_id, user=AUDITOR.user, role="auditor", site=AUDITOR.site), OWNER)
    cats = []
    for name in ("tumor", "stroma", "necrosis"):
        result = svc.execute(AddCategory(project_id=project_id, name=name), OWNER)
        cats.append(svc.project_state(project_id).categories[name].id)
        assert result.appended == 1
    svc.execute(
        RegisterSlide(
            project_id=project_id, slide_id="s1", name="slide 1", source_uri=_own_source(project_id, "s1")
        ),
        OWNER,
    )
    segmented(svc, project_id, "s1", superpixels)
    return cats


def _own_source(project_id: str, slide_id: str) -> str:
    """Where an upload of the slide lies (a source outside the project is refused at ingest)."""
    return f"s3://{get_settings().data_bucket}/projects/{project_id}/slides/{slide_id}/source/{slide_id}.svs"


def segmented(svc: HistoLabel, project_id: str, slide_id: str, n: int) -> None:
    svc.record_job_event(
        project_id,
        "SegmentationCompleted",
        {
            "slide_id": slide_id,
            "count": n,
            "labels_uri": f"s3://b/{slide_id}/labels",
            "table_uri": f"s3://b/{slide_id}/sp.parquet",
            "superpixel_size": 64,
            "compactness": 10,
        },
        job="segment",
    )
