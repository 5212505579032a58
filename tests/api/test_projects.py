"""GET /projects: the caller's projects, from the projection store's membership items (one per
member and project), the role confirmed from the project stream."""

from __future__ import annotations

from histolabel.commands import (
    AddCategory,
    AddMember,
    ChangeRole,
    CreateProject,
    LabelSuperpixels,
    RegisterSlide,
    RemoveMember,
)
from histolabel.composition import service_from_env
from histolabel.events.catalogue import Actor
from histolabel.events.envelope import project_stream
from histolabel.events.streams import slide_events
from histolabel.projections.projector import Projector
from histolabel.projections.store import Membership
from histolabel.service import HistoLabel
from tests.unit.helpers import OWNER, segmented


def project_all(svc: HistoLabel, project_ids: list[str], slides: dict[str, list[str]] | None = None) -> None:
    """Run the projector over the given streams, as the stream consumer would."""
    projector = Projector(svc.projections, svc.events)
    for pid in project_ids:
        projector.handle_all(svc.events.read(project_stream(pid)))
        for sid in (slides or {}).get(pid, []):
            projector.handle_all(slide_events(svc.events, pid, sid))


def test_each_user_sees_their_projects_with_their_role(api):
    oscar = Actor(user="oscar", site="oslo")
    api.svc.execute(CreateProject(project_id="other", name="Other"), oscar)
    api.svc.execute(AddMember(project_id="other", user="ana", role="reviewer", site="chicago"), oscar)
    project_all(api.svc, ["proj", "other"])
    mine = api.request("GET", "/projects", user="ana").json_body["projects"]
    assert mine == [
        {"project_id": "other", "name": "Other", "role": "reviewer"},
        {"project_id": "proj", "name": "Demo", "role": "annotator"},
    ]
    assert api.request("GET", "/projects", user="oscar").json_body["projects"] == [
        {"project_id": "other", "name": "Other", "role": "owner"}
    ]
    assert api.request("GET", "/projects", user="zed").json_body == {"projects": []}
    assert api.request("GET", "/projects").status_code == 401


def test_a_removed_member_no_longer_sees_the_project(api):
    project_all(api.svc, ["proj"])
    assert [
        p["project_id"] for p in api.request("GET", "/projects", user="audrey").json_body["projects"]
    ] == ["proj"]
    assert api.request("DELETE", "/projects/proj/members/audrey", user="olivia").status_code == 200
    # The projection has not caught up yet; the role is read from the project's events.
    assert api.request("GET", "/projects", user="audrey").json_body["projects"] == []


def test_dynamo_store_lists_project_states_only(cloud, project_id):
    svc = service_from_env(cloud)
    other = f"{project_id}-b"
    for pid in (project_id, other):
        svc.execute(CreateProject(project_id=pid, name=f"name {pid}"), OWNER)
    svc.execute(
        RegisterSlide(project_id=project_id, slide_id="s1", name="s", source_uri="s3://bucket-x/y.svs"), OWNER
    )
    segmented(svc, project_id, "s1", 100)
    svc.execute(AddCategory(project_id=project_id, name="tumor"), OWNER)
    label = LabelSuperpixels(
        project_id=project_id, slide_id="s1", ids=[1, 2], category_id="tumor", source="click"
    )
    svc.execute(label, OWNER)
    project_all(svc, [project_id, other], {project_id: ["s1"]})
    listed = {s.project_id: s for s in svc.projections.list_projects()}
    assert {project_id, other} <= set(listed)
    assert listed[other].name == f"name {other}" and listed[project_id].role_of(OWNER.user) == "owner"
    # The list holds each project's head; its slides are items of its own partition.
    assert listed[project_id].slides == {} and "s1" in svc.projections.load_project(project_id).slides
    assert svc.projections.load_slide(project_id, "s1").counts == {"tumor": 2}  # label items were there too


def test_dynamo_store_lists_a_members_projects_from_their_own_items(cloud, project_id):
    """What GET /projects reads: the member's items follow the project stream through the
    projector (joined, role changed, removed)."""
    svc = service_from_env(cloud)
    other = f"{project_id}-b"
    for pid in (project_id, other):
        svc.execute(CreateProject(project_id=pid, name=f"name {pid}"), OWNER)
    ana = f"ana-{project_id}"
    svc.execute(AddMember(project_id=project_id, user=ana, role="annotator", site="nyc"), OWNER)
    svc.execute(AddMember(project_id=other, user=ana, role="reviewer", site="nyc"), OWNER)
    project_all(svc, [project_id, other])
    assert svc.projections.projects_of(ana) == [
        Membership(project_id, f"name {project_id}", "annotator"),
        Membership(other, f"name {other}", "reviewer"),
    ]
    svc.execute(ChangeRole(project_id=project_id, user=ana, role="reviewer"), OWNER)
    svc.execute(RemoveMember(project_id=other, user=ana), OWNER)
    project_all(svc, [project_id, other])
    assert svc.projections.projects_of(ana) == [Membership(project_id, f"name {project_id}", "reviewer")]


def test_a_batch_adding_a_hundred_members_is_projected_in_transactions_that_fit(cloud, project_id):
    """Each added member is a membership item: the runtime's path (a stream batch of one
    project's events, up to 100) saves every few events, not the batch in one transaction."""
    svc = service_from_env(cloud)
    svc.execute(CreateProject(project_id=project_id, name="big"), OWNER)
    team = [f"m{n:03d}-{project_id}" for n in range(100)]
    for user in team:
        svc.execute(AddMember(project_id=project_id, user=user, role="annotator", site="nyc"), OWNER)
    batch = list(svc.events.read(project_stream(project_id)))
    Projector(svc.projections, svc.events).handle_stream(batch)
    assert len(svc.projections.load_project(project_id).members) == 101
    assert svc.projections.projects_of(team[-1]) == [Membership(project_id, "big", "annotator")]
