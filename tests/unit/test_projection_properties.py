"""Any duplication, re-delivery or interleaving of stream records projects to the same state
as one in-order fold of each stream (a slide's member label streams together, in fold order),
and that fold is the single-stream fold of before."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from histolabel.adapters.memory import InMemoryProjectionStore
from histolabel.commands import (
    AddCategory,
    CommandRejected,
    DeleteCategory,
    ExcludeCategory,
    LabelSuperpixels,
    MergeCategories,
    RegisterSlide,
    ReviewLabels,
    UnlabelSuperpixels,
)
from histolabel.events.envelope import StoredEvent, label_stream, slide_of
from histolabel.projections.labels import fold_labels
from histolabel.projections.project import fold_project
from histolabel.projections.projector import Projector
from tests.unit.helpers import ANNOTATOR, OWNER, REVIEWER, memory_service, seeded_project, segmented

ids_st = st.lists(st.integers(min_value=1, max_value=600), min_size=1, max_size=40, unique=True)
slide_st = st.sampled_from(["s1", "s2"])
writer_st = st.sampled_from([OWNER, ANNOTATOR])
reviewer_st = st.just(REVIEWER)
actions_st = st.sampled_from(["approve", "clear", "change"])
cats_st = st.sampled_from(["tumor", "stroma", "necrosis"])
command_st = st.one_of(
    st.tuples(st.just("label"), slide_st, ids_st, cats_st, writer_st),
    st.tuples(st.just("unlabel"), slide_st, ids_st, st.just(None), writer_st),
    st.tuples(st.just("review"), slide_st, ids_st, actions_st, reviewer_st),
    st.tuples(st.just("merge"), st.just(""), st.just([]), st.just(None), st.just(OWNER)),
    st.tuples(st.just("exclude"), st.just(""), st.just([]), st.just(None), st.just(OWNER)),
    st.tuples(st.just("delete"), st.just(""), st.just([]), st.just(None), st.just(OWNER)),
)  # fmt: skip


def build_history(commands) -> tuple[object, list[StoredEvent]]:
    svc = memory_service()
    seeded_project(svc, superpixels=600)
    svc.execute(
        RegisterSlide(project_id="proj", slide_id="s2", name="two", source_uri="s3://bucket-x/s2.svs"), OWNER
    )
    segmented(svc, "proj", "s2", 600)
    extra = 0
    for kind, slide, ids, arg, actor in commands:
        try:
            if kind == "label":
                svc.execute(
                    LabelSuperpixels(project_id="proj", slide_id=slide, ids=ids, category_id=arg), actor
                )
            elif kind == "unlabel":
                svc.execute(UnlabelSuperpixels(project_id="proj", slide_id=slide, ids=ids), actor)
            elif kind == "review":
                cat = "stroma" if arg == "change" else None
                svc.execute(
                    ReviewLabels(project_id="proj", slide_id=slide, ids=ids, action=arg, category_id=cat),
                    actor,
                )
            elif kind == "merge":
                extra += 1
                svc.execute(AddCategory(project_id="proj", name=f"extra{extra}"), OWNER)
                svc.execute(
                    MergeCategories(project_id="proj", sources=["necrosis"], target=f"extra{extra}"), OWNER
                )
            elif kind == "exclude":
                svc.execute(ExcludeCategory(project_id="proj", category_id="tumor"), OWNER)
            elif kind == "delete":
                svc.execute(DeleteCategory(project_id="proj", category_id="stroma", labels_cleared=1), OWNER)
        except CommandRejected:
            pass  # e.g. a category merged or deleted earlier: the command is refused, as it should be
    events = [e for stream in svc.events.streams.values() for e in stream.values()]
    return svc, events


def expected_state(svc, events):
    project = fold_project(sorted((e for e in events if e.stream == "P#proj"), key=lambda e: e.seq))
    slides = {}
    for slide in ("s1", "s2"):
        mine = [e for e in events if e.stream.startswith("L#") and slide_of(e.stream) == slide]
        slides[slide] = fold_labels("proj", slide, mine)
    return project, slides


def projected(store: InMemoryProjectionStore):
    project = store.load_project("proj")
    slides = {s: store.load_slide("proj", s) for s in ("s1", "s2")}
    return project, slides


def same(a, b) -> bool:
    (pa, sa), (pb, sb) = a, b
    if pa.model_dump() != pb.model_dump():
        return False
    return all(sa[s].entries == sb[s].entries and sa[s].summary() == sb[s].summary() for s in sa)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands=st.lists(command_st, min_size=1, max_size=25), data=st.data())
def test_any_delivery_order_with_duplicates_equals_in_order_fold(commands, data):
    svc, events = build_history(commands)
    # At-least-once: every event delivered once or more, in any order, in batches.
    deliveries = events + data.draw(st.lists(st.sampled_from(events), max_size=len(events)))
    order = data.draw(st.permutations(deliveries))
    store = InMemoryProjectionStore()
    projector = Projector(store, svc.events)
    batch_size = data.draw(st.integers(min_value=1, max_value=10))
    for start in range(0, len(order), batch_size):
        projector.handle_all(order[start : start + batch_size])
    assert same(projected(store), expected_state(svc, events))
    assert store.labels_total("proj") == sum(s.label_actions for s in expected_state(svc, events)[1].values())


@settings(max_examples=30, deadline=None)
@given(commands=st.lists(command_st, min_size=1, max_size=15), data=st.data())
def test_redelivering_a_whole_batch_changes_nothing(commands, data):
    svc, events = build_history(commands)
    store = InMemoryProjectionStore()
    projector = Projector(store, svc.events)
    projector.handle_all(events)
    snapshot = projected(store)
    total = store.labels_total("proj")
    projector.handle_all(data.draw(st.permutations(events)))
    assert same(projected(store), snapshot)
    assert store.labels_total("proj") == total


def test_labels_resolve_merges_and_deletions_at_read_time():
    svc, _events = build_history(
        [
            ("label", "s1", [1, 2], "necrosis", ANNOTATOR),
            ("merge", "", [], None, OWNER),
            ("label", "s1", [3], "stroma", ANNOTATOR),
            ("delete", "", [], None, OWNER),
        ]
    )
    labels = svc.training_labels("proj")
    assert labels == {"s1": {1: "extra1", 2: "extra1"}}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands=st.lists(command_st, min_size=1, max_size=25), data=st.data())
def test_batches_applied_a_stream_at_a_time_equal_the_in_order_fold(commands, data):
    """The runtime's path: each batch grouped by stream (a slide's label streams together), every
    group's run written at once."""
    from collections import defaultdict

    svc, events = build_history(commands)
    deliveries = events + data.draw(st.lists(st.sampled_from(events), max_size=len(events)))
    order = data.draw(st.permutations(deliveries))
    store = InMemoryProjectionStore()
    projector = Projector(store, svc.events)
    batch_size = data.draw(st.integers(min_value=1, max_value=40))
    for start in range(0, len(order), batch_size):
        by_stream = defaultdict(list)
        for e in order[start : start + batch_size]:
            group = e.stream if e.stream.startswith("P#") else f"L#proj#{slide_of(e.stream)}"
            by_stream[group].append(e)
        for stream_events in by_stream.values():
            projector.handle_stream(stream_events)
    assert same(projected(store), expected_state(svc, events))
    assert store.labels_total("proj") == sum(s.label_actions for s in expected_state(svc, events)[1].values())


