"""The demo project `histolabel local up` loads, made through the CLI's own commands (slides add,
segment, embed, train) and the service, as a user would."""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from histolabel.adapters import pyramids
from histolabel.audit.replay import Cutoff, replay
from histolabel.cli.learning import embed as run_embed
from histolabel.cli.learning import train as run_train
from histolabel.cli.segment import segment_slide
from histolabel.cli.slides import add_slide
from histolabel.commands import AddCategory, AddMember, CreateProject, LabelSuperpixels, ReviewLabels
from histolabel.composition import service_from_env
from histolabel.events.catalogue import Actor, LabelSource, ProjectSettings
from histolabel.localcloud.seed import RULE_CATEGORIES, rule, stains
from histolabel.localcloud.up import DEMO_SITES, DEMO_SLIDE, DEMO_USERS, LocalStackError


def load_demo(out: Any, project_id: str = "demo", seeds: int = 300, overlap: int = 60) -> None:
    """A demo project that has been round the loop once: members, categories, the demo slide
    ingested, segmented and embedded, `seeds` superpixels labeled by three annotators from the
    stain rule of histolabel/localcloud/seed.py (`overlap` of them by two, for agreement), a
    trained model with its predictions (so the guided queue ranks by certainty), a few reviews;
    then the replay of where they stand."""
    svc = service_from_env()
    owner = Actor(user="olivia", site=DEMO_SITES["olivia"])
    print(f"loading the demo project {project_id!r} ...", file=out, flush=True)
    settings = ProjectSettings(superpixel_size=32, magnification=20, retrain_threshold=500)
    svc.execute(
        CreateProject(project_id=project_id, name="Demo: CMU-1 small region", settings=settings), owner
    )
    for user, role in DEMO_USERS.items():
        if role != "owner":
            svc.execute(AddMember(project_id=project_id, user=user, role=role, site=DEMO_SITES[user]), owner)
    for name in RULE_CATEGORIES:
        svc.execute(AddCategory(project_id=project_id, name=name), owner)
    common = {"project": project_id, "user": "olivia", "site": "nyc", "progress": "off"}
    if add_slide(argparse.Namespace(path=DEMO_SLIDE, slide="cmu1", name=DEMO_SLIDE.name, **common)) != 0:
        raise LocalStackError("the demo slide did not ingest")
    seg_args = argparse.Namespace(project=project_id, slide="cmu1", superpixel_size=None, unit="px",
                                  magnification=None, compactness=None, workers=0, wait=True)  # fmt: skip
    with open(os.devnull, "w") as quiet:
        stdout, sys.stdout = sys.stdout, quiet
        try:
            if segment_slide(seg_args) != 0:
                raise LocalStackError("the demo slide did not segment")
            embed = argparse.Namespace(project=project_id, slide=["cmu1"], kind=None, weights=None, wait=True)
            if run_embed(embed) != 0:
                raise LocalStackError("the demo slide's features were not computed (embed job failed)")
        finally:
            sys.stdout = stdout
    state = svc.project_state(project_id)
    print(f"  segmented and embedded: {state.slides['cmu1'].segmentation['count']} superpixels",  # type: ignore[index]
          file=out, flush=True)  # fmt: skip
    stained = slide_stains(state.slides["cmu1"].segmentation)  # type: ignore[arg-type]
    category, second = rule(stained), rule(stained, median_q=0.45, top_q=0.85)
    by_name = {c.name: c.id for c in state.live_categories()}
    rng = random.Random(7)
    picked = rng.sample(range(len(stained.ids)), min(seeds, len(stained.ids)))
    annotators = [Actor(user=u, site=DEMO_SITES[u]) for u in ("ana", "ben", "olivia")]
    # Events of 1-6 superpixels of one category each, as clicks and short brush strokes come.
    plans: list[tuple[Actor, list[int], str]] = []
    for k, idx in enumerate(picked):
        sp = int(stained.ids[idx])
        plans.append((annotators[k % 3], [sp], by_name[RULE_CATEGORIES[category[idx]]]))
        if k < overlap:
            plans.append((annotators[(k + 1) % 3], [sp], by_name[RULE_CATEGORIES[second[idx]]]))
    events: dict[tuple[str, str], list[int]] = {}
    batched: list[tuple[Actor, list[int], str]] = []
    for actor, ids, cid in plans:
        bucket = events.setdefault((actor.user, cid), [])
        bucket.extend(ids)
        if len(bucket) >= rng.choice((1, 1, 2, 3, 6)):
            batched.append((actor, list(bucket), cid))
            bucket.clear()
    actors = {a.user: a for a in annotators}
    batched += [(actors[u], ids, cid) for (u, cid), ids in events.items() if ids]

    def label(i: int) -> None:
        actor, ids, cid = batched[i]
        source: LabelSource = "click" if len(ids) == 1 else "brush"
        svc.execute(LabelSuperpixels(project_id=project_id, slide_id="cmu1", ids=ids, category_id=cid,
                                     source=source), actor, idempotency_key=f"demo-{i}")  # fmt: skip

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(label, range(len(batched))))
    reviewed = sorted(svc.slide_labels_fresh(project_id, "cmu1").current())[:50]
    svc.execute(ReviewLabels(project_id=project_id, slide_id="cmu1", ids=reviewed, action="approve"),
                Actor(user="rex", site="boston"))  # fmt: skip
    print(f"  {len(picked)} superpixels labeled by the stain rule; training ...", file=out, flush=True)
    train = argparse.Namespace(project=project_id, wait=True, user="olivia", site="nyc", no_predict=False)
    with open(os.devnull, "w") as quiet:
        stdout, sys.stdout = sys.stdout, quiet
        try:
            trained = run_train(train)
        finally:
            sys.stdout = stdout
    if trained != 0:
        raise LocalStackError("the demo model did not train (see the train job's log)")
    model = svc.project_state(project_id).current_model or {}
    m = model.get("metrics") or {}
    trained_text = (
        f"  model v{model.get('model_version')} trained: accuracy {m.get('accuracy', 0):.2f}, "
        f"macro F1 {m.get('macro_f1', 0):.2f} on {m.get('n_val')} held out; predictions published"
    )
    print(trained_text, file=out)
    print_replay_summary(svc, project_id, out)


