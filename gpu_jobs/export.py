"""Export job: a project's labels and predictions as GeoJSON (superpixel outlines), CSV or
Parquet, written to the data bucket for a download link (histolabel/exports.py). The API
starts it for exports too large for a request (POST .../exports) and serves the link.

    python -m gpu_jobs.export --project P [--format geojson|csv|parquet] [--slide S] [--anonymize]
        [--workers N]

Writes projects/{P}/exports/jobs/{job id}/{P}.{format} and progress.json beside it (job id:
AWS_BATCH_JOB_ID, as Batch and the local runner set it; --job-id outside them). Outlines are
traced by N processes (default: the job's vCPUs, histolabel/cpus.py).
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from typing import Any

from gpu_jobs.common import JobError, parser, record_failure, run
from histolabel.composition import service_from_env


def main(argv: Sequence[str] | None = None) -> int:
    from histolabel.exports import FORMATS

    p = parser("export", "Export a project's labels and predictions to a file in the data bucket.")
    p.add_argument("--format", choices=sorted(FORMATS), default="geojson")
    p.add_argument("--anonymize", action="store_true", help="pseudonyms instead of user ids")
    p.add_argument("--workers", type=int, help="outline processes (default: the job's vCPUs)")
    p.add_argument("--job-id", help="where to write, outside Batch (default: AWS_BATCH_JOB_ID)")
    args = p.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        p.error("--workers must be at least 1")
    job_id = args.job_id or os.environ.get("AWS_BATCH_JOB_ID") or f"cli-{uuid.uuid4().hex[:12]}"
    try:
        out = export(args.project, args.format, job_id, slide=args.slide, anonymize=args.anonymize,
                     workers=args.workers)  # fmt: skip
    except JobError as exc:
        if not args.no_events:
            record_failure(args.project, "export", args.slide, str(exc))
        raise
    print(
        f"export {args.format}: {out['rows']} rows, {out['bytes']} bytes "
        f"in {out['seconds']:.1f} s -> {out['key']}"
    )
    return 0


def export(
    project_id: str, fmt: str, job_id: str, *, slide: str | None, anonymize: bool, workers: int | None
) -> dict[str, Any]:
    from histolabel import confinement
    from histolabel.adapters import exports as files
    from histolabel.adapters.pyramids import read_table
    from histolabel.config import get_settings
    from histolabel.cpus import available_cpus
    from histolabel.exports import FORMATS, PROGRESS, export_filename, export_prefix, export_project

    settings = get_settings()
    svc = service_from_env()
    if not svc.project_state(project_id).exists:
        raise JobError(f"project {project_id!r} does not exist")

    def own(uri: str) -> str:
        if not confinement.in_project(uri, project_id, settings):
            raise JobError(f"the project's state names {uri}, outside project {project_id!r}")
        return uri

    prefix = export_prefix(project_id, job_id)
    filename = export_filename(project_id, fmt)
    key = f"{prefix}/{filename}"
    last = [0.0]

    def report(progress: dict[str, Any]) -> None:
        if time.time() - last[0] >= 2 or progress["slides_done"] == progress["slides"]:
            last[0] = time.time()
            files.put_json(f"{prefix}/{PROGRESS}", {**progress, "key": key})

    t0 = time.perf_counter()
    workdir = tempfile.mkdtemp(prefix="histolabel-export-")
    try:
        try:
            path, progress = export_project(
                svc, project_id, fmt, slide=slide, anonymize=anonymize, own=own, read_table=read_table,
                report=report, workers=workers or available_cpus(), workdir=workdir,
            )  # fmt: skip
        except ValueError as exc:
            raise JobError(str(exc)) from None
        files.put_file(path, key, FORMATS[fmt], filename)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    # CPU seconds of the job and its outline processes: what the work costs, whatever the host's load.
    own_use, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = own_use.ru_utime + own_use.ru_stime + children.ru_utime + children.ru_stime
    progress = {**progress, "state": "done", "key": key, "seconds": time.perf_counter() - t0, "cpu_s": cpu_s}
    files.put_json(f"{prefix}/{PROGRESS}", progress)
    return progress


if __name__ == "__main__":
    sys.exit(run(main))
