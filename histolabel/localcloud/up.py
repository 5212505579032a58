"""`histolabel local up|down|status`: the whole product on one machine.

Starts the local cloud (moto server), provisions the stack's tables and buckets from the same
definitions infra deploys, creates the Cognito pool and demo users, and starts the local
runtime (stream pollers -> projector and trigger), the API (`chalice local`) and the web app,
each as its own process recorded by PID in the state directory, then loads a demo project.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from histolabel.composition import service_from_env
from histolabel.config import Settings, settings_from_env
from histolabel.events.catalogue import LabelSource, Role

ROOT = Path(__file__).resolve().parents[2]
DEMO_SLIDE = ROOT / "localstack" / "demo" / "CMU-1-Small-Region.svs"
DEMO_PASSWORD = "Histolabel-demo-1"
DEMO_USERS: dict[str, Role] = {
    "olivia": "owner",
    "ana": "annotator",
    "ben": "annotator",
    "rex": "reviewer",
    "audrey": "auditor",
}
DEMO_SITES = {"olivia": "nyc", "ana": "chicago", "ben": "london", "rex": "boston", "audrey": "nyc"}


class LocalStackError(RuntimeError):
    pass


def state_dir() -> Path:
    path = Path(settings_from_env().local_dir or ROOT / ".histolabel")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _state_file() -> Path:
    return state_dir() / "stack.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def read_state() -> dict[str, Any] | None:
    path = _state_file()
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _spawn(name: str, command: list[str], env: dict[str, str], cwd: Path | None = None) -> int:
    log = open(state_dir() / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps the handle
    proc = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
    )
    return proc.pid


def _wait_http(url: str, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise LocalStackError(f"{what} did not answer at {url} within {timeout:.0f} s (see {state_dir()})")


def up(
    cloud_port: int,
    api_port: int,
    web_port: int,
    stage: str,
    demo: bool,
    endpoint: str | None = None,
    out: Any = sys.stdout,
) -> dict[str, Any]:
    """With `endpoint` (LocalStack, say), use that cloud instead of starting moto's server."""
    from histolabel.adapters import cognito
    from histolabel.adapters.provision import provision
    from histolabel.config import get_settings
    from histolabel.localcloud.stack import local_environment, start_server

    existing = read_state()
    if existing and any(_alive(pid) for pid in existing["pids"].values()):
        raise LocalStackError(
            f"already running (web app {existing['web_url']}); run `histolabel local down` first"
        )
    settings = Settings(stage=stage)
    pids: dict[str, int] = {}
    state: dict[str, Any] = {"pids": pids}
    try:
        if endpoint is None:
            print(f"starting the local cloud on 127.0.0.1:{cloud_port} ...", file=out, flush=True)
            server = start_server(cloud_port, log_path=state_dir() / "cloud.log")
            pids["cloud"] = server.pid
            endpoint = server.endpoint
        env = {
            **os.environ,
            **local_environment(endpoint, settings),
            "HISTOLABEL_JOB_RUNNER": "local",
            "HISTOLABEL_LOCAL_DIR": str(state_dir()),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        }
        os.environ.update(env)
        get_settings.cache_clear()
        made = provision(settings)
        pool = cognito.ensure_pool(settings)
        for user in DEMO_USERS:
            cognito.add_user(pool, user, DEMO_PASSWORD, settings=settings)
        env.update({"HISTOLABEL_USER_POOL_ID": pool.user_pool_id, "HISTOLABEL_CLIENT_ID": pool.client_id})
        os.environ.update(env)
        print(f"provisioned {', '.join(made)} and user pool {pool.user_pool_id}", file=out, flush=True)

        pids["runtime"] = _spawn("runtime", [sys.executable, "-m", "histolabel.localcloud.runtime"], env)
        # chalice local, answering 405 (not 501) to methods http.server has no handler for
        pids["api"] = _spawn(
            "api",
            [
                sys.executable,
                "-m",
                "histolabel.localcloud.api_server",
                "local",
                "--no-autoreload",
                "--host",
                "127.0.0.1",
                "--port",
                str(api_port),
                "--stage",
                "local",
            ],
            env,
            cwd=ROOT / "functions",
        )
        api_url = f"http://127.0.0.1:{api_port}"
        _wait_http(f"{api_url}/health", "the API")
        pids["web"] = _spawn(
            "web",
            [
                sys.executable,
                "-m",
                "histolabel.localcloud.webserver",
                "--api-url",
                api_url,
                "--port",
                str(web_port),
            ],
            env,
        )
        web_url = f"http://127.0.0.1:{web_port}/"
        _wait_http(web_url, "the web app")
        state.update(
            {"endpoint": endpoint, "api_url": api_url, "web_url": web_url, "stage": stage,
             "user_pool_id": pool.user_pool_id, "client_id": pool.client_id}
        )  # fmt: skip
        _state_file().write_text(json.dumps(state, indent=1))
        if demo:
            load_demo(out)
    except BaseException:
        for pid in pids.values():
            _kill(pid)
        _state_file().unlink(missing_ok=True)
        raise
    print(
        f"\nHistoLabel is running:\n  web app  {web_url}\n  API      {api_url}\n  cloud    {endpoint}",
        file=out,
    )
    print(f"  sign in as any of {', '.join(DEMO_USERS)} with password {DEMO_PASSWORD}", file=out)
    print(f"  stop with: histolabel local down   (logs in {state_dir()})", file=out, flush=True)
    return state


