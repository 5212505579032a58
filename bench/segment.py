"""Tiled SLIC vs one monolithic skimage.segmentation.slic call, on the same slide region.

    python bench/segment.py [--quick] [--slide PATH] [--size 32] [--kernel numba|skimage]

Prints the tiled overhead with one worker (time ratio vs the monolithic call), the
speed-up with all cores vs one (also on 4x the area, where fixed costs weigh less), and peak
memory (resident set, parent plus workers) as the image grows 4x. Every measurement runs in a
fresh process so peaks do not mix. The monolithic call and the tiles use the same SLIC kernel
(`--kernel`); with the numba kernel, skimage's monolithic and all-core tiled runs are measured
too, as the baseline of the kernel's speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SLIDE = ROOT.parent / "shared" / "data" / "slides" / "tcga-cr-7395-01a-01-ts1.svs"


class PeakRSS:
    """Samples the resident memory of this process and all its descendants (workers)."""

    def __init__(self, interval: float = 0.05) -> None:
        import threading

        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.peak = max(self.peak, tree_rss(os.getpid()))


def tree_rss(root: int) -> int:
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as f:
                rss[int(entry)] = int(f.read().split()[1]) * page
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
    total, frontier = 0, [root]
    while frontier:
        pid = frontier.pop()
        total += rss.get(pid, 0)
        frontier.extend(p for p, parent in parents.items() if parent == pid)
    return total


def _discard(y: int, x: int, ids: np.ndarray) -> None:
    """A block sink that keeps nothing (the monolithic baseline writes nothing either)."""


def _child(
    kind: str, npy: str, size: int, tile: int, workers: int, sample: bool, kernel: str
) -> dict[str, float]:
    """One measurement in this (fresh) process. Memory sampling scans /proc and costs CPU, so
    timed runs go without it and memory is measured in runs of its own."""
    from histolabel.segmentation.kernel import slic
    from histolabel.segmentation.tiled import NpyWindow, SlicParams, segment

    shape = np.load(npy, mmap_mode="r").shape
    sampler = PeakRSS().__enter__() if sample else None
    t0, c0 = time.perf_counter(), time.process_time()
    if kind == "mono":
        image = np.load(npy)
        labels = slic(image, shape[0] * shape[1] // size**2, 10.0, kernel=kernel)  # type: ignore[arg-type]
        count = int(labels.max())
    else:
        with tempfile.TemporaryDirectory() as work:
            # assemble the dense labels too (in the workers), as the job does
            result = segment(
                NpyWindow(npy),
                shape[:2],
                SlicParams(size, 10.0, tile=tile, kernel=kernel),  # type: ignore[arg-type]
                workers=workers,
                workdir=Path(work),
                sink=_discard,
            )
            count = result.count
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = 0
    if sampler is not None:
        sampler.__exit__()
        peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, sampler.peak)
    return {"seconds": seconds, "peak_mib": peak / 2**20, "count": count, "cpu": cpu}


def measure(
    kind: str, npy: Path, size: int, tile: int, workers: int, sample: bool = False, kernel: str = "numba"
) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            kind,
            str(npy),
            str(size),
            str(tile),
            str(workers),
            str(int(sample)),
            kernel,
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def machine_parallel_capacity(cores: int, n: int = 10_000_000) -> float:
    """How much faster `cores` CPU-bound processes finish the same work than one does, now.

    On a shared machine this is often well below `cores`; the tiled speed-up cannot beat it.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(cores) as pool:
        pool.map(_burn, [1000] * cores)  # start the workers before timing
        t0 = time.perf_counter()
        pool.map(_burn, [n])
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        pool.map(_burn, [n] * cores, chunksize=1)
        many = time.perf_counter() - t0
    return cores * one / many


