"""The local runtime: what Lambda's event source mappings do in AWS, as one process.

Two stream pollers on the events table, each with its own position and retries, as two
mappings would have: one feeds the projector handler, one the trigger handler.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from histolabel.composition import service_from_env
from histolabel.config import Settings, get_settings, settings_from_env
from histolabel.localcloud.poller import StreamPoller

if TYPE_CHECKING:
    from histolabel.runtime.anchorer_lambda import AnchorTimer


def start_pollers(settings: Settings, start_at: str = "TRIM_HORIZON") -> list[StreamPoller]:
    from histolabel.composition import service_from_env, submitter_from_env
    from histolabel.runtime.projector_lambda import ProjectorRuntime
    from histolabel.runtime.trigger_lambda import TriggerRuntime

    projector = ProjectorRuntime(service_from_env(settings))
    trigger = TriggerRuntime(service_from_env(settings), submitter_from_env())
    return [
        # Batches as large as one GetRecords returns: the projector writes once per stream run.
        StreamPoller(
            settings, projector.handle, start_at=start_at, positions=_positions("projector"), batch_size=1000
        ).start(),
        StreamPoller(settings, trigger.handle, start_at=start_at, positions=_positions("trigger")).start(),
    ]


def _positions(name: str) -> Path | None:
    """Where a poller keeps its stream position across restarts (in the local cloud's folder)."""

    folder = settings_from_env().local_dir
    return Path(folder) / f"poller-{name}.json" if folder else None


def start_anchor_timer(settings: Settings) -> AnchorTimer:
    """What the scheduled rule does in AWS: anchor every project's stream heads each minute."""

    from histolabel.runtime.anchorer_lambda import Anchorer, AnchorTimer

    interval = settings.anchor_interval_s
    return AnchorTimer(Anchorer(service_from_env(settings)), interval).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="HistoLabel local runtime (stream pollers)")
    parser.add_argument("--start-at", choices=["TRIM_HORIZON", "LATEST"], default="TRIM_HORIZON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    pollers = start_pollers(get_settings(), args.start_at)
    anchors = start_anchor_timer(get_settings())
    stop.wait()
    anchors.stop()
    for poller in pollers:
        poller.stop()


if __name__ == "__main__":
    main()
