"""Routes: categories."""

from __future__ import annotations

from typing import Any

from chalicelib import views
from chalicelib.context import Call, Handler, fresh
from histolabel.api.views import category_out
from histolabel.commands import (
    AddCategory,
    CommandRejected,
    DeleteCategory,
    ExcludeCategory,
    IncludeCategory,
    MergeCategories,
    RecolorCategory,
    RenameCategory,
    SetHotkey,
)


def _category(c: Call, category_id: str) -> Any:
    return category_out(fresh(c).categories[category_id])


def _add_category(c: Call) -> Any:
    b = c.body
    pid = c.project.project_id
    before = set(c.project.categories)
    cmd = AddCategory(project_id=pid, name=b.name, color=b.color, hotkey=b.hotkey, category_id=b.category_id)
    c.svc.execute(cmd, c.actor)
    state = fresh(c)
    new = b.category_id or next(cid for cid in state.categories if cid not in before)
    return category_out(state.categories[new])


def _update_category(c: Call) -> Any:
    pid, cid, b = c.project.project_id, c.params["category_id"], c.body
    given = b.model_fields_set
    commands: list[Any] = []
    if "name" in given and b.name is not None:
        commands.append(RenameCategory(project_id=pid, category_id=cid, name=b.name))
    if "color" in given and b.color is not None:
        commands.append(RecolorCategory(project_id=pid, category_id=cid, color=b.color))
    if "hotkey" in given:
        commands.append(SetHotkey(project_id=pid, category_id=cid, hotkey=b.hotkey))
    if not commands:
        raise CommandRejected("invalid", "give at least one of name, color, hotkey")
    # Decide every change against the same state first, so a bad one writes none of them.
    for cmd in commands:
        cmd.authorize(c.project, c.user)
        cmd.decide(c.project, c.user, c.actor.site)
    for cmd in commands:
        c.svc.execute(cmd, c.actor)
    return _category(c, cid)


def _toggle(kind: type) -> Any:
    def handler(c: Call) -> Any:
        cid = c.params["category_id"]
        c.svc.execute(kind(project_id=c.project.project_id, category_id=cid), c.actor)
        return _category(c, cid)

    return handler


def _merge(c: Call) -> Any:
    b = c.body
    c.svc.execute(
        MergeCategories(project_id=c.project.project_id, sources=b.sources, target=b.target), c.actor
    )
    return _category(c, b.target)


def _delete_category(c: Call) -> Any:
    cid, pid = c.params["category_id"], c.project.project_id
    # The count recorded in the event is the labels currently shown in this category.
    cleared = sum(views.current_labels(c.svc, pid, s).counts.get(cid, 0) for s in c.project.slides)
    c.svc.execute(DeleteCategory(project_id=pid, category_id=cid, labels_cleared=cleared), c.actor)
    return {"deleted": cid, "labels_cleared": cleared}


HANDLERS: dict[str, Handler] = {
    "add_category": _add_category,
    "update_category": _update_category,
    "exclude_category": _toggle(ExcludeCategory),
    "include_category": _toggle(IncludeCategory),
    "merge_categories": _merge,
    "delete_category": _delete_category,
}
