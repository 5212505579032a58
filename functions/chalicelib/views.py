"""Route logic that needs the service or S3: current labels with no projection lag, brush
selections, predictions of the current model, review rows."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Hashable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import shapely

from chalicelib import data
from histolabel import confinement
from histolabel.api import queue, review_table
from histolabel.api.ranking import RANKING_FILE, RANKING_SIZE, QueueItem
from histolabel.api.review import Row, rows_for_slide
from histolabel.api.tables import Predictions
from histolabel.commands import CommandRejected
from histolabel.config import get_settings
from histolabel.events.envelope import label_stream, member_label_stream
from histolabel.events.streams import history_of, read_after
from histolabel.memo import Lru
from histolabel.projections.labels import Entry, SlideLabels, buckets_of, catch_up
from histolabel.projections.project import ProjectState
from histolabel.service import HistoLabel


def current_labels(svc: HistoLabel, project_id: str, slide_id: str) -> SlideLabels:
    """The projection caught up with the events it has not seen yet: cheap and never stale, so
    what a user has just answered is already in it."""
    return svc.slide_labels_current(project_id, slide_id)


def entries_for(
    svc: HistoLabel, project_id: str, wanted: Mapping[str, Iterable[int]], user: str
) -> dict[str, dict[int, Entry]]:
    """slide -> the current entries of the ids `wanted` there, for `user`'s queue: the label
    buckets they lie in (batched across slides), caught up with the events the projection has
    not folded yet on the streams it knows of and on the user's own (one batched check; a
    Query only for the streams that moved). A colleague's first label on a slide (a stream the
    projection has not seen yet) is seen once the projector folds it, its lag, which is far
    under a lease's life: a guided label's superpixel stays leased to its labeler meanwhile.
    Listing each slide's directory instead cost a Query per slide a page touches. The fold
    never reads an entry an event does not name, so this partial view is exact for the ids
    asked about up to those streams."""
    want = {sid: set(ids) for sid, ids in wanted.items()}
    if not want:
        return {}
    loaded = svc.projections.load_slides(project_id, {sid: buckets_of(ids) for sid, ids in want.items()})
    streams = {
        s: sid
        for sid, labels in loaded.items()
        for s in (label_stream(project_id, sid), member_label_stream(project_id, sid, user), *labels.heads)
    }
    moved = svc.events.streams_after({s: loaded[sid].cursor().get(s, 0) for s, sid in streams.items()})
    for sid in sorted({streams[s] for s in moved}):
        labels = loaded[sid]
        behind = [s for s in sorted(moved) if streams[s] == sid]
        catch_up(labels, read_after(svc.events, behind, labels.cursor()), history_of(svc.events))
    return {
        sid: {i: loaded[sid].entries[i] for i in ids if i in loaded[sid].entries} for sid, ids in want.items()
    }


def geometry(state: ProjectState, slide_id: str, ids: list[int]) -> dict[int, tuple[list[int], list[float]]]:
    """id -> (level-0 bbox, centroid) of the superpixels `ids` of one slide (those found), from
    the row groups of its table that hold them; {} where the table cannot be read (geometry is
    a convenience: the rows name the superpixels)."""
    try:
        seg = require_slide(state, slide_id, segmented=True)
        assert seg is not None
        table = data.superpixel_rows(own(state, seg["table_uri"]), seg.get("at", ""), ids)
    except (CommandRejected, OSError, ValueError):
        return {}
    rows = table.rows(np.asarray(ids, np.int64))
    return {
        sp: ([int(v) for v in table.bbox[r]], [float(v) for v in table.centroid[r]])
        for sp, r in zip(ids, rows.tolist(), strict=True)
        if r >= 0
    }


def ranking(state: ProjectState) -> list[Any] | None:
    """The merged ranking of the latest published predictions (None: none published, or
    published without one)."""
    pub = state.predictions
    if not pub:
        return None
    return data.ranking(own(state, f"{pub['uri_prefix'].rstrip('/')}/{RANKING_FILE}"))


FULL_ORDER_LIMIT = 5 * RANKING_SIZE  # how deep the all-slides order goes past an exhausted ranking
RUN = 64  # candidates judged together: one bucket read and one event read per slide they touch


def _runs(
    state: ProjectState, seg: dict[str, dict[str, Any]], excluded: set[str], model: list[bool]
) -> Iterator[list[QueueItem]]:
    """The queue's order in runs of candidates: the published ranking, then (past it, or for
    predictions published without one) the guided order over every slide's predictions; before
    any model the spread order. `model[0]` is set once predictions are the source."""
    pub = state.predictions
    if pub and set(pub["slides"]) & set(seg):
        ranked = ranking(state)
        if ranked is not None:
            model[0] = True
            items = [i for i in ranked if i.slide_id in seg and i.prediction not in excluded]
            for k in range(0, len(items), RUN):
                yield items[k : k + RUN]
        preds = model_predictions(state, sorted(seg))
        if preds:
            model[0] = True
            items = queue.uncertainty_queue(preds, {}, excluded, FULL_ORDER_LIMIT)
            for k in range(0, len(items), RUN):
                yield items[k : k + RUN]
            return
    yield from queue.spread_candidates(state.project_id, {s: int(v["count"]) for s, v in seg.items()})


def queue_candidates(
    svc: HistoLabel, state: ProjectState, user: str, room: int
) -> tuple[list[QueueItem], dict[str, dict[int, Entry]], bool]:
    """The first `room` superpixels of the queue's order not done for `user` (queue.is_done),
    their slides' entries as read, and whether a model's predictions ordered them. Only the
    candidates' label buckets are read, a run at a time: O(page), whatever the project's size."""
    seg = segmented_slides(state)
    overlap = state.settings.label_overlap
    # A prediction in a category merged into an excluded one counts as excluded too.
    excluded = {
        cid for cid in state.categories
        if (r := state.resolve(cid)) is None or state.categories[r].excluded
    }  # fmt: skip
    model = [False]
    out: list[QueueItem] = []
    entries: dict[str, dict[int, Entry]] = {}
    seen: set[tuple[str, int]] = set()
    batch: list[QueueItem] = []

    def judge() -> None:
        by_slide: dict[str, list[int]] = {}
        for item in batch:
            by_slide.setdefault(item.slide_id, []).append(item.id)
        for sid, found in entries_for(svc, state.project_id, by_slide, user).items():
            entries.setdefault(sid, {}).update(found)
        for item in batch:
            slots = queue.slots_for(state.project_id, item.slide_id, item.id, overlap)
            if not queue.is_done(entries[item.slide_id].get(item.id), slots, user):
                out.append(item)
        batch.clear()

    for run in _runs(state, seg, excluded, model):
        for item in run:
            if (item.slide_id, item.id) not in seen:
                seen.add((item.slide_id, item.id))
                batch.append(item)
        if len(batch) >= min(room - len(out), 4 * RUN):
            judge()
        if len(out) >= room:
            break
    judge()
    return out[:room], entries, model[0]


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


# Review and agreement over every slide read each slide's projection and predictions: at once,
# since each is a few round trips (a Query, a batched streams check, the predictions file).
SLIDE_READERS = ThreadPoolExecutor(16, thread_name_prefix="slide-read")


def _as_given(category: str | None) -> str | None:
    return category


def slides_table(svc: HistoLabel, state: ProjectState, slides: list[str]) -> pa.Table:
    """The review rows of `slides` as the labels were given (see `review_table.resolved`):
    current labels, and the published predictions of the labeled ones."""

    def rows(sid: str) -> list[Row]:
        labels = current_labels(svc, state.project_id, sid)
        preds = model_predictions(state, [sid]).get(sid) if labels.entries else None
        return rows_for_slide(labels, _as_given, preds.lookup(labels.entries) if preds else None)

    parts = SLIDE_READERS.map(rows, slides) if len(slides) > 1 else map(rows, slides)
    return review_table.from_rows(row for part in parts for row in part)


SNAPSHOT_AFTER = 16  # slides whose labels moved past the stored snapshot before it is written anew


def review_snapshot_key(project_id: str) -> str:
    """The project's review snapshot: a manifest naming the object that holds each slide's rows.
    Storing it anew writes the slides that moved as one object, and a reader fetches only the
    objects holding slides it lacks."""
    return f"projects/{project_id}/review/snapshot.json"


def _part_object(project_id: str) -> str:
    # Unique per write: two containers storing one slide at one mark may hold different rows
    # (a read at a mark may include labels after it), and what is kept is named by this key.
    return f"projects/{project_id}/review/parts/{uuid.uuid4().hex}.parquet"


def _made_for(state: ProjectState) -> dict[str, str]:
    """What a snapshot holds besides labels: the project (a project made again under the same id
    must not read the old one's) and the predictions round its rows carry."""
    pub = state.predictions
    return {
        "project": f"{state.project_id}|{state.created_at}",
        "predictions": f"{pub['uri_prefix']}|{pub['model_version']}" if pub else "",
    }


def _categories_key(state: ProjectState) -> str:
    return json.dumps({c.id: [c.merged_into, c.deleted] for c in state.categories.values()}, sort_keys=True)


Part = tuple[Hashable | None, pa.Table]  # a slide's review rows and the key naming them


class Working(NamedTuple):
    """A container's own copy of a project's review rows, a table per slide: the stored snapshot
    it started from (`etag`; the marks it covers, `stored`; the object holding each slide's rows,
    `objects`, and each object's rows, `sizes`) with the slides it has read fresh since put in,
    `covered` the mark each slide's rows are current at. `token` names this copy's content."""

    parts: dict[str, Part]
    made_for: dict[str, str]
    covered: dict[str, int]
    etag: str
    stored: dict[str, int]
    token: str
    objects: dict[str, str]
    sizes: dict[str, int]


_WORKING: Lru[Working] = Lru(8)  # per project: what the next request starts from
_TOKENS = itertools.count(1)
WASTE = 2  # rows the snapshot's objects may hold per row still named: beyond, one object anew


def _working(key: str, made_for: dict[str, str]) -> Working | None:
    """The container's copy if it still starts from the stored snapshot, else one made from that
    snapshot (None when there is none for this project and predictions round). A snapshot
    another container stored since brings the slides it holds newer than the copy (the objects
    holding them fetched); the copy's slides at least as new keep their rows and key, so what is
    kept under them (orders, pages, agreement tallies) still serves: a colleague's snapshot
    costs the slides it moved. A slide whose object is gone (a newer snapshot replaced it) is
    read fresh."""
    manifest = data.review_manifest(key)
    if manifest is None or any(manifest.meta.get(k) != v for k, v in made_for.items()):
        return None
    work = _WORKING.get(key)
    if work is not None and work.etag == manifest.etag and work.made_for == made_for:
        return work
    mine = work if work is not None and work.made_for == made_for else None
    stored = {s: int(m) for s, m in manifest.meta.get("covered", {}).items()}
    objects = {s: str(o) for s, o in manifest.meta.get("parts", {}).items()}
    sizes = {str(o): int(n) for o, n in manifest.meta.get("sizes", {}).items()}
    parts: dict[str, Part] = {}
    covered = dict(stored)
    fetch: dict[str, list[str]] = {}  # object -> the slides wanted from it
    kept = False
    for s in sorted(set(objects) | set(mine.covered if mine else ())):
        # Marks only grow: a slide's rows read at a mark hold every label counted by then.
        if mine is not None and s in mine.covered and mine.covered[s] >= stored.get(s, 0):
            covered[s], kept = mine.covered[s], True
            if s in mine.parts:
                parts[s] = mine.parts[s]
        elif s in objects:
            fetch.setdefault(objects[s], []).append(s)
    read = SLIDE_READERS.map(data.review_part, fetch)
    for obj, table in zip(fetch, read, strict=True):
        held = review_table.by_slide(table) if table is not None else {}
        for s in fetch[obj]:
            if s in held:
                parts[s] = ((obj, s), held[s])
            else:
                covered[s] = -1  # never a mark: the next read takes it fresh
    # The token names the content: rows kept from the copy are not the snapshot's own.
    token = f"{manifest.etag}+{next(_TOKENS)}" if kept else manifest.etag
    return Working(parts, made_for, covered, manifest.etag, stored, token, objects, sizes)


def _store(key: str, project_id: str, work: Working, moved: list[str]) -> Working:
    """The snapshot stored anew: the moved slides' rows as one new object (every slide's, when
    the objects still named would hold over WASTE rows per row they are named for), then the
    manifest, then the objects the manifest it replaced named and this one does not."""
    before = data.review_manifest(key)
    objects = {s: o for s, o in work.objects.items() if s not in moved and s in work.parts}
    named = sum(work.parts[s][1].num_rows for s in objects)
    held = sum(work.sizes.get(o, 0) for o in set(objects.values()))
    if held > WASTE * named:
        objects = {}
    writes = sorted(s for s in work.parts if s not in objects)
    sizes = {o: work.sizes[o] for o in set(objects.values()) if o in work.sizes}
    if writes:
        obj = _part_object(project_id)
        table = pa.concat_tables([work.parts[s][1] for s in writes])
        data.put_review_part(obj, table)
        objects |= {s: obj for s in writes}
        sizes[obj] = table.num_rows
    meta = {**work.made_for, "covered": work.covered, "parts": objects, "sizes": sizes}
    etag = data.put_review_manifest(key, meta)
    gone = sorted({o for o in (before.meta.get("parts", {}).values() if before else ()) if o not in sizes})
    data.delete_review_parts(gone)
    return work._replace(etag=etag, stored=dict(work.covered), objects=objects, sizes=sizes, token=etag)


def _read(svc: HistoLabel, state: ProjectState, slides: list[str]) -> dict[str, Part]:
    token, table = next(_TOKENS), slides_table(svc, state, slides)
    return {s: (("fresh", token, s), t) for s, t in review_table.by_slide(table).items()}


def review_rows_table(svc: HistoLabel, state: ProjectState, slide: str | None = None) -> review_table.Rows:
    """The review rows of one slide, or of every slide, a table per slide: the project's snapshot
    (parts in the data bucket, named by a manifest), as this container last brought it up to
    date, with the slides labeled since read fresh, found by one Query of the label marks. So a
    request reads the slides labeled since this container's last review, not since the snapshot
    was stored, and a slide's rows keep their key (and the orders kept under it) until it is
    labeled. A request over every slide stores the snapshot anew (`_store`) when SNAPSHOT_AFTER
    slides moved past the stored one, or when there is none for this project and predictions
    round. The rows' version (the copy's token, the slides, the categories) names them all at
    once."""
    slides = [slide] if slide else sorted(state.slides)
    pub = state.predictions or {"slides": []}
    for sid in slides:  # refused if any names another project's object, read or not
        if sid in pub["slides"]:
            own(state, data.prediction_uri(pub["uri_prefix"], sid))
    marks = svc.projections.label_marks(state.project_id)  # before the reads: a safe lower bound
    key = review_snapshot_key(state.project_id)
    made_for = _made_for(state)
    categories = _categories_key(state)
    work = _working(key, made_for)
    if work is None and slide is not None:
        # Without a snapshot no copy is started from one slide: the slides it did not read could
        # hold labels given before marks were counted.
        alone = {s: (None, t) for s, t in review_table.by_slide(slides_table(svc, state, slides)).items()}
        return review_table.Rows(alone, state.resolve, categories)
    if work is None:
        covered = {s: marks.get(s, 0) for s in slides}
        work = Working(_read(svc, state, slides), made_for, covered, "", {}, "", {}, {})
    else:
        fresh = [s for s in slides if marks.get(s, 0) != work.covered.get(s, 0)]
        if fresh:
            # The copy keeps every slide's rows; only the ones read anew are replaced.
            keep = set(work.parts) - set(fresh) if slide else set(slides) - set(fresh)
            parts = {s: p for s, p in work.parts.items() if s in keep} | _read(svc, state, fresh)
            now = {s: marks.get(s, 0) for s in fresh}
            covered = work.covered | now if slide else {s: now.get(s, work.covered.get(s, 0)) for s in slides}
            work = work._replace(parts=parts, covered=covered, token=f"{work.etag}+{next(_TOKENS)}")
    moved = [s for s in slides if work.covered.get(s, 0) != work.stored.get(s, 0)]
    if slide is None and (not work.etag or len(moved) >= SNAPSHOT_AFTER):
        work = _store(key, state.project_id, work, moved)
    _WORKING.put(key, work)
    parts = {s: work.parts[s] for s in slides if s in work.parts}
    return review_table.Rows(parts, state.resolve, categories, (work.token, tuple(slides), categories))


def query_table(c: Any) -> review_table.Rows:
    """The review rows of the query's slide (all slides when it names none), a table per slide
    (see `review_rows_table`)."""
    if c.query.slide is not None:
        require_slide(c.project, c.query.slide)
    return review_rows_table(c.svc, c.project, c.query.slide)


def query_rows(c: Any) -> list[Row]:
    return review_table.to_rows(review_table.whole(query_table(c)))
