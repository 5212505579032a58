"""Faults against the local cloud: a projector that dies mid-batch and mid-write, a poller process
killed and restarted, a writer killed mid-command whose outbox resends. Each time the state must
converge: nothing lost or doubled, `audit verify` clean (chains, anchors, MACs, projections) and
a rebuild from zero equal to the live projection."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from histolabel.audit.rebuild import rebuild
from histolabel.audit.verify import verify
from histolabel.commands import LabelSuperpixels
from histolabel.composition import service_from_env
from histolabel.events.envelope import member_label_stream
from histolabel.events.streams import slide_events
from histolabel.localcloud.poller import StreamPoller
from histolabel.runtime.anchorer_lambda import Anchorer
from histolabel.runtime.projector_lambda import ProjectorRuntime
from tests.integration.conftest import ANNOTATOR, make_project

ROOT = Path(__file__).resolve().parents[2]


class Died(BaseException):
    """Stands for the process dying: not an Exception, so nothing on the way catches it."""


def _label(svc, project_id, slide, ids, key=None):
    cmd = LabelSuperpixels(project_id=project_id, slide_id=slide, ids=ids, category_id="tumor")
    return svc.execute(cmd, ANNOTATOR, idempotency_key=key)


def _converged(svc, project_id, slides, expected_events):
    for slide in slides:
        events = slide_events(svc.events, project_id, slide)
        assert len(events) == expected_events[slide]
        assert svc.slide_labels(project_id, slide).seq == len(events)
    Anchorer(svc).anchor_project(project_id)
    result = verify(svc, project_id)
    assert result.ok, (result.chain_findings, result.anchor_findings, result.projection_findings)
    _folded, differences = rebuild(svc, project_id, write=False)
    assert differences == []


def test_a_restarted_poller_goes_on_from_its_saved_position(cloud, svc, project_id, tmp_path):
    positions = tmp_path / "projector.json"
    runtime = ProjectorRuntime(svc)
    first = StreamPoller(cloud, runtime.handle, start_at="LATEST", positions=positions)
    make_project(svc, project_id)
    for i in range(20):
        _label(svc, project_id, "s1", [i + 1])
    first.drain()
    assert first.delivered >= 20 + 7  # and the project's setup
    # Told to start at the stream's very beginning, it still resumes after what it delivered.
    second = StreamPoller(cloud, runtime.handle, start_at="TRIM_HORIZON", positions=positions)
    _label(svc, project_id, "s1", [999])
    second.drain()
    assert second.delivered == 1
    _converged(svc, project_id, ["s1"], {"s1": 21})


@pytest.mark.parametrize("dies_at", ["mid-batch", "mid-write"])
def test_a_projector_that_dies_mid_batch_converges_after_restart(cloud, svc, project_id, tmp_path, dies_at):
    """Dies after the first stream of a batch is saved (mid-batch), or between two projection
    writes of one stream (mid-write: events spanning more buckets than one write holds)."""
    positions = tmp_path / "projector.json"
    runtime = ProjectorRuntime(svc)
    poller = StreamPoller(cloud, runtime.handle, start_at="LATEST", positions=positions, batch_size=500)
    poller.poll_once()
    make_project(svc, project_id, slides=("s1", "s2"))
    counts = {"s1": 0, "s2": 0}
    for i in range(30):
        slide = ("s1", "s2")[i % 2]
        if dies_at == "mid-write":
            # Ten buckets an event: one stream's run of them needs more than one projection write.
            ids = sorted({256 * ((k * 8 + i) % 78) + 1 + i for k in range(10)})
        else:
            ids = [1 + i]
        _label(svc, project_id, slide, ids)
        counts[slide] += 1
    store = runtime.projector.projections
    original_save = store.save_slide
    saves = {"n": 0}

    lock = threading.Lock()

    def save_then_die(state, buckets, expected_seq, labels_delta):
        original_save(state, buckets, expected_seq, labels_delta)
        with lock:
            saves["n"] += 1
            first = saves["n"] == 1
        if first:
            raise Died(dies_at)

    store.save_slide = save_then_die  # type: ignore[method-assign]
    with pytest.raises(Died):
        poller.drain()
    store.save_slide = original_save  # type: ignore[method-assign]
    # A batch's slides are projected in parallel: the other slide may have saved a write too
    # before the death, as in a process killed at that moment.
    assert 1 <= saves["n"] <= 2
    restarted = StreamPoller(cloud, ProjectorRuntime(svc).handle, start_at="LATEST", positions=positions)
    restarted.drain()
    assert restarted.delivered >= 30  # the whole unacknowledged batch came again
    _converged(svc, project_id, ["s1", "s2"], counts)


def _spawn(args, env):
    return subprocess.Popen([sys.executable, *args], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip


def _env(tmp_path):
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "HISTOLABEL_LOCAL_DIR": str(tmp_path),
        "HISTOLABEL_ANCHOR_INTERVAL_S": "1",
        "HISTOLABEL_JOB_RUNNER": "local",
    }


def _wait(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _wait_until_projecting(svc, project_id, timeout=90):
    """The runtime starts at LATEST once it is up: ping it with throwaway projects until one shows."""
    from histolabel.commands import CreateProject

    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        ping = f"{project_id}-ping{n}"
        svc.execute(CreateProject(project_id=ping, name="ping"), ANNOTATOR)
        for _ in range(10):
            if svc.projections.load_project(ping) is not None:
                return
            time.sleep(0.3)
        n += 1
    raise AssertionError("the runtime never started projecting")


WRITER = """
import sys
from histolabel.commands import LabelSuperpixels
from histolabel.events.catalogue import Actor
from histolabel.composition import service_from_env
project, n = sys.argv[1], int(sys.argv[2])
svc = service_from_env()
for i in range(n):
    cmd = LabelSuperpixels(project_id=project, slide_id="s1", ids=[i + 1], category_id="tumor")
    svc.execute(cmd, Actor(user="ana", site="chicago"), idempotency_key=f"outbox-{i}")
