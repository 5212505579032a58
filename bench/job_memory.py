"""Peak memory of the predict and train jobs against the number of slides (issue 16: memory
bounded per child, independent of the slide count).

A consortium of N slides x M superpixels from the scale generator (bench/scale_data.py: real
SLIC tables tiled, clustered labels from 8 annotators, projections rebuilt) in the local cloud,
each slide given FeaturesCompleted vectors: the real crop's handcrafted features tiled with a
little per-slide noise. Each job is started as the local job runner starts it (`python -m
gpu_jobs.<job> ...` with the runner's environment) and its peak RSS read from the kernel when it
ends (os.wait4's ru_maxrss). The baseline in the same run is the jobs as they were before
streaming (commit BASELINE, read with git), on the same project; and the interpreter with the
jobs' imports only.

    python bench/job_memory.py [--quick] [--slides 10,100] [--superpixels 10000] [--labels 500]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions"), str(ROOT / "bench")]

BASELINE = "03b94c5"  # the jobs before predict streamed its slides


def peak_mb(command: list[str], log: Path) -> tuple[float, float, int]:
    """(peak RSS in MiB, seconds, exit code) of one child process, as the job runner starts it."""
    from histolabel.config import ALLOW_CPU

    env = {**os.environ, "AWS_BATCH_JOB_ID": f"bench-{uuid.uuid4().hex[:8]}", ALLOW_CPU: "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "functions"), env.get("PYTHONPATH", "")])
    t0 = time.perf_counter()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024, time.perf_counter() - t0, proc.returncode


def base_features() -> np.ndarray:
    """The scale generator's real crop, its handcrafted vectors (row i = base superpixel i+1)."""
    import tifffile
    from scale_data import BASE_SIDE, SOURCE, base_tile

    from histolabel.learning.features import handcrafted

    with tifffile.TiffFile(SOURCE) as tif:
        rgb = tif.pages[0].asarray()
    y0, x0 = (rgb.shape[0] - BASE_SIDE) // 2, (rgb.shape[1] - BASE_SIDE) // 2
    crop = np.ascontiguousarray(rgb[y0 : y0 + BASE_SIDE, x0 : x0 + BASE_SIDE, :3])
    base = base_tile()
    return handcrafted(crop, base.labels, base.count)


def write_features(svc: Any, made: Any, seed: int = 0) -> int:
    """FeaturesCompleted for every slide: the base vectors tiled to M rows, jittered per slide."""
    from histolabel.adapters import artifacts

    base = base_features()
    spread = base.std(axis=0) * 0.1
    reps = -(-made.superpixels // base.shape[0])
    tiled = np.tile(base, (reps, 1))[: made.superpixels]
    rng = np.random.default_rng(seed)
    for sid in made.slides:
        x = (tiled + rng.normal(size=tiled.shape) * spread).astype(np.float32)
        uri = artifacts.features_uri(made.project_id, sid, "handcrafted")
        artifacts.write_features(uri, x)
        data = {"slide_id": sid, "kind": "handcrafted", "uri": uri, "dim": int(x.shape[1])}
        svc.record_job_event(made.project_id, "FeaturesCompleted", data, "embed")
    return int(base.shape[1])


def baseline_jobs(folder: Path) -> Path | None:
    """The BASELINE commit's gpu_jobs/{predict,train}.py as scripts, or None without git."""
    folder.mkdir(parents=True, exist_ok=True)
    for job in ("predict", "train"):
        got = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{BASELINE}:gpu_jobs/{job}.py"], capture_output=True, text=True
        )
        if got.returncode != 0:
            return None
        # The old train job predicted in-process through gpu_jobs.predict; it runs with --no-predict.
        (folder / f"{job}_old.py").write_text(got.stdout)
    return folder


