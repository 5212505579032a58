"""Runs one Lambda handler the way the Lambda runtime does, in its own interpreter started
with `python -S -I` (no site-packages, no PYTHONPATH): sys.path is the folders given on the
command line (the function's artifact, then the runtime's boto3 or the image's packages),
the environment is the deployed function's. Reads one JSON event per stdin line, writes one
JSON line per answer: {"result": ...} or {"error": "..."}.

    python -S -I lambda_host.py HANDLER PATH [PATH ...]
"""

import importlib
import json
import sys
import traceback
import uuid


class Context:
    function_name = "parity"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:parity"
    log_group_name = "/aws/lambda/parity"
    log_stream_name = "parity"

    def __init__(self):
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self):
        return 60_000


def main():
    handler_name, paths = sys.argv[1], sys.argv[2:]
    sys.path[:0] = paths
    module, attr = handler_name.rsplit(".", 1)
    handler = getattr(importlib.import_module(module), attr)
    out = sys.stdout
    sys.stdout = sys.stderr  # the handler's prints go to the log, not into the answers
    out.write(json.dumps({"ready": sorted({m.split(".")[0] for m in sys.modules})}) + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            answer = {"result": handler(json.loads(line), Context())}
        except Exception as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-3000:]}
        out.write(json.dumps(answer, default=str) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