"""


@pytest.mark.slow
def test_killed_runtime_and_killed_writer_converge(cloud, svc, project_id, tmp_path):
    """The local runtime (pollers + anchor timer) is SIGKILLed while a writer process is mid-way;
    the writer is SIGKILLed too and resends its whole outbox (same idempotency keys)."""
    env = _env(tmp_path)
    positions = tmp_path / "poller-projector.json"
    runtime = _spawn(["-m", "histolabel.localcloud.runtime", "--start-at", "LATEST"], env)
    stream = member_label_stream(project_id, "s1", ANNOTATOR.user)
    total = 100
    try:
        _wait_until_projecting(svc, project_id)
        make_project(svc, project_id)
        writer = _spawn(["-c", WRITER, project_id, str(total)], env)
        _wait(lambda: positions.exists() and svc.events.head(stream)[0] >= 30, 240, "the first labels")
        runtime.send_signal(signal.SIGKILL)
        runtime.wait()
        _wait(lambda: svc.events.head(stream)[0] >= 45, 240, "more labels while the runtime is down")
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        runtime = _spawn(["-m", "histolabel.localcloud.runtime", "--start-at", "LATEST"], env)
        resend = _spawn(["-c", WRITER, project_id, str(total)], env)
        assert resend.wait(timeout=300) == 0, resend.stderr.read() if resend.stderr else ""
        _wait(lambda: svc.slide_labels(project_id, "s1").seq == total, 240, "the projection to catch up")
    finally:
        runtime.send_signal(signal.SIGTERM)
        runtime.wait(timeout=30)
    events = list(svc.events.read(stream))
    assert sorted(e.idem for e in events) == sorted(f"outbox-{i}" for i in range(total))
    _converged(svc, project_id, ["s1"], {"s1": total})


@pytest.mark.slow
def test_a_store_frozen_mid_write_loses_and_doubles_nothing(cloud, tmp_path):
    """The store stops answering (SIGSTOP: requests hang mid-write) and comes back; the writer's
    requests then complete, its retries are idempotent, and the projection catches up. (A store of
    its own: killing moto for good would lose its memory, which no real store does.)"""
    import threading

    from histolabel.adapters.provision import provision
    from histolabel.config import Settings
    from histolabel.localcloud.stack import start_server

    server = start_server(log_path=tmp_path / "moto.log")
    try:
        settings = Settings(stage="faults", endpoint_url=server.endpoint)
        provision(settings)
        svc = service_from_env(settings)
        project_id = "frozen"
        poller = StreamPoller(settings, ProjectorRuntime(svc).handle, start_at="TRIM_HORIZON").start()
        make_project(svc, project_id)
        total, written, errors = 40, [], []

        def writer() -> None:
            for i in range(total):
                for _attempt in range(5):  # the client's outbox: resend with the same key
                    try:
                        written.append(_label(svc, project_id, "s1", [i + 1], key=f"frozen-{i}"))
                        break
                    except Exception as exc:  # surfaced below if every resend failed
                        errors.append(exc)
                        time.sleep(0.5)

        thread = threading.Thread(target=writer)
        thread.start()
        _wait(
            lambda: svc.events.head(member_label_stream(project_id, "s1", ANNOTATOR.user))[0] >= 10,
            60,
            "the first writes",
        )
        os.kill(server.pid, signal.SIGSTOP)
        time.sleep(3)
        os.kill(server.pid, signal.SIGCONT)
        thread.join(timeout=120)
        assert len(written) == total, errors
        _wait(lambda: svc.slide_labels(project_id, "s1").seq == total, 60, "the projection")
        poller.stop()
        _converged(svc, project_id, ["s1"], {"s1": total})
    finally:
        os.kill(server.pid, signal.SIGCONT)
        server.stop()