def _shown(state):
    entries = {sp: {k: v for k, v in e.items() if k != "k"} for sp, e in state.entries.items()}
    return entries, state.counts, state.user_counts, state.review_counts, state.label_actions


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands=st.lists(command_st, min_size=1, max_size=25))
def test_member_streams_fold_to_the_single_stream_fold_of_before(commands):
    """The same label events written to one stream per (slide, member) and, as before, all to
    the slide's own stream in the order they were written: the same labels, per-user labels,
    reviews and counts."""
    _svc, events = build_history(commands)
    for slide in ("s1", "s2"):
        mine = [e for e in events if e.stream.startswith("L#") and slide_of(e.stream) == slide]
        # The order the writers wrote them in: the clock, then the command's own order.
        written = sorted(mine, key=lambda e: (e.at, e.stream, e.seq))
        one_stream = [
            StoredEvent(**{**e.as_dict(), "stream": label_stream("proj", slide), "seq": n})
            for n, e in enumerate(written, start=1)
        ]
        before = fold_labels("proj", slide, one_stream)
        now = fold_labels("proj", slide, mine)
        assert _shown(now) == _shown(before)
        assert now.current() == before.current()
        assert now.seq == before.seq == len(mine)


def test_a_label_arriving_behind_a_colleagues_later_one_is_refolded_in_fold_order():
    """Two members label one superpixel; the projector sees the later label first. The earlier
    one must not win just by arriving last."""
    svc, events = build_history(
        [
            ("label", "s1", [7, 8], "tumor", ANNOTATOR),
            ("label", "s1", [7], "stroma", OWNER),
            ("unlabel", "s1", [8], None, ANNOTATOR),
        ]
    )
    labels = [e for e in events if e.stream.startswith("L#")]
    assert len({e.stream for e in labels}) == 2  # one stream per member
    store = InMemoryProjectionStore()
    projector = Projector(store, svc.events)
    projector.handle_all([e for e in events if e.stream.startswith("P#")])
    owner_first = sorted(labels, key=lambda e: e.actor_user != OWNER.user)
    for e in owner_first:
        projector.handle_stream([e])
    slide = store.load_slide("proj", "s1")
    assert slide.current() == {7: "stroma"}
    assert slide.entries[7]["l"] == fold_labels("proj", "s1", labels).entries[7]["l"]
    assert same(projected(store), expected_state(svc, events))