def load_demo(out: Any, project_id: str = "demo", seeds: int = 300, overlap: int = 60) -> None:
    """A demo project that has been round the loop once: members, categories, the demo slide
    ingested, segmented and embedded, `seeds` superpixels labeled by three annotators from the
    stain rule of histolabel/localcloud/seed.py (`overlap` of them by two, for agreement), a
    trained model with its predictions (so the guided queue ranks by certainty), a few reviews;
    then the replay of where they stand."""
    import argparse
    from concurrent.futures import ThreadPoolExecutor

    from histolabel.commands import AddCategory, AddMember, CreateProject, LabelSuperpixels, ReviewLabels
    from histolabel.events.catalogue import Actor, ProjectSettings
    from histolabel.learning import cli as learning
    from histolabel.localcloud.seed import RULE_CATEGORIES, rule
    from histolabel.segmentation.cli import segment_slide
    from histolabel.slides.cli import add_slide

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
            if learning.embed(embed) != 0:
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
            trained = learning.train(train)
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
    import numpy as np

    from histolabel.adapters import pyramids
    from histolabel.localcloud.seed import stains

    labels_group = pyramids.open_group(segmentation["labels_uri"], "r")
    attrs: dict[str, Any] = dict(labels_group.attrs)
    level = int(attrs.get("histolabel", {}).get("image_level", 0))
    label_array: Any = labels_group["0"]
    image = pyramids.open_group(segmentation["labels_uri"].split("/labels/")[0], "r")
    image_array: Any = image[str(level)]
    labels = np.asarray(label_array[0])
    rgb = np.moveaxis(np.asarray(image_array[:3]), 0, -1)
    return stains(rgb, labels)


def adopt_local_stack() -> bool:
    """Point this process at the running local stack (`histolabel local up`), unless it already
    names a cloud (AWS_ENDPOINT_URL): the CLI then works against the local stack with no
    variables to set. True when it did."""
    if settings_from_env().endpoint_url:
        return False
    state = read_state()
    if not state or not state.get("endpoint") or not all(_alive(p) for p in state["pids"].values()):
        return False
    from histolabel.config import get_settings
    from histolabel.localcloud.stack import local_environment

    os.environ.update(local_environment(state["endpoint"], Settings(stage=state.get("stage", "local"))))
    os.environ.setdefault("HISTOLABEL_JOB_RUNNER", "local")
    os.environ.setdefault("HISTOLABEL_LOCAL_DIR", str(state_dir()))
    for key, name in (("HISTOLABEL_USER_POOL_ID", "user_pool_id"), ("HISTOLABEL_CLIENT_ID", "client_id")):
        if state.get(name):
            os.environ.setdefault(key, state[name])
    get_settings.cache_clear()
    return True


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def down(out: Any = sys.stdout) -> int:
    state = read_state()
    if state is None:
        print("nothing to stop: no local stack is recorded", file=out)
        return 0
    for name, pid in reversed(list(state["pids"].items())):
        if _alive(pid):
            _kill(pid)
            print(f"stopped {name} (pid {pid})", file=out)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in state["pids"].values()):
        time.sleep(0.1)
    for pid in state["pids"].values():
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    _state_file().unlink(missing_ok=True)
    return 0


def status(out: Any = sys.stdout) -> int:
    state = read_state()
    if state is None:
        print("not running", file=out)
        return 1
    for name, pid in state["pids"].items():
        print(f"{name:8} pid {pid:<8} {'running' if _alive(pid) else 'STOPPED'}", file=out)
    print(
        f"web app {state.get('web_url')}  API {state.get('api_url')}  cloud {state.get('endpoint')}", file=out
    )
    return 0 if all(_alive(p) for p in state["pids"].values()) else 1


def print_replay_summary(svc: Any, project_id: str, out: Any = sys.stdout) -> None:
    from histolabel.audit.replay import Cutoff, replay

    rows = replay(svc, project_id, Cutoff())
    by_category = Counter(r["category_name"] or "(unlabeled)" for r in rows)
    by_user = Counter(r["labeled_by"] for r in rows if r["labeled_by"])
    print(f"\nreplay of {project_id}: {len(rows)} labeled superpixels", file=out)
    print("  by category: " + ", ".join(f"{k} {v}" for k, v in by_category.most_common()), file=out)
    print("  by annotator: " + ", ".join(f"{k} {v}" for k, v in by_user.most_common()), file=out)
    for row in rows[:5]:
        print(f"  {row['slide']}:{row['superpixel']} {row['category_name']} by {row['labeled_by']} at "
              f"{row['labeled_at']} review={row['review']}", file=out)  # fmt: skip