def best(repeat: int, *args: object) -> dict[str, float]:
    """The fastest of `repeat` runs (other load only ever slows a run down)."""
    runs = [measure(*args) for _ in range(max(1, repeat))]  # type: ignore[arg-type]
    return min(runs, key=lambda r: r["seconds"])


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, npy, size, tile, workers, sample, kernel = sys.argv[2:9]
        print(json.dumps(_child(kind, npy, int(size), int(tile), int(workers), sample == "1", kernel)))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a small region (under a minute)")
    p.add_argument("--slide", type=Path, default=DEFAULT_SLIDE)
    p.add_argument("--size", type=int, default=32, help="superpixel side in px")
    p.add_argument("--tile", type=int, default=0, help="tile core side (0: 24 superpixels)")
    p.add_argument("--repeat", type=int, default=2, help="runs of each timing, best kept (shared machines)")
    p.add_argument("--kernel", choices=("numba", "skimage"), default="numba", help="SLIC kernel")
    args = p.parse_args()
    k = args.kernel
    import tifffile

    sys.path.insert(0, str(ROOT))
    full = np.asarray(tifffile.imread(args.slide))
    cores = os.cpu_count() or 1
    if args.quick:
        region = full[:1024, :1536]
        tile = args.tile or 384
    else:
        region = full
        tile = args.tile or 24 * args.size
    # 4x the area: the region and its mirror images, so tiles stay real tissue
    big = np.concatenate(
        [np.concatenate([region, region[:, ::-1]], 1), np.concatenate([region[::-1], region[::-1, ::-1]], 1)],
        0,
    )
    with tempfile.TemporaryDirectory() as tmp:
        small_npy, big_npy = Path(tmp) / "region.npy", Path(tmp) / "region4.npy"
        np.save(small_npy, region)
        np.save(big_npy, big)
        del full, big
        mpx = region.shape[0] * region.shape[1] / 1e6
        print(
            f"region {region.shape[1]}x{region.shape[0]} ({mpx:.1f} MP) of {args.slide.name}, "
            f"superpixel {args.size} px, tile {tile} px, {cores} cores",
            flush=True,
        )
        mono = best(args.repeat, "mono", small_npy, args.size, tile, 1, False, k)
        print(f"monolithic slic ({k}): {mono['seconds']:.2f} s, {mono['count']} superpixels", flush=True)
        one = best(args.repeat, "tiled", small_npy, args.size, tile, 1, False, k)
        print(f"tiled, 1 worker : {one['seconds']:.2f} s, {one['count']} superpixels", flush=True)
        allc = best(args.repeat, "tiled", small_npy, args.size, tile, cores, False, k)
        capacity = machine_parallel_capacity(cores)
        print(f"tiled, {cores} workers: {allc['seconds']:.2f} s", flush=True)
        big_speedup = None
        if not args.quick:
            # The pool's start and the last round of each tile phase are fixed costs that a
            # whole slide (gigapixels) spreads thin; the same tiles on 4x the area show that.
            big_one = measure("tiled", big_npy, args.size, tile, 1, False, k)
            big_all = measure("tiled", big_npy, args.size, tile, cores, False, k)
            big_speedup = big_one["seconds"] / big_all["seconds"]
            print(
                f"4x the image: tiled 1 worker {big_one['seconds']:.2f} s, "
                f"{cores} workers {big_all['seconds']:.2f} s",
                flush=True,
            )
        base_mono = base_all = None
        if k != "skimage":
            base_mono = best(args.repeat, "mono", small_npy, args.size, tile, 1, False, "skimage")
            base_all = best(args.repeat, "tiled", small_npy, args.size, tile, cores, False, "skimage")
            print(
                f"skimage baseline: monolithic {base_mono['seconds']:.2f} s, {base_mono['count']} "
                f"superpixels; tiled, {cores} workers {base_all['seconds']:.2f} s, "
                f"{base_all['count']} superpixels",
                flush=True,
            )
        mono_mem = measure("mono", small_npy, args.size, tile, 1, True, k)
        small_mem = measure("tiled", small_npy, args.size, tile, cores, True, k)
        big_mem = measure("tiled", big_npy, args.size, tile, cores, True, k)
        print(
            f"peak memory: monolithic {mono_mem['peak_mib']:.0f} MiB, tiled {small_mem['peak_mib']:.0f} MiB, "
            f"tiled at 4x the image {big_mem['peak_mib']:.0f} MiB",
            flush=True,
        )
    print(f"mono_mpx_per_s: {mpx / mono['seconds']:.3f}")
    print(f"tiled_1worker_mpx_per_s: {mpx / one['seconds']:.3f}")
    print(f"tiled_all_cores_mpx_per_s: {mpx / allc['seconds']:.3f}")
    print(f"overhead_ratio: {one['seconds'] / mono['seconds']:.3f}")
    # CPU seconds of this process: less sensitive to other load on a shared machine
    print(f"overhead_ratio_cpu: {one['cpu'] / mono['cpu']:.3f}")
    print(f"speedup_all_cores: {one['seconds'] / allc['seconds']:.3f}")
    if base_mono is not None and base_all is not None:
        print(f"skimage_mono_mpx_per_s: {mpx / base_mono['seconds']:.3f}")
        print(f"skimage_tiled_all_cores_mpx_per_s: {mpx / base_all['seconds']:.3f}")
        print(f"mono_speedup_vs_skimage: {base_mono['seconds'] / mono['seconds']:.3f}")
        print(f"tiled_all_cores_speedup_vs_skimage: {base_all['seconds'] / allc['seconds']:.3f}")
        print(f"count_ratio_vs_skimage_tiled: {allc['count'] / base_all['count']:.3f}")
    if big_speedup is not None:
        print(f"speedup_all_cores_4x_image: {big_speedup:.3f}")
    # what a perfectly parallel CPU-bound job achieved on this machine at the same time
    print(f"machine_parallel_capacity: {capacity:.3f}")
    print(f"speedup_vs_capacity: {one['seconds'] / allc['seconds'] / capacity:.3f}")
    print(f"peak_mem_ratio_at_4x_image: {big_mem['peak_mib'] / small_mem['peak_mib']:.3f}")
    print(f"load_average_1min: {os.getloadavg()[0]:.2f}")
    print(f"mono_peak_mib: {mono_mem['peak_mib']:.0f}")
    print(f"tiled_peak_mib: {small_mem['peak_mib']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