def measure(
    svc: Any, slides: int, superpixels: int, labels: int, old: Path | None, logs: Path, old_train: bool = True
) -> dict[str, float]:
    from scale_data import generate

    from histolabel.commands import ChangeSettings
    from histolabel.events.catalogue import Actor, ProjectSettings
    from histolabel.learning import defaults

    t0 = time.perf_counter()
    # The same number of labels at every slide count: training's own cost grows with the labels
    # (more epochs, another hold-out rule), which is not what this measures.
    made = generate(svc, slides, superpixels, labeled=labels / (slides * superpixels), predictions=False)
    owner = Actor(user=made.owner, site="hq")
    # BatchBALD: the metric whose joint acquisition spans every slide.
    settings = ProjectSettings(certainty_metric="batchbald", feature_kind="handcrafted", model_kind="linear")
    svc.execute(ChangeSettings(project_id=made.project_id, settings=settings), owner)
    dim = write_features(svc, made)
    gen = time.perf_counter() - t0
    svc.request_training(made.project_id, owner)
    state = svc.project_state(made.project_id)
    request = next(r for r, run in state.training.items() if run.status == "requested")
    py, pid = sys.executable, made.project_id
    out: dict[str, float] = {}
    runs = {
        "train": [py, "-m", "gpu_jobs.train", "--project", pid, "--request", request, "--no-predict",
                  "--progress", "off"],
        "predict": [py, "-m", "gpu_jobs.predict", "--project", pid, "--progress", "off"],
    }  # fmt: skip
    if old is not None:  # after the new jobs: the model they made; no events, so nothing moves
        if old_train:
            runs["train_old"] = [py, str(old / "train_old.py"), "--project", pid, "--request", request,
                                 "--no-predict", "--no-events", "--progress", "off"]  # fmt: skip
        runs["predict_old"] = [
            py,
            str(old / "predict_old.py"),
            "--project",
            pid,
            "--no-events",
            "--progress",
            "off",
        ]
    for name, command in runs.items():
        mb, secs, code = peak_mb(command, logs / f"{name}_{slides}.log")
        if code != 0:
            raise RuntimeError(
                f"{name} at {slides} slides exited {code}: see {logs / f'{name}_{slides}.log'}"
            )
        out[f"{name}_peak_mb"], out[f"{name}_s"] = mb, secs
    samples, classes = defaults.ACQUISITION.mc_samples, 3
    out["mc_all_mb"] = slides * samples * superpixels * classes * 4 / 2**20
    out["features_mb"] = slides * superpixels * dim * 4 / 2**20
    print(
        f"{slides} slides x {superpixels} superpixels ({made.labels} labels, {dim}-d features, generated in "
        f"{gen:.0f} s): " + ", ".join(f"{k} {v:.1f}" for k, v in out.items()),
        flush=True,
    )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="3 and 12 slides x 1000 superpixels, 200 labels, no old train job",
    )
    ap.add_argument("--slides", default="10,100", help="two slide counts, the smaller first")
    ap.add_argument("--superpixels", type=int, default=10_000)
    ap.add_argument("--labels", type=int, default=500, help="labels in all, spread over the slides")
    ap.add_argument("--no-old", action="store_true", help="skip the baseline jobs (commit BASELINE)")
    args = ap.parse_args(argv)
    try:
        counts = [int(v) for v in ("3,12" if args.quick else args.slides).split(",")]
    except ValueError:
        counts = []
    superpixels, labels = (1000, 200) if args.quick else (args.superpixels, args.labels)
    if (
        len(counts) != 2
        or not 0 < counts[0] < counts[1]
        or superpixels < 1
        or not 0 < labels <= counts[0] * superpixels
    ):
        print(
            "error: --slides takes two slide counts, the smaller first (e.g. 10,100); --superpixels and"
            " --labels must be positive, and the labels fit the smaller project",
            file=sys.stderr,
        )
        return 2

    from scale_data import local_cloud

    logs = Path(tempfile.mkdtemp(prefix="job_memory_"))
    old = None if args.no_old else baseline_jobs(logs / "old")
    imports = "import gpu_jobs.predict, gpu_jobs.train, torch, zarr, s3fs"
    floor, _, _ = peak_mb([sys.executable, "-c", imports], logs / "floor.log")
    figures = {}
    with local_cloud("jobmem") as svc:
        for n in counts:
            # --quick leaves out the old train job (its change is the read, not what it holds).
            figures[n] = measure(svc, n, superpixels, labels, old, logs, old_train=not args.quick)
    a, b = counts
    print(f"import_floor_mb: {floor:.1f}")
    print(f"superpixels_per_slide: {superpixels}")
    print(f"labels: {labels}")
    olds = [] if old is None else ["predict_old"] if args.quick else ["predict_old", "train_old"]
    jobs = ["predict", "train", *olds]
    for job in jobs:
        pa_, pb = figures[a][f"{job}_peak_mb"], figures[b][f"{job}_peak_mb"]
        print(f"{job}_peak_mb_{a}: {pa_:.1f}")
        print(f"{job}_peak_mb_{b}: {pb:.1f}")
        print(f"{job}_peak_ratio_{b}_vs_{a}: {pb / pa_:.3f}")
        print(f"{job}_peak_mb_per_slide: {(pb - pa_) / (b - a):.3f}")
        print(f"{job}_s_{b}: {figures[b][f'{job}_s']:.1f}")
    if old is not None:
        for job in ("predict",) if args.quick else ("predict", "train"):
            new, was = figures[b][f"{job}_peak_mb"], figures[b][f"{job}_old_peak_mb"]
            print(f"{job}_peak_vs_old_{b}: {new / was:.3f}")
    # What the old predict job's mc_all held at the end of its MC pass (samples x n x 3 float32).
    print(f"mc_all_mb_{a}: {figures[a]['mc_all_mb']:.1f}")
    print(f"mc_all_mb_{b}: {figures[b]['mc_all_mb']:.1f}")
    print(f"features_mb_{b}: {figures[b]['features_mb']:.1f}")
    if old is None:
        print("baseline_jobs: unavailable (no git checkout of the baseline commit)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
