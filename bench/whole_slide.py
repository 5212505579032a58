"""One whole slide of real tissue through ingest -> segment -> embed, as the job runner starts them.

    python bench/whole_slide.py [--quick] [--workers 1,2] [--segment-workers N]
        [--stages ingest,segment,embed] [--before DIR]

The slide: a pyramidal tiled JPEG TIFF (0.5 gigapixel; --quick 31 MP) mosaicked from the
shared H&E slides' real 1024 px regions (tissue windows >= 70% tissue, glass windows from the
same slides' background, each turned or flipped), laid out as tissue islands on glass (about
half tissue, as a real slide), cached under bench/out/whole_slide/.

The stages: a local cloud (the moto server the tests use) is started and provisioned, the slide
uploaded and registered, and each stage runs as the local job runner runs it: `python -m
gpu_jobs.<stage>` with the arguments the pipeline gives it (histolabel.pipeline.slide_job_args)
and the job's vCPUs declared in HISTOLABEL_JOB_VCPUS (1, 2, ...), so the S3 emulator's costs are
in the numbers, as the process start and imports are. The S3 emulator runs on the same cores
(about 7 of ingest's 24 CPU seconds), so ingest is also timed through the same writer (`ingest()`) on a
local zarr store (`ingest_local_*`). For every stage and worker count: seconds, megapixels/s,
items/s, CPU seconds (the job and the pool processes it waited for: on a loaded machine the
wall-clock speed-up hides what the code does, CPU seconds do not) and the peak resident memory
of the job's process tree (sampled every 0.2 s), then the speed-up of the largest worker count
over the smallest. Segment (the SLIC kernel has its own bench/segment.py) runs once, at the
largest worker count, unless --segment-workers lists more.

Baselines measured in the same run: ingest against decoding the source alone in one thread (the
floor bench/ingest.py uses); segment against skimage's SLIC on one untiled 2048 px tissue
region in this process; embed against the per-pixel filters of one 2048 px tile in one thread.
With --before DIR (a checkout of an earlier commit, e.g. `git archive 0f24933 | tar -x -C DIR`),
ingest and embed also run from that code at the largest worker count, and `<stage>_vs_before`
(`_cpu_vs_before`) is the wall-clock (CPU-time) speed-up over it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SLIDES = ROOT.parent / "shared" / "data" / "slides"
OUT = ROOT / "bench" / "out" / "whole_slide"
CELL = 1024  # side of one real region in the mosaic
GLASS = 256  # side of the tissue-free patches a glass cell is made of
TILE = 512  # the TIFF's tile side
SOURCES = ("tcga-cr-7395-01a-01-ts1.svs", "CMU-1-Small-Region.svs", "pathml_small_dicom.dcm")
STAGES = ("ingest", "segment", "embed")
MPP = 0.5  # 20x, written into the TIFF's resolution tags


# --- the mosaic ---------------------------------------------------------------------------


def real_windows(rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """CELL x CELL regions of the shared H&E slides, read by our reader: (mostly tissue, glass).
    The sources have no CELL-sized window free of tissue, so a glass window is 4 x 4 of their
    GLASS-sized tissue-free patches."""
    from histolabel.slides.readers import open_slide
    from histolabel.slides.tissue import tissue_mask

    tissue: list[np.ndarray] = []
    bare: list[np.ndarray] = []
    for name in SOURCES:  # up to 16 windows of each slide's tissue
        mine: list[np.ndarray] = []
        with open(SLIDES / name, "rb") as fh:
            src = open_slide(fh)
            img = src.read_region(0, 0, src.height, src.width)
        mask = tissue_mask(img[::8, ::8])
        for y in range(0, img.shape[0] - CELL + 1, CELL // 4):
            for x in range(0, img.shape[1] - CELL + 1, CELL // 4):
                win = img[y : y + CELL, x : x + CELL]
                frac = float(mask[y // 8 : (y + CELL) // 8, x // 8 : (x + CELL) // 8].mean())
                # the DICOM's unscanned frames are black, which the tissue mask counts as tissue
                if frac >= 0.7 and (win[::4, ::4].max(axis=-1) < 40).mean() < 0.02:
                    mine.append(np.ascontiguousarray(win))
        for y in range(0, img.shape[0] - GLASS + 1, GLASS // 2):
            for x in range(0, img.shape[1] - GLASS + 1, GLASS // 2):
                if not mask[y // 8 : (y + GLASS) // 8, x // 8 : (x + GLASS) // 8].any():
                    bare.append(np.ascontiguousarray(img[y : y + GLASS, x : x + GLASS]))
        tissue.extend(mine[i] for i in rng.permutation(len(mine))[:16])
    if not tissue or not bare:
        raise SystemExit("the shared slides gave no tissue or no glass windows")
    k = CELL // GLASS
    glass = []
    for _ in range(12):
        picks = [np.rot90(bare[i], int(rng.integers(4))) for i in rng.integers(0, len(bare), k * k)]
        glass.append(
            np.ascontiguousarray(np.block([[[p] for p in picks[r * k : (r + 1) * k]] for r in range(k)]))
        )
    return tissue, glass


def island_layout(rows: int, cols: int, rng: np.random.Generator, cover: float = 0.55) -> np.ndarray:
    """(rows, cols) bool: cells inside a few elliptical tissue islands, about `cover` of them."""
    centres = rng.uniform([0.15, 0.1], [0.85, 0.9], size=(4, 2)) * [rows, cols]
    radii = rng.uniform(0.5, 1.0, size=(4, 2)) * [rows, cols] / 3
    yy, xx = np.mgrid[0:rows, 0:cols] + 0.5
    lo, hi = 0.1, 4.0
    for _ in range(40):  # scale the islands until they cover the share asked
        s = (lo + hi) / 2
        inside = np.zeros((rows, cols), bool)
        for (cy, cx), (ry, rx) in zip(centres, radii, strict=True):
            inside |= ((yy - cy) / (ry * s)) ** 2 + ((xx - cx) / (rx * s)) ** 2 <= 1
        lo, hi = (s, hi) if inside.mean() < cover else (lo, s)
    return inside


@dataclass
class Mosaic:
    """Which real window (and which of its 8 rotations/flips) fills each cell."""

    tissue: list[np.ndarray]
    glass: list[np.ndarray]
    is_tissue: np.ndarray  # (rows, cols) bool
    pick: np.ndarray  # (rows, cols) window index
    turn: np.ndarray  # (rows, cols) 0..7
    cache: dict[tuple[bool, int, int], np.ndarray] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.is_tissue.shape[0] * CELL, self.is_tissue.shape[1] * CELL

    def window(self, tissue: bool, index: int, level: int) -> np.ndarray:
        """A window at pyramid level `level` (2x2 means, as the ingest writer computes them)."""
        from histolabel.slides.pyramid import downsample2

        key = (tissue, index, level)
        if key not in self.cache:
            if level == 0:
                self.cache[key] = (self.tissue if tissue else self.glass)[index]
            else:
                above = np.moveaxis(self.window(tissue, index, level - 1), -1, 0)
                self.cache[key] = np.ascontiguousarray(np.moveaxis(downsample2(above), 0, -1))
        return self.cache[key]

    def cell(self, r: int, c: int, level: int) -> np.ndarray:
        win = self.window(bool(self.is_tissue[r, c]), int(self.pick[r, c]), level)
        t = int(self.turn[r, c])
        win = np.rot90(win, t % 4)
        return win[:, ::-1] if t >= 4 else win

    def region(self, level: int, y: int, x: int, h: int, w: int) -> np.ndarray:
        side = CELL >> level
        out = np.empty((h, w, 3), np.uint8)
        for r in range(y // side, (y + h - 1) // side + 1):
            for c in range(x // side, (x + w - 1) // side + 1):
                cy0, cx0 = max(y, r * side), max(x, c * side)
                cy1, cx1 = min(y + h, (r + 1) * side), min(x + w, (c + 1) * side)
                piece = self.cell(r, c, level)
                out[cy0 - y : cy1 - y, cx0 - x : cx1 - x] = piece[
                    cy0 - r * side : cy1 - r * side, cx0 - c * side : cx1 - c * side
                ]
        return out


def make_mosaic(rows: int, cols: int, seed: int = 7) -> Mosaic:
    rng = np.random.default_rng(seed)
    tissue, glass = real_windows(rng)
    inside = island_layout(rows, cols, rng)
    pick = np.where(
        inside, rng.integers(0, len(tissue), (rows, cols)), rng.integers(0, len(glass), (rows, cols))
    )
    return Mosaic(tissue, glass, inside, pick, rng.integers(0, 8, (rows, cols)))


def write_mosaic_tiff(mosaic: Mosaic, path: Path) -> None:
    """A pyramidal tiled JPEG TIFF: level 0 and its 2x reductions (sub-IFDs) down to <= 1024 px."""
    import tifffile

    height, width = mosaic.shape
    levels = 1
    while max(height >> (levels - 1), width >> (levels - 1)) > 1024 and CELL >> levels >= 1:
        levels += 1

    def tiles(level: int) -> Iterator[np.ndarray]:
        h, w = height >> level, width >> level
        for y in range(0, h, TILE):
            for x in range(0, w, TILE):
                block = np.zeros((TILE, TILE, 3), np.uint8)
                th, tw = min(TILE, h - y), min(TILE, w - x)
                block[:th, :tw] = mosaic.region(level, y, x, th, tw)
                yield block

    tmp = path.with_suffix(".part")
    per_cm = 1e4 / MPP
    with tifffile.TiffWriter(tmp, bigtiff=True) as tif:
        common: dict[str, Any] = {
            "tile": (TILE, TILE),
            "photometric": "rgb",
            "compression": "jpeg",
            "compressionargs": {"level": 85},
            "dtype": "uint8",
            "resolutionunit": "CENTIMETER",
        }
        tif.write(
            tiles(0), shape=(height, width, 3), subifds=levels - 1, resolution=(per_cm, per_cm), **common
        )
        for k in range(1, levels):
            r = per_cm / 2**k
            tif.write(
                tiles(k), shape=(height >> k, width >> k, 3), subfiletype=1, resolution=(r, r), **common
            )
    tmp.rename(path)


def slide_file(quick: bool) -> tuple[Path, float]:
    """The cached mosaic for this size (built once), and its tissue fraction."""
    rows, cols = (5, 6) if quick else (20, 24)
    path = OUT / f"mosaic-{rows * CELL}x{cols * CELL}.tif"
    meta = path.with_suffix(".json")
    if not path.exists() or not meta.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        mosaic = make_mosaic(rows, cols)
        write_mosaic_tiff(mosaic, path)
        low = mosaic.region(4, 0, 0, mosaic.shape[0] >> 4, mosaic.shape[1] >> 4)
        from histolabel.slides.tissue import tissue_mask

        frac = float(tissue_mask(low).mean())
        meta.write_text(json.dumps({"tissue_fraction": frac}))
        print(f"built {path.name} in {time.perf_counter() - t0:.1f} s", flush=True)
    return path, float(json.loads(meta.read_text())["tissue_fraction"])


# --- running a job as the runner does ---------------------------------------------------------


def tree_rss(root: int) -> int:
    """Resident bytes of `root` and all its descendants now."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            pages = int((d / "statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
        rss[int(d.name)] = pages * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