def test_a_slide_labeled_before_member_streams_reads_on_and_takes_new_labels():
    """Data written before streams were per member (all of a slide's label events in its own
    stream) still folds, projects and takes new labels on the members' streams."""
    svc, events = build_history(
        [
            ("label", "s1", [1, 2, 3], "tumor", ANNOTATOR),
            ("label", "s1", [2], "stroma", OWNER),
            ("review", "s1", [3], "clear", REVIEWER),
        ]
    )
    legacy = label_stream("proj", "s1")
    written = sorted((e for e in events if e.stream.startswith("L#")), key=lambda e: (e.at, e.stream, e.seq))
    svc.events.streams = {s: ev for s, ev in svc.events.streams.items() if not s.startswith("L#")}
    svc.events.directories.clear()
    svc._heads.clear()  # this process appended to the member streams just dropped
    prev = "0" * 64
    for n, e in enumerate(written, start=1):  # the old shape: one chained stream per slide
        old = StoredEvent(
            **{**e.as_dict(), "stream": legacy, "seq": n, "prev_hash": prev, "hash": ""}
        ).sealed()
        svc.events.streams.setdefault(legacy, {})[n] = old
        prev = old.hash
    before = svc.slide_labels_fresh("proj", "s1")
    assert before.current() == {1: "tumor", 2: "stroma"} and before.heads == {
        legacy: [3, prev, written[-1].at]
    }
    store = InMemoryProjectionStore()
    Projector(store, svc.events).handle_all(e for ev in svc.events.streams.values() for e in ev.values())
    svc.execute(LabelSuperpixels(project_id="proj", slide_id="s1", ids=[1], category_id="stroma"), OWNER)
    after = svc.slide_labels_fresh("proj", "s1")
    assert after.current() == {1: "stroma", 2: "stroma"} and after.seq == 4
    assert set(after.heads) == {legacy, f"{legacy}#{OWNER.user}"}
    projector = Projector(store, svc.events)
    projector.handle_all(svc.events.read(f"{legacy}#{OWNER.user}"))
    assert _shown(store.load_slide("proj", "s1")) == _shown(after)
