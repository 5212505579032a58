"""Deploy parity: `python -m infra deploy` of the real app into the local cloud's
CloudFormation, then the API flow against the functions AS DEPLOYED.

Read back from the deployed stack: each function's handler, environment and artifact (the
zips from the artifacts bucket at the keys the stack holds; the API's image build context
whose content hash is the deployed image tag) and the API's routes (the RestAPI body). Each
handler runs in its own `python -S -I` interpreter with only its artifact on sys.path (plus the
runtime's boto3 for zips, the image's packages for the API) and the deployed environment, and
is sent API-Gateway and DynamoDB-stream shaped events. Jobs go to the deployed Batch queues,
which the emulator's Batch accepts or refuses by name. Then destroy, and deploy from scratch.

Not run: the jobs themselves (their image is not built here: the emulator has no CodeBuild);
the ingest and segment results are written as those jobs write them (S3 layout and events).
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import uuid
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from histolabel.adapters import cognito
from histolabel.adapters.aws import client
from histolabel.commands import WRITE_ROLES
from histolabel.composition import service_from_env
from histolabel.config import Settings
from infra.package import ROOT, context_digest
from infra.stackops import outputs_of
from infra.stacks import stack_names
from tests.infra.conftest import deploy_cli
from tests.infra.test_artifacts import runtime_boto3  # noqa: F401 - fixture

STAGE = "parity"
HOST = Path(__file__).with_name("lambda_host.py")
PY = f"{sys.version_info.major}.{sys.version_info.minor}"
pytestmark = pytest.mark.slow


class Function:
    """A deployed function's handler in its own interpreter."""

    def __init__(self, handler: str, paths: list[Path], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-S", "-I", str(HOST), handler, *map(str, paths)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        ready = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not ready:
            raise AssertionError(f"{handler} did not import: {self.proc.stderr.read()[-3000:]}")  # type: ignore[union-attr]
        self.modules = set(json.loads(ready)["ready"])

    def __call__(self, event: dict[str, Any]) -> Any:
        self.proc.stdin.write(json.dumps(event, default=str) + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        answer = json.loads(self.proc.stdout.readline())  # type: ignore[union-attr]
        assert "error" not in answer, answer
        return answer["result"]

    def close(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait(timeout=30)


def _deploy(cloud: Settings) -> str:
    code, out, err = deploy_cli("--stage", STAGE, "--skip-lint", "--lambda-python", PY)
    assert code == 0, out + err
    return out


@pytest.fixture(scope="module")
def stage(cloud: Settings) -> Any:
    out = _deploy(cloud)
    settings = Settings(
        stage=STAGE, region=cloud.region, endpoint_url=cloud.endpoint_url, bucket_account="123456789012"
    )
    yield settings, out
    import contextlib
    import io

    from infra.__main__ import main

    with contextlib.redirect_stdout(io.StringIO()):
        main(["destroy", "--stage", STAGE, "--delete-data", "--yes"])


def _deployed_function(settings: Settings, logical: str, tmp: Path, boto_dir: Path) -> Function:
    cfn, lam = client("cloudformation", settings), client("lambda", settings)
    app_stack = cfn.describe_stacks(StackName=stack_names(settings).app)["Stacks"][0]
    outputs = outputs_of(app_stack)
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in app_stack["Parameters"]}
    config = lam.get_function(FunctionName=outputs[f"{logical}FunctionName"])
    conf = config["Configuration"]
    env = {
        **conf["Environment"]["Variables"],
        # What Lambda adds: the region and the function role's credentials (here the emulator's).
        "AWS_REGION": settings.region,
        "AWS_DEFAULT_REGION": settings.region,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_ENDPOINT_URL": settings.endpoint_url or "",
        "PATH": "/usr/bin:/bin",
    }
    if "ImageUri" in config.get("Code", {}):
        tag = config["Code"]["ImageUri"].rsplit(":", 1)[1]
        context = ROOT / "build" / "artifacts" / "api"
        assert context_digest(context) == tag, "the API image deployed is not this tree's build context"
        # The image's packages: its requirements (from the lock) as installed here (the
        # clean-venv install of exactly those is tests/infra/test_image_requirements.py).
        site = [Path(sysconfig.get_paths()["purelib"]), Path(sysconfig.get_paths()["platlib"])]
        return Function("app.app", [context, *dict.fromkeys(site)], env)
    key = parameters[f"{logical}CodeKey"]
    root = tmp / logical
    data = client("s3", settings).get_object(Bucket=parameters["ArtifactsBucket"], Key=key)["Body"].read()
    root.mkdir()
    (root / "code.zip").write_bytes(data)
    with zipfile.ZipFile(root / "code.zip") as archive:
        archive.extractall(root / "code")
    return Function(conf["Handler"], [root / "code", boto_dir], env)


def _write_segmentation(settings: Settings, pid: str, sid: str) -> dict[str, Any]:
    """What the ingest and segment jobs leave in the data bucket for a small slide."""
    import pyarrow as pa
    from skimage.measure import regionprops

    from histolabel.adapters import pyramids

    # 64 square superpixels of 32 px.
    labels = (np.arange(256)[:, None] // 32 * 8 + np.arange(256)[None, :] // 32 + 1).astype(np.uint32)
    prefix = f"s3://{settings.data_bucket}/projects/{pid}/slides/{sid}"
    group = pyramids.open_group(f"{prefix}/image.ome.zarr/labels/superpixels", "w", settings)
    group.attrs.update(
        {"ome": {"multiscales": [{"datasets": [{"path": "0"}]}]}, "histolabel": {"image_level": 0}}
    )
    group.create_array("0", shape=labels.shape, dtype="uint32", chunks=(128, 128))[:] = labels
    props = regionprops(labels)
    table = pa.table({
        "id": [p.label for p in props],
        "y0": [p.bbox[0] for p in props], "x0": [p.bbox[1] for p in props],
        "y1": [p.bbox[2] for p in props], "x1": [p.bbox[3] for p in props],
        "cy": [p.centroid[0] for p in props], "cx": [p.centroid[1] for p in props],
        "area": [p.area for p in props], "level": [0] * len(props),
    })  # fmt: skip
    pyramids.write_table(table, f"{prefix}/superpixels.parquet", settings)
    return {
        "slide_id": sid,
        "count": int(labels.max()),
        "labels_uri": f"{prefix}/image.ome.zarr/labels/superpixels",
        "table_uri": f"{prefix}/superpixels.parquet",
        "superpixel_size": 30,
        "compactness": 10,
    }


def test_api_flow_against_the_functions_as_deployed(stage, runtime_boto3, tmp_path):  # noqa: F811
    import urllib.request

    from chalice.local import LambdaEventConverter, RouteMatcher

    settings, _ = stage
    api = _deployed_function(settings, "APIHandler", tmp_path, runtime_boto3)
    projector = _deployed_function(settings, "Projector", tmp_path, runtime_boto3)
    trigger = _deployed_function(settings, "Trigger", tmp_path, runtime_boto3)
    assert not projector.modules & {"numpy", "pyarrow", "skimage", "zarr", "s3fs", "torch"}
    cfn = client("cloudformation", settings)
    body = json.loads(json.dumps(cfn.get_template(StackName=stack_names(settings).app)["TemplateBody"]))
    body = json.loads(body) if isinstance(body, str) else body
    routes = RouteMatcher(list(body["Resources"]["RestAPI"]["Properties"]["Body"]["paths"]))
    events = LambdaEventConverter(routes, ["application/vnd.apache.parquet"])

    env_pool = next(iter(stage_pool(settings)))
    pool = cognito.Pool(*env_pool)
    for user in ("olivia", "ana", "rex"):
        cognito.add_user(pool, user, "Passw0rd!x", f"{user}@example.org", settings=settings)
    tokens = {u: cognito.login(pool, u, "Passw0rd!x", settings=settings) for u in ("olivia", "ana", "rex")}

    def call(method: str, path: str, user: str | None = None, payload: Any = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if user:
            headers["Authorization"] = f"Bearer {tokens[user]}"
        event = events.create_lambda_event(
            method, path, headers, json.dumps(payload) if payload is not None else None
        )
        response = api(event)
        text = response.get("body") or ""
        try:
            return response["statusCode"], json.loads(text) if text else None
        except json.JSONDecodeError:
            return response["statusCode"], text

    from histolabel.localcloud.poller import StreamPoller

    delivered: list[int] = []

    def both(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        # As the two event source mappings would: each function gets the batch (the trigger's
        # mapping filters by type on AWS; its handler ignores other types itself).
        delivered.append(len(event["Records"]))
        assert projector(event) == {"batchItemFailures": []}
        return trigger(event)

    # Lambda's DynamoDB-stream event source mapping, as the local runtime stands in for it.
    poller = StreamPoller(settings, both, start_at="LATEST")

    def project_stream() -> None:
        before = sum(delivered)
        poller.drain(timeout=60)
        assert sum(delivered) > before, "no stream records reached the functions"

    pid, sid = f"p{uuid.uuid4().hex[:10]}", "s1"
    assert call("GET", "/health")[0] == 200
    # The web app's vocabulary, as the deployed artifact serves it (histolabel/api/vocabulary.py).
    code, config = call("GET", "/config")
    assert code == 200 and config["vocabulary"]["may"]["label"] == list(WRITE_ROLES), config
    code, project = call("POST", "/projects", "olivia", {"project_id": pid, "name": "parity", "site": "nyc"})
    assert code == 201, project
    for user, role in (("ana", "annotator"), ("rex", "reviewer")):
        code, out = call(
            "POST", f"/projects/{pid}/members", "olivia", {"user": user, "role": role, "site": "rome"}
        )
        assert code == 201, out
    code, out = call("POST", f"/projects/{pid}/categories", "olivia", {"name": "tumor"})
    assert code in (200, 201), out
    cat = out.get("id") or out.get("category_id") or out.get("category", {}).get("id")
    # Register a slide by upload: the API presigns a PUT into the deployed data bucket.
    code, out = call(
        "POST", f"/projects/{pid}/slides", "olivia", {"name": "slide", "filename": "a.tif", "slide_id": sid}
    )
    assert code == 201, out
    put = urllib.request.Request(out["upload"]["url"], data=b"II*\x00fake", method="PUT")
    with urllib.request.urlopen(put, timeout=10) as resp:
        assert resp.status == 200
    assert (
        f"/{settings.data_bucket}/" in out["upload"]["url"]
        or f"//{settings.data_bucket}." in out["upload"]["url"]
    )
    # Start ingest: the API submits it to the deployed CPU queue (the emulator's Batch checks the name).
    code, out = call("POST", f"/projects/{pid}/slides/{sid}/jobs", "olivia", {"job": "ingest"})
    assert code == 202, out
    job = client("batch", settings).describe_jobs(jobs=[out["job_id"]])["jobs"][0]
    assert job["jobQueue"].endswith(f"/{settings.prefix}-cpu")
    # What the ingest and segment jobs would record.
    seg = _write_segmentation(settings, pid, sid)
    svc = service_from_env(settings)
    zarr_uri = seg["labels_uri"].rsplit("/labels", 1)[0]
    ingested = {"slide_id": sid, "zarr_uri": zarr_uri, "width": 256, "height": 256, "levels": 1}
    svc.record_job_event(pid, "SlideIngested", ingested, job="ingest")
    svc.record_job_event(pid, "SegmentationCompleted", seg, job="segment")
    # Label, through the API; the deployed projector folds it into the projections.
    code, out = call(
        "POST", f"/projects/{pid}/slides/{sid}/labels", "ana", {"category_id": cat, "ids": [1, 2, 3]}
    )
    assert code == 200, out
    project_stream()
    code, labels = call("GET", f"/projects/{pid}/slides/{sid}/labels", "ana")
    assert code == 200 and {e["id"] for e in labels["entries"]} == {1, 2, 3}, labels
    code, queue = call("GET", f"/projects/{pid}/queue?n=5", "ana")
    assert code == 200 and len(queue["items"]) == 5 and not {i["id"] for i in queue["items"]} & {1, 2, 3}, (
        queue
    )
    code, out = call("POST", f"/projects/{pid}/slides/{sid}/review", "rex", {"action": "approve", "ids": [1]})
    assert code == 200, out
    project_stream()
    code, csv = call("GET", f"/projects/{pid}/export?format=csv", "olivia")
    assert code == 200 and isinstance(csv, str) and csv.count("\n") >= 3, csv
    # Retrain: the deployed trigger claims the request and submits train to the GPU queue.
    code, out = call("POST", f"/projects/{pid}/training", "ana")
    assert code in (200, 201, 202), out
    project_stream()
    run = svc.project_state(pid).training[out["request_id"]]
    assert run.status == "started", run
    gpu_jobs = client("batch", settings).list_jobs(jobQueue=f"{settings.prefix}-gpu")["jobSummaryList"]
    train = [j for j in gpu_jobs if pid in j["jobName"]]
    assert train, "no train job on the GPU queue"
    for fn in (api, projector, trigger):
        fn.close()


def stage_pool(settings: Settings) -> list[tuple[str, str]]:
    lam = client("lambda", settings)
    env = lam.get_function_configuration(FunctionName=f"{settings.prefix}-api")["Environment"]["Variables"]
    return [(env["HISTOLABEL_USER_POOL_ID"], env["HISTOLABEL_CLIENT_ID"])]


def test_a_wrong_queue_name_fails_the_trigger_as_deployed(stage, runtime_boto3, tmp_path, monkeypatch):  # noqa: F811
    """The same deployed trigger with its GPU queue variable pointing at a queue the stack does
    not have: the emulator's Batch refuses the submission, and the request ends as
    TrainingFailed with that reason (nothing left 'requested')."""
    settings, _ = stage
    fn = _deployed_function(settings, "Trigger", tmp_path, runtime_boto3)
    fn.close()
    from histolabel.commands import AddCategory, CreateProject
    from histolabel.events.catalogue import Actor

    svc = service_from_env(settings)
    pid = f"p{uuid.uuid4().hex[:10]}"
    owner = Actor(user="olivia", site="nyc")
    svc.execute(CreateProject(project_id=pid, name="wrong queue"), owner)
    svc.execute(AddCategory(project_id=pid, name="tumor"), owner)
    lam = client("lambda", settings)
    conf = lam.get_function_configuration(FunctionName=f"{settings.prefix}-trigger")
    env = {**conf["Environment"]["Variables"], "HISTOLABEL_JOB_QUEUE_GPU": f"{settings.prefix}-jobs",
           "AWS_REGION": settings.region, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_ENDPOINT_URL": settings.endpoint_url or "", "PATH": "/usr/bin:/bin"}  # fmt: skip
    code_dir = tmp_path / "Trigger" / "code"
    wrong = Function(conf["Handler"], [code_dir, runtime_boto3], env)
    from histolabel.localcloud.poller import StreamPoller

    poller = StreamPoller(settings, lambda event, _ctx: wrong(event), start_at="LATEST")
    svc.request_training(pid, owner)
    poller.drain(timeout=60)
    wrong.close()
    runs = svc.project_state(pid).training
    (run,) = runs.values()
    assert run.status == "failed" and f"{settings.prefix}-jobs" in (run.reason_failed or ""), run


def test_destroy_then_deploy_from_scratch(stage, capsys):
    settings, _ = stage
    import contextlib
    import io

    from infra.__main__ import main

    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["destroy", "--stage", STAGE, "--delete-data", "--yes"]) == 0
    cfn = client("cloudformation", settings)
    assert not [s for s in cfn.describe_stacks()["Stacks"] if s["StackName"].startswith(settings.prefix)]
    out = _deploy(settings)
    assert f"{stack_names(settings).app}: CREATE_COMPLETE" in out, out