def slide_stains(segmentation: dict[str, Any]) -> Any:
    """Stain means of every superpixel of a segmented slide, read from its pyramids on S3: the
    finest label level and the image level it was cut from."""
    labels_group = pyramids.open_group(segmentation["labels_uri"], "r")
    attrs: dict[str, Any] = dict(labels_group.attrs)
    level = int(attrs.get("histolabel", {}).get("image_level", 0))
    label_array: Any = labels_group["0"]
    image = pyramids.open_group(segmentation["labels_uri"].split("/labels/")[0], "r")
    image_array: Any = image[str(level)]
    labels = np.asarray(label_array[0])
    rgb = np.moveaxis(np.asarray(image_array[:3]), 0, -1)
    return stains(rgb, labels)


def print_replay_summary(svc: Any, project_id: str, out: Any = sys.stdout) -> None:
    rows = replay(svc, project_id, Cutoff())
    by_category = Counter(r["category_name"] or "(unlabeled)" for r in rows)
    by_user = Counter(r["labeled_by"] for r in rows if r["labeled_by"])
    print(f"\nreplay of {project_id}: {len(rows)} labeled superpixels", file=out)
    print("  by category: " + ", ".join(f"{k} {v}" for k, v in by_category.most_common()), file=out)
    print("  by annotator: " + ", ".join(f"{k} {v}" for k, v in by_user.most_common()), file=out)
    for row in rows[:5]:
        print(f"  {row['slide']}:{row['superpixel']} {row['category_name']} by {row['labeled_by']} at "
              f"{row['labeled_at']} review={row['review']}", file=out)  # fmt: skip
