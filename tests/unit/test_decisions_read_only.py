"""Decisions only read the project state: the service hands every writer in a process the one
cached state, uncopied (HistoLabel._cached_state), so a decide() that changed it would change
what every later command in the process decides on. Every command, accepted or refused, is
decided here against a state and the state must come out as it went in."""

from __future__ import annotations

import contextlib
import copy

import pytest

from histolabel import commands as c
from histolabel.commands import CommandRejected
from histolabel.events.catalogue import Actor
from tests.unit.helpers import ANNOTATOR, OWNER, REVIEWER, memory_service, seeded_project

P = "proj"


def _examples() -> list[tuple[c.Command, str]]:
    label = {"project_id": P, "slide_id": "s1", "ids": [1, 2, 3]}
    return [
        (c.CreateProject(project_id=P, name="again"), OWNER.user),
        (c.ChangeSettings(project_id=P, settings={"retrain_threshold": 7}), OWNER.user),
        (c.UpdateSettings(project_id=P, changes={"retrain_threshold": 7}), OWNER.user),
        (c.UpdateSettings(project_id=P, changes={"superpixel_size": 2}), OWNER.user),
        (c.AddMember(project_id=P, user="newbie", role="annotator", site="x"), OWNER.user),
        (c.AddMember(project_id=P, user=ANNOTATOR.user, role="annotator", site="x"), OWNER.user),
        (c.ChangeRole(project_id=P, user=ANNOTATOR.user, role="reviewer"), OWNER.user),
        (c.ChangeRole(project_id=P, user=OWNER.user, role="annotator"), OWNER.user),
        (c.RemoveMember(project_id=P, user=REVIEWER.user), OWNER.user),
        (c.AddCategory(project_id=P, name="fat", hotkey="9"), OWNER.user),
        (c.AddCategory(project_id=P, name="Tumor"), OWNER.user),
        (c.RenameCategory(project_id=P, category_id="tumor", name="tumour"), OWNER.user),
        (c.RecolorCategory(project_id=P, category_id="tumor", color="#123456"), OWNER.user),
        (c.SetHotkey(project_id=P, category_id="tumor", hotkey="8"), OWNER.user),
        (c.ExcludeCategory(project_id=P, category_id="stroma"), OWNER.user),
        (c.IncludeCategory(project_id=P, category_id="stroma"), OWNER.user),
        (c.MergeCategories(project_id=P, sources=["stroma"], target="tumor"), OWNER.user),
        (c.DeleteCategory(project_id=P, category_id="necrosis"), OWNER.user),
        (c.RegisterSlide(project_id=P, name="two", source_uri=f"s3://bucket/projects/{P}/s.svs"), OWNER.user),
        (c.RemoveSlide(project_id=P, slide_id="s1"), OWNER.user),
        (c.SelectModel(project_id=P, model_version=3), OWNER.user),
        (c.RecordJobSubmitted(project_id=P, job="segment", job_id="j-1", slide_id="s1"), OWNER.user),
        (c.LabelSuperpixels(**label, category_id="tumor"), ANNOTATOR.user),
        (c.LabelSuperpixels(**label, category_id="gone"), ANNOTATOR.user),
        (c.UnlabelSuperpixels(**label), ANNOTATOR.user),
        (c.ReviewLabels(**label, action="change", category_id="stroma"), REVIEWER.user),
        (c.ReviewLabels(**label, action="approve"), "stranger"),
        (c.RequestTraining(project_id=P), OWNER.user),
    ]


def _subclasses(cls: type) -> set[type]:
    return {s for sub in cls.__subclasses__() for s in {sub, *_subclasses(sub)}}


def test_every_command_has_an_example():
    commands = {k for k in _subclasses(c.Command) if not k.__name__.startswith("_")}
    assert commands == {type(cmd) for cmd, _user in _examples()}


@pytest.mark.parametrize(
    "cmd,user", _examples(), ids=lambda v: type(v).__name__ if isinstance(v, c.Command) else v
)
def test_deciding_leaves_the_state_as_it_was(cmd, user):
    svc = memory_service()
    seeded_project(svc, P)
    state = svc.project_state(P)
    before = copy.deepcopy(state.model_dump())
    try:
        cmd.authorize(state, user)
        cmd.decide(state, user, "nyc")
    except CommandRejected:
        pass
    assert state.model_dump() == before, f"{type(cmd).__name__} changed the state it decided on"
    # The same command executed through the service decides on the cached state itself.
    with contextlib.suppress(CommandRejected):
        svc.execute(cmd, Actor(user=user, site="nyc"))
    fresh = memory_service()
    fresh.events, fresh.projections = svc.events, svc.projections
    assert svc.project_state(P).model_dump() == fresh.project_state(P).model_dump()
