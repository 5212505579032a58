"""moto's standalone server, with DynamoDB requests serialized.

moto's DynamoDB backend checks conditions and writes without a lock, so two threads of the
threaded server can both pass `attribute_not_exists` on the same key. Real DynamoDB makes each
conditional write atomic; serializing DynamoDB calls gives the emulator the same guarantee.
"""

from __future__ import annotations

import argparse
import logging
import threading
from typing import Any

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

from histolabel.localcloud import moto_patches

MOTO_CONFIG = {"lambda": {"use_docker": False}, "batch": {"use_docker": False}}


class SerializeDynamoDB:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        # DynamoDB_20120810.*, not DynamoDBStreams_20120810.*: stream reads only slice the
        # shard's append-only record list.
        if target.startswith("DynamoDB_"):
            with self.lock:
                # Drain the body inside the lock so the whole response is produced atomically.
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="HistoLabel local cloud (moto server)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    args = parser.parse_args(argv)
    moto_patches.apply()
    # A line per request was a twentieth of the server's time under a job's chunk reads.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        SerializeDynamoDB(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
