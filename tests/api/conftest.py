"""Fixtures for the API tests: a signing key and its JWKS standing in for a user pool, an
in-memory service seeded with a project, and the Chalice in-process client."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from histolabel.auth.tokens import PoolConfig
from tests.unit.helpers import memory_service, seeded_project

POOL = PoolConfig(region="us-east-1", user_pool_id="us-east-1_TestPool", client_id="testclient123")
OUTSIDER = "oscar"
ROLE_USERS = {"owner": "olivia", "annotator": "ana", "reviewer": "rex", "auditor": "audrey"}


class Signer:
    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwk = {
            **json.loads(RSAAlgorithm.to_jwk(self.key.public_key())),
            "kid": kid,
            "alg": "RS256",
            "use": "sig",
        }

    def token(self, user: str, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": str(uuid.uuid5(uuid.NAMESPACE_DNS, user)),
            "cognito:username": user,
            "iss": POOL.issuer,
            "aud": POOL.client_id,
            "token_use": "id",
            "iat": now,
            "exp": now + 3600,
            "email": f"{user}@example.org",
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})


@pytest.fixture(scope="session")
def signer() -> Signer:
    return Signer("test-key-1")


@pytest.fixture(scope="session")
def forger() -> Signer:
    """A key the pool never published, claiming the pool's key id."""
    return Signer("test-key-1")


class RecordingSubmitter:
    def __init__(self) -> None:
        self.jobs: list[tuple[str, list[str], str]] = []
        self.cancelled: dict[str, str] = {}
        import threading

        self._lock = threading.Lock()

    def submit(self, job: str, args: list[str], name: str) -> str:
        with self._lock:
            self.jobs.append((job, args, name))
            return f"job-{len(self.jobs)}"

    def status(self, job_id: str) -> dict[str, Any]:
        n = int(job_id.split("-")[1]) if job_id.startswith("job-") and job_id[4:].isdigit() else 0
        if not 0 < n <= len(self.jobs):
            return {"job_id": job_id, "status": "UNKNOWN"}
        if job_id in self.cancelled:
            return {"job_id": job_id, "status": "FAILED", "reason": self.cancelled[job_id]}
        return {"job_id": job_id, "status": "RUNNING"}

    def cancel(self, job_id: str, reason: str) -> None:
        self.cancelled[job_id] = reason

    def log(self, job_id: str) -> dict[str, Any]:
        return {"text": f"log of {job_id}\n", "truncated": False, "url": None}


def event_count(svc: Any) -> int:
    store = svc.events
    return sum(len(s) for s in store.streams.values()) + len(store.idem)


# The pool's users for the in-process API (test_cloud.py checks the real directory on Cognito).
POOL_USERS = {"olivia", "ana", "rex", "audrey", "oscar", "newbie", "zed"}


class Directory:
    def __init__(self) -> None:
        self.invited: dict[str, str] = {}  # email -> username, as Cognito makes them on invite

    def __call__(self, user: str) -> str | None:
        if user in self.invited:
            return self.invited[user]
        name = user.split("@", 1)[0] if user.endswith("@example.org") else user
        return name if name in POOL_USERS or name in self.invited.values() else None

    def describe(self, user: str) -> dict[str, str | None]:
        return {"email": f"{user}@example.org" if user in POOL_USERS else None, "name": None}

    def invite(self, email: str) -> tuple[str, str]:
        self.invited[email] = f"u-{len(self.invited) + 1}"
        return self.invited[email], "Temporary-pass-1"


directory = Directory()


class Api:
    """The app in-process with a seeded in-memory project 'proj' (slide s1, 5000 superpixels)."""

    def __init__(self, signer: Signer) -> None:
        from app import app
        from chalice.test import Client
        from chalicelib.context import SERVICES

        self.svc = memory_service()
        self.categories = seeded_project(self.svc)
        self.submitter = RecordingSubmitter()
        # One job already started in 'proj' (job-1), as POST .../jobs would record it.
        from histolabel.commands import RecordJobSubmitted
        from tests.unit.helpers import OWNER

        seeded = self.submitter.submit("segment", [], "seed")
        self.svc.execute(
            RecordJobSubmitted(project_id="proj", job="segment", job_id=seeded, slide_id="s1"), OWNER
        )
        SERVICES.service = self.svc
        SERVICES.submitter = self.submitter
        SERVICES.pool = POOL
        SERVICES.jwks = lambda kid: signer.jwk if kid == signer.kid else None
        SERVICES.directory = directory
        self.signer = signer
        self.client = Client(app)
        self.app = app

    def request(self, method: str, path: str, user: str | None = None, body: Any = None,
                headers: dict[str, str] | None = None, token: str | None = None) -> Any:  # fmt: skip
        h = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        elif user is not None:
            h["Authorization"] = f"Bearer {self.signer.token(user)}"
        raw = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
        return self.client.http.request(method, path, headers=h, body=raw or b"")

    def events(self) -> int:
        return event_count(self.svc)


@pytest.fixture
def api(signer: Signer, cloud: Any) -> Iterator[Api]:
    from chalicelib.context import SERVICES

    yield Api(signer)
    SERVICES.service = SERVICES.submitter = SERVICES.pool = SERVICES.jwks = SERVICES.directory = None


def publish_predictions(
    svc: Any, settings: Any, probs: dict[str, Any], categories: list[str], project_id: str = "proj",
    certainty: dict[str, Any] | None = None, batches: dict[str, tuple[Any, Any]] | None = None,
) -> int:  # fmt: skip
    """Play train + predict for `project_id`: parquet files as gpu_jobs/predict.py writes them
    (id, prob_<category>..., certainty[, batch, batch_rank]) and the events the jobs record."""
    import numpy as np
    import pyarrow as pa

    from histolabel.adapters.pyramids import write_table
    from tests.unit.helpers import ANNOTATOR

    svc.request_training(project_id, ANNOTATOR)
    state = svc.project_state(project_id)
    request_id = next(r for r, run in state.training.items() if run.status == "requested")
    version = len(state.models) + 1
    prefix = f"s3://{settings.data_bucket}/projects/{project_id}/predictions/{uuid.uuid4().hex}/{version}"
    for slide_id, p in probs.items():
        p = np.asarray(p, np.float32)
        cols: dict[str, Any] = {"id": np.arange(1, len(p) + 1, dtype=np.int64)}
        cols.update({f"prob_{c}": p[:, k] for k, c in enumerate(categories)})
        cols["certainty"] = np.asarray((certainty or {}).get(slide_id, p.max(axis=1)), np.float32)
        if batches and slide_id in batches:
            cols["batch"], cols["batch_rank"] = (np.asarray(a, np.int32) for a in batches[slide_id])
        write_table(pa.table(cols), f"{prefix}/{slide_id}.parquet", settings)
    svc.record_job_event(
        project_id, "TrainingStarted", {"request_id": request_id, "job_id": "j"}, job="train"
    )
    completed = {
        "request_id": request_id,
        "model_version": version,
        "model_uri": f"{prefix}/m",
        "metrics": {},
    }
    svc.record_job_event(project_id, "TrainingCompleted", completed, job="train")
    published = {
        "model_version": version,
        "uri_prefix": prefix,
        "slides": sorted(probs),
        "metric": "confidence",
    }
    svc.record_job_event(project_id, "PredictionsPublished", published, job="predict")
    return version
