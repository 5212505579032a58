from __future__ import annotations

import pytest

from histolabel.commands import AddCategory, AddMember, CreateProject, RegisterSlide
from histolabel.composition import service_from_env
from histolabel.events.catalogue import Actor
from histolabel.localcloud.poller import StreamPoller
from histolabel.runtime.projector_lambda import ProjectorRuntime
from histolabel.service import HistoLabel

OWNER = Actor(user="olivia", site="nyc")
ANNOTATOR = Actor(user="ana", site="chicago")


@pytest.fixture
def svc(cloud) -> HistoLabel:
    return service_from_env(cloud)


@pytest.fixture
def poller(cloud, svc):
    """A stream poller feeding the projector runtime; starts at the stream's current end."""
    runtime = ProjectorRuntime(svc)
    return StreamPoller(cloud, runtime.handle, start_at="LATEST")


def make_project(
    svc: HistoLabel, project_id: str, slides=("s1",), superpixels=20_000, threshold=1000
) -> None:
    from histolabel.events.catalogue import ProjectSettings

    svc.execute(
        CreateProject(
            project_id=project_id, name="IT", settings=ProjectSettings(retrain_threshold=threshold)
        ),
        OWNER,
    )
    svc.execute(
        AddMember(project_id=project_id, user=ANNOTATOR.user, role="annotator", site=ANNOTATOR.site), OWNER
    )
    for name in ("tumor", "stroma"):
        svc.execute(AddCategory(project_id=project_id, name=name), OWNER)
    for slide in slides:
        svc.execute(
            RegisterSlide(
                project_id=project_id, slide_id=slide, name=slide, source_uri=f"s3://bucket-x/{slide}.svs"
            ),
            OWNER,
        )
        svc.record_job_event(
            project_id,
            "SegmentationCompleted",
            {"slide_id": slide, "count": superpixels, "labels_uri": "s3://b/l", "table_uri": "s3://b/t",
             "superpixel_size": 64, "compactness": 10},
            job="segment",
        )  # fmt: skip