@dataclass
class Run:
    stage: str  # ingest, ingest_local, segment or embed
    workers: int
    before: bool  # run from the --before checkout
    seconds: float
    cpu_seconds: float  # user + system of the process and the children it waited for
    peak_bytes: int
    emulator_cpu_seconds: float  # the S3 emulator's CPU meanwhile (on the same cores)


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU seconds a live process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_process(argv: list[str], workers: int, code: Path, log: Path) -> tuple[float, float, int]:
    """Run `argv` with `code` on the path and `workers` job vCPUs declared, as the runner would;
    (wall seconds, CPU seconds, peak RSS of its process tree)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{code}{os.pathsep}{code / 'functions'}"
    env["HISTOLABEL_JOB_VCPUS"] = str(workers)
    peak = 0
    t0 = time.perf_counter()
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, *argv], cwd=code, env=env, stdout=out, stderr=out)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(0.2):
                peak = max(peak, tree_rss(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} (workers {workers}, code {code}) failed; see {log}")
    return seconds, usage.ru_utime + usage.ru_stime, peak


LOCAL_INGEST = (
    "import sys, zarr; from histolabel.slides.ingest import ingest; "
    "g = zarr.open_group(sys.argv[2], mode='w', zarr_format=3); ingest(open(sys.argv[1], 'rb'), g, 'ws')"
)


# --- baselines in this process ----------------------------------------------------------------


def decode_seconds(path: Path) -> float:
    from histolabel.slides.pyramid import blocks
    from histolabel.slides.readers import open_slide

    with open(path, "rb") as fh:
        t0 = time.perf_counter()
        src = open_slide(fh)
        for y, x, h, w in blocks(src.height, src.width):
            src.read_region(y, x, h, w)
        return time.perf_counter() - t0


def tissue_region(path: Path, side: int = 2048) -> np.ndarray:
    """The most tissue-covered side x side region of level 0 (chosen on a reduced TIFF level)."""
    import tifffile

    from histolabel.slides.readers import open_slide
    from histolabel.slides.tissue import tissue_mask

    with tifffile.TiffFile(path) as tif:
        levels = tif.series[0].levels
        k = min(4, len(levels) - 1)
        low = levels[k].asarray()
    mask, f = tissue_mask(low), 2**k
    s = side // f
    best, where = -1.0, (0, 0)
    for y in range(0, mask.shape[0] - s + 1, s // 2):
        for x in range(0, mask.shape[1] - s + 1, s // 2):
            frac = float(mask[y : y + s, x : x + s].mean())
            if frac > best:
                best, where = frac, (y * f, x * f)
    with open(path, "rb") as fh:
        return open_slide(fh).read_region(*where, side, side)


def slic_mp_per_s(region: np.ndarray, superpixel_size: int, compactness: float) -> float:
    from skimage.segmentation import slic

    n = region.shape[0] * region.shape[1] // (superpixel_size * superpixel_size)
    t0 = time.perf_counter()
    slic(region, n_segments=n, compactness=compactness, start_label=1)
    return region.shape[0] * region.shape[1] / 1e6 / (time.perf_counter() - t0)


def filters_mp_per_s(region: np.ndarray) -> float:
    from histolabel.learning.features import pixel_channels

    t0 = time.perf_counter()
    pixel_channels(region, 0.05)
    return region.shape[0] * region.shape[1] / 1e6 / (time.perf_counter() - t0)


# --- the run ----------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a ~31 MP mosaic (under a minute)")
    p.add_argument("--workers", default="1,2", help="comma-separated job vCPUs (default 1,2)")
    p.add_argument(
        "--stages", default=",".join(STAGES), help="stages to time (segment runs anyway for embed)"
    )
    p.add_argument("--segment-workers", help="job vCPUs for segment (default: the largest of --workers)")
    p.add_argument("--before", type=Path, help="a checkout of earlier code to run each stage from too")
    args = p.parse_args()
    workers = sorted({int(w) for w in args.workers.split(",") if w.strip()})
    stages = [s for s in STAGES if s in args.stages.split(",")]
    if not workers or min(workers) < 1 or not stages:
        p.error("--workers takes positive integers and --stages some of ingest,segment,embed")
    segment_workers = sorted({int(w) for w in (args.segment_workers or str(workers[-1])).split(",")})
    if args.before is not None and not (args.before / "gpu_jobs").is_dir():
        p.error(f"--before {args.before}: not a checkout (no gpu_jobs/)")
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "functions"))

    path, tissue_fraction = slide_file(args.quick)
    load_at_start = os.getloadavg()[1]
    from histolabel.slides.readers import open_slide

    with open(path, "rb") as fh:
        src = open_slide(fh)
        height, width = src.height, src.width
    mp = height * width / 1e6
    print(f"slide {path.name}: {width}x{height} = {mp:.1f} MP, {tissue_fraction:.0%} tissue", flush=True)

    from histolabel.adapters.provision import provision
    from histolabel.adapters.s3 import filesystem
    from histolabel.commands import CreateProject, RegisterSlide
    from histolabel.composition import service_from_env
    from histolabel.config import Settings, get_settings, settings_from_env
    from histolabel.events.catalogue import Actor
    from histolabel.localcloud.stack import local_environment, start_server
    from histolabel.pipeline import slide_job_args
    from histolabel.slides.pyramid import SHARD, level_shapes

    work = Path(tempfile.mkdtemp(prefix="whole-slide-"))
    log = work / "jobs.log"
    server = start_server(log_path=work / "moto.log")
    results: list[Run] = []
    try:
        os.environ.update(local_environment(server.endpoint, Settings(stage="bench")))
        os.environ["HISTOLABEL_LOCAL_DIR"] = str(work)
        get_settings.cache_clear()
        settings = settings_from_env()
        provision(settings)
        svc = service_from_env(settings)
        owner = Actor(user="bench-owner", site="bench")
        project = "wsbench"
        svc.execute(CreateProject(project_id=project, name="whole slide"), owner)
        source = f"s3://{settings.data_bucket}/projects/{project}/slides/ws/source/{path.name}"
        filesystem(settings).put_file(str(path), source[5:])
        svc.execute(RegisterSlide(project_id=project, slide_id="ws", name="whole", source_uri=source), owner)

        plan = [(w, False) for w in workers]
        if args.before is not None:
            plan = [(workers[-1], True), *plan]
        for stage in STAGES:
            if stage not in stages:
                runs = [(workers[-1], False)]
            elif stage == "segment":
                runs = [(w, False) for w in segment_workers]
            else:
                runs = plan
            for w, before in runs:
                code = args.before.resolve() if before else ROOT
                job_args = slide_job_args(stage, svc.project_state(project), "ws")  # type: ignore[arg-type]
                timed = [(stage, ["-m", f"gpu_jobs.{stage}", *job_args])]
                if stage == "ingest":  # the same writer on a local store: no S3 emulator
                    timed.append(("ingest_local", ["-c", LOCAL_INGEST, str(path), str(work / "local.zarr")]))
                for name, argv in timed:
                    emulator0 = cpu_seconds_of(server.pid)
                    timed_run = run_process(argv, w, code, log)
                    run = Run(name, w, before, *timed_run, cpu_seconds_of(server.pid) - emulator0)
                    results.append(run)
                    shutil.rmtree(work / "local.zarr", ignore_errors=True)
                    print(
                        f"  {name:12s} workers {w} ({'before' if before else 'this code'}): "
                        f"{run.seconds:7.1f} s  {mp / run.seconds:6.2f} MP/s  cpu {run.cpu_seconds:7.1f} s  "
                        f"(emulator {run.emulator_cpu_seconds:5.1f} s)  "
                        f"peak {run.peak_bytes / 2**20:6.0f} MiB",
                        flush=True,
                    )
        state = svc.project_state(project).slides["ws"]
        count = int(state.segmentation["count"]) if state.segmentation else 0
    finally:
        server.stop()

    shards = sum(-(-h // SHARD) * -(-w // SHARD) for h, w in level_shapes(height, width))
    items = {"ingest": shards, "segment": count, "embed": count}
    unit = {"ingest": "shards", "segment": "superpixels", "embed": "superpixels"}
    print(f"superpixels: {count}; pyramid shards: {shards}")

    decode_s = decode_seconds(path)
    region = tissue_region(path)
    slic_rate = slic_mp_per_s(region, 64, 10.0)
    filter_rate = filters_mp_per_s(region)
    floor = {"ingest": mp / decode_s, "segment": slic_rate, "embed": filter_rate}
    floor_name = {"ingest": "decode_only", "segment": "untiled_slic_1core", "embed": "filters_1thread"}

    lines: list[tuple[str, float]] = [
        ("cpus", float(os.cpu_count() or 1)),
        ("load_average_at_start", load_at_start),
        ("load_average_at_end", os.getloadavg()[1]),  # 5 min: other work on these cores
        ("slide_megapixels", mp),
        ("tissue_fraction", tissue_fraction),
        ("superpixels", float(count)),
    ]
    floor["ingest_local"], floor_name["ingest_local"] = floor["ingest"], floor_name["ingest"]
    items["ingest_local"], unit["ingest_local"] = items["ingest"], unit["ingest"]
    for stage in [k for k in ("ingest", "ingest_local", "segment", "embed") if k.split("_")[0] in stages]:
        mine = {r.workers: r for r in results if r.stage == stage and not r.before}
        counts = sorted(mine)
        best = mine[counts[-1]]
        for w in counts:
            r = mine[w]
            lines.append((f"{stage}_seconds_{w}w", r.seconds))
            lines.append((f"{stage}_cpu_seconds_{w}w", r.cpu_seconds))
            lines.append((f"{stage}_emulator_cpu_seconds_{w}w", r.emulator_cpu_seconds))
            lines.append((f"{stage}_peak_mib_{w}w", r.peak_bytes / 2**20))
        lines.append((f"{stage}_mp_per_s", mp / best.seconds))
        lines.append((f"{stage}_{unit[stage]}_per_s", items[stage] / best.seconds))
        lines.append((f"{stage}_mp_per_cpu_s", mp / best.cpu_seconds))
        lines.append((f"{stage}_peak_mib", best.peak_bytes / 2**20))
        if len(counts) > 1:
            lines.append(
                (f"{stage}_speedup_{counts[-1]}_vs_{counts[0]}", mine[counts[0]].seconds / best.seconds)
            )
        lines.append((f"{stage}_vs_{floor_name[stage]}", (mp / best.seconds) / floor[stage]))
        prior = [r for r in results if r.stage == stage and r.before]
        if prior:
            lines.append((f"{stage}_seconds_before", prior[0].seconds))
            lines.append((f"{stage}_cpu_seconds_before", prior[0].cpu_seconds))
            lines.append((f"{stage}_peak_mib_before", prior[0].peak_bytes / 2**20))
            lines.append((f"{stage}_vs_before", prior[0].seconds / best.seconds))
            lines.append((f"{stage}_cpu_vs_before", prior[0].cpu_seconds / best.cpu_seconds))
    for stage in stages:
        lines.append((f"{floor_name[stage]}_mp_per_s", floor[stage]))
    for name, value in lines:
        print(f"{name}: {value:.3f}" if not float(value).is_integer() else f"{name}: {int(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
