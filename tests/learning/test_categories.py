"""More than two classes through the whole loop (labels and queue through the API, the train and
predict jobs as the runner starts them), and an excluded category never queued or trained on.

The four categories come from the MoNuSeg ground truth: "stroma" for a superpixel less than half
inside a nucleus polygon; otherwise the size of the nucleus that covers most of it, in tertiles
of the crop's nucleus areas ("small", "medium", "large")."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from skimage.draw import polygon as draw_polygon

from tests.api.conftest import POOL, Signer, directory
from tests.learning.helpers import SIZE
from tests.learning.helpers import make_project as _project

pytestmark = pytest.mark.slow
CATEGORIES = ("stroma", "small", "medium", "large")


def size_classes(xml: Path, labels: np.ndarray) -> np.ndarray:
    """Per superpixel id (index id-1) its category index in CATEGORIES (see the module doc)."""
    instances = np.zeros((1000, 1000), np.int32)
    for k, region in enumerate(ET.parse(xml).getroot().iter("Region"), start=1):
        pts = [(float(v.get("Y", 0)), float(v.get("X", 0))) for v in region.iter("Vertex")]
        if len(pts) >= 3:
            rr, cc = draw_polygon(*map(np.asarray, zip(*pts, strict=True)), (1000, 1000))
            instances[rr, cc] = k
    inst = instances[:SIZE, :SIZE]
    area = np.bincount(instances.ravel())
    n = int(labels.max())
    out = np.zeros(n, np.int64)
    present = np.unique(inst[inst > 0])
    cuts = np.quantile(area[present], [1 / 3, 2 / 3])
    for sp in range(1, n + 1):
        cover = inst[labels == sp]
        inside = cover[cover > 0]
        if inside.size * 2 >= cover.size:
            nucleus = np.bincount(inside).argmax()
            out[sp - 1] = 1 + int(np.searchsorted(cuts, area[nucleus], side="right"))
    return out


class Client:
    """The API in-process (Chalice's test client) over the local cloud's service."""

    def __init__(self, svc: Any) -> None:
        from app import app
        from chalice.test import Client as ChaliceClient
        from chalicelib.context import SERVICES

        self.signer = Signer("loop-key")
        SERVICES.service, SERVICES.pool, SERVICES.directory = svc, POOL, directory
        SERVICES.jwks = lambda kid: self.signer.jwk if kid == self.signer.kid else None
        self.client = ChaliceClient(app)

    def __call__(self, method: str, path: str, body: Any = None) -> Any:
        import json

        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.signer.token('olivia')}",
        }
        resp = self.client.http.request(method, path, headers=headers, body=json.dumps(body) if body else b"")
        assert resp.status_code < 300, (path, resp.status_code, resp.body[:300])
        return json.loads(resp.body) if resp.body else None


@pytest.fixture
def client(cloud, svc):
    from chalicelib.context import SERVICES

    yield Client(svc)
    SERVICES.service = SERVICES.submitter = SERVICES.pool = SERVICES.jwks = SERVICES.directory = None


def label_from_queue(client: Client, pid: str, truth: np.ndarray, n: int) -> list[dict[str, Any]]:
    items = client("GET", f"/projects/{pid}/queue?n={n}")["items"]
    by: dict[str, list[int]] = {}
    for it in items:
        by.setdefault(CATEGORIES[truth[it["id"] - 1]], []).append(it["id"])
    for cat, ids in by.items():
        client("POST", f"/projects/{pid}/slides/s1/labels", {"ids": ids, "category_id": cat})
    return items


def train_and_predict(svc: Any, pid: str) -> dict[str, Any]:
    from gpu_jobs import train
    from tests.learning.helpers import request

    assert train.main(["--project", pid, "--request", request(svc, pid)]) == 0
    model = svc.project_state(pid).current_model
    assert model is not None
    return model


def test_four_categories_loop_and_an_excluded_one(client, svc, project_id, monuseg_crop, shared_data) -> None:
    from gpu_jobs import embed
    from histolabel.adapters import artifacts

    _rgb, labels, _ = monuseg_crop
    truth = size_classes(shared_data / "labeled/monuseg/TCGA-2Z-A9J9-01A-01-TS1.xml", labels)
    assert all((truth == c).sum() >= 10 for c in range(4))  # every category is really there
    pid = project_id
    _project(svc, pid, monuseg_crop, metric="margin", categories=CATEGORIES)
    assert embed.main(["--project", pid, "--slide", "s1", "--kind", "handcrafted"]) == 0

    label_from_queue(client, pid, truth, 120)  # spread order before any model
    v1 = train_and_predict(svc, pid)
    assert v1["model_version"] == 1 and set(CATEGORIES) <= set(v1["metrics"])
    assert v1["metrics"]["heldout"] == "cross-validation" and v1["metrics"]["few_heldout"] is False
    served = label_from_queue(client, pid, truth, 60)  # least margin first, 4 classes
    margins = [it["certainty"] for it in served]
    assert margins == sorted(margins) and {it["prediction"] for it in served} <= set(CATEGORIES)
    v2 = train_and_predict(svc, pid)
    pred = artifacts.read_predictions(f"{svc.project_state(pid).predictions['uri_prefix']}/s1.parquet")
    probs = np.stack([pred.column(f"prob_{c}").to_numpy() for c in CATEGORIES], axis=1)
    top = probs.argmax(axis=1)
    # The 4-class model finds nuclei: stroma superpixels are mostly predicted stroma and
    # nucleus superpixels mostly one of the three sizes.
    assert (top[truth == 0] == 0).mean() > 0.7 and (top[truth > 0] > 0).mean() > 0.6
    assert v2["label_count"] == 180

    # Exclude "large": the queue never serves a superpixel predicted "large" ...
    predicted_large = set((np.flatnonzero(top == 3) + 1).tolist())
    assert predicted_large
    client("POST", f"/projects/{pid}/categories/large/exclude")
    queue = client("GET", f"/projects/{pid}/queue?n=200")["items"]
    assert queue and predicted_large.isdisjoint({it["id"] for it in queue})
    assert all(it["prediction"] != "large" for it in queue)
    # ... and the next model neither trains on its labels nor predicts it.
    large_labels = int((truth[[i - 1 for i in svc.slide_labels_fresh(pid, "s1").current()]] == 3).sum())
    v3 = train_and_predict(svc, pid)
    prefix = artifacts.model_prefix(pid, v3["model_version"])
    _, meta = artifacts.read_model(prefix)
    assert meta["class_ids"] == ["stroma", "small", "medium"]
    assert v3["label_count"] == 180 - large_labels and large_labels > 0
    pred = artifacts.read_predictions(f"{svc.project_state(pid).predictions['uri_prefix']}/s1.parquet")
    assert "prob_large" not in pred.column_names
    queue = client("GET", f"/projects/{pid}/queue?n=200")["items"]
    assert all(it["prediction"] != "large" for it in queue)
