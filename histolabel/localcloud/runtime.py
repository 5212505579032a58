"""The local runtime: what Lambda's event source mappings do in AWS, as one process.

Two stream pollers on the events table, each with its own position and retries, as two
mappings would have: one feeds the projector handler, one the trigger handler.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from histolabel.config import Settings, get_settings
from histolabel.localcloud.poller import StreamPoller


def start_pollers(settings: Settings, start_at: str = "TRIM_HORIZON") -> list[StreamPoller]:
    from histolabel.composition import submitter_from_env
    from histolabel.runtime.projector import ProjectorRuntime
    from histolabel.runtime.trigger import TriggerRuntime
    from histolabel.service import HistoLabel

    projector = ProjectorRuntime(HistoLabel.from_env(settings))
    trigger = TriggerRuntime(HistoLabel.from_env(settings), submitter_from_env())
    return [
        StreamPoller(settings, projector.handle, start_at=start_at).start(),
        StreamPoller(settings, trigger.handle, start_at=start_at).start(),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="HistoLabel local runtime (stream pollers)")
    parser.add_argument("--start-at", choices=["TRIM_HORIZON", "LATEST"], default="TRIM_HORIZON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    pollers = start_pollers(get_settings(), args.start_at)
    stop.wait()
    for poller in pollers:
        poller.stop()


if __name__ == "__main__":
    main()
