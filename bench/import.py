"""Importing a segmentation of N nuclei: time, peak memory and MB/s, as N grows 10x.

    python bench/import.py [--quick] [--objects 1000000]

Writes a QuPath-style GeoJSON FeatureCollection of N 12-gon nuclei (radius 5 px, on a 14 px
grid over the slide they fill), then runs the import job's own pipeline on it — streamed
read, geometry checks, spool, block rasterising, the segment job's table rows (spooled) and
label pyramid writer — into a local zarr store (S3 transfer is left out: it is the same for SLIC).
Each size runs in a fresh process so peaks do not mix. The baseline is the same pipeline at
N/10 objects on the same slide (spread further apart) in the same run; memory should stay flat
while time grows: `memory_growth_ratio` is the peak at N over the baseline's,
`bytes_per_object_growth` the slope between them.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPACING, RADIUS = 14, 5


def slide_side(n: int) -> int:
    """The side (px) of the square slide that N nuclei fill on the 14 px grid."""
    return math.ceil(math.sqrt(n)) * SPACING


def write_geojson(path: Path, n: int, side_px: int) -> tuple[int, int]:
    """N nuclei on a square grid over a side_px slide (14 px apart when it is N's own slide,
    further apart on a larger one), written a feature at a time; returns the slide's (h, w)."""
    side = math.ceil(math.sqrt(n))
    step = side_px / side
    ring = [
        (RADIUS * math.cos(2 * math.pi * k / 12), RADIUS * math.sin(2 * math.pi * k / 12)) for k in range(12)
    ]
    with path.open("w") as fh:
        fh.write('{"type": "FeatureCollection", "features": [')
        for i in range(n):
            cy, cx = (i // side) * step + step / 2, (i % side) * step + step / 2
            coords = [[round(cx + x, 2), round(cy + y, 2)] for x, y in ring]
            coords.append(coords[0])
            cls = (
                {"name": "Tumor", "color": [200, 0, 0]} if i % 3 else {"name": "Stroma", "color": [0, 150, 0]}
            )
            feature = {
                "type": "Feature",
                "id": f"cell-{i}",
                "geometry": {"type": "Polygon", "coordinates": [coords]},
                "properties": {"objectType": "detection", "classification": cls},
            }
            fh.write(("," if i else "") + json.dumps(feature, separators=(",", ":")))
        fh.write("]}")
    return side_px, side_px


def run_one(path: Path, h: int, w: int) -> dict[str, float]:
    """The import pipeline on one file (this process only); prints its figures as JSON."""
    import pyarrow.parquet as pq
    import zarr

    from gpu_jobs.import_segmentation import TableFile, values_at
    from histolabel.imports import rasterize
    from histolabel.imports.objects import Tally, clean
    from histolabel.imports.polygons import read_objects
    from histolabel.imports.spool import Spool
    from histolabel.segmentation.output import create_label_pyramid, publish_pyramid

    tmp = Path(tempfile.mkdtemp(prefix="bench-import-"))
    t0 = time.perf_counter()
    tally = Tally()
    spool = Spool(tmp, 1, (h, w))
    with path.open("rb") as fh:
        for obj in read_objects(fh, path.name):
            geom = clean(obj, w, h, False, tally)
            spool.add(obj, geom)
    spool.close()
    t_read = time.perf_counter() - t0
    image = zarr.open_group(zarr.storage.LocalStore(tmp / "image.zarr"), mode="w")
    image.create_group("labels")
    create_label_pyramid(image, h, w)
    level0 = image["labels/superpixels/0"]

    def sink(y: int, x: int, ids: object) -> None:
        level0[0, y : y + ids.shape[0], x : x + ids.shape[1]] = ids  # type: ignore[attr-defined]

    def read_back(y0: int, x0: int, y1: int, x1: int) -> object:
        return level0[0, y0:y1, x0:x1]

    table_file = TableFile(tmp / "superpixels.parquet")
    pick = values_at(spool.external_ids())
    drawn = rasterize.rasterize(spool, (h, w), 0, sink, read_back, None,  # type: ignore[arg-type]
                                lambda ids: {"external_id": pick(ids)}, table_file)  # fmt: skip
    table_file.close()
    rows = pq.ParquetFile(table_file.path).metadata.num_rows
    publish_pyramid(image, h, w, drawn.count, 0, None, {"source": "import"})
    seconds = time.perf_counter() - t0
    assert rows == drawn.count == len(spool), (rows, drawn.count)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = usage.ru_maxrss / 1024  # KiB on Linux
    cpu = usage.ru_utime + usage.ru_stime  # the machine is shared: CPU time is the steadier figure
    return {"objects": drawn.count, "seconds": seconds, "cpu_s": cpu, "read_s": t_read, "peak_mib": peak,
            "mb": path.stat().st_size / 1e6, "px": h * w}  # fmt: skip


def measure(n: int, workdir: Path, side_px: int) -> dict[str, float]:
    path = workdir / f"nuclei-{n}.geojson"
    h, w = write_geojson(path, n, side_px)
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(path), str(h), str(w)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    path.unlink()
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def sci(n: int) -> str:
    """1000000 -> '1e6', 30000 -> '3e4' (for the names of the printed lines)."""
    m, e = f"{n:.0e}".split("e")
    return f"{m}e{int(e)}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="10^5 objects against 10^4 (under a minute of CPU)")
    p.add_argument("--objects", type=int, default=1_000_000)
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(run_one(Path(args.child[0]), int(args.child[1]), int(args.child[2]))))
        return 0
    n = 100_000 if args.quick else args.objects
    # Both counts on the one slide N nuclei fill: what is held per block of pixels (a block's
    # ids and sums, the downsampling threads' windows) is then the same in both runs, and the
    # difference in peak memory is what the objects cost.
    n_base = n // 10
    side = slide_side(n)
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        base = measure(n_base, Path(tmp), side)
        big = measure(n, Path(tmp), side)
    for label, r in (("baseline", base), ("import", big)):
        print(f"{label}: {r['objects']:.0f} objects, {r['mb']:.0f} MB GeoJSON, {r['px'] / 1e6:.0f} Mpx: "
              f"{r['seconds']:.1f} s wall ({r['read_s']:.1f} s reading), {r['cpu_s']:.1f} s CPU, "
              f"{r['mb'] / r['seconds']:.1f} MB/s, "
              f"{r['objects'] / r['seconds']:.0f} objects/s, peak {r['peak_mib']:.0f} MiB")  # fmt: skip
    growth = (big["peak_mib"] - base["peak_mib"]) * 2**20 / (big["objects"] - base["objects"])
    print(f"objects: {big['objects']:.0f}")
    print(f"seconds: {big['seconds']:.1f}")
    print(f"cpu_seconds: {big['cpu_s']:.1f}")
    print(f"mb_per_s: {big['mb'] / big['seconds']:.2f}")
    print(f"mb_per_cpu_s: {big['mb'] / big['cpu_s']:.2f}")
    print(f"objects_per_s: {big['objects'] / big['seconds']:.0f}")
    print(f"peak_mib: {big['peak_mib']:.0f}")
    print(f"peak_mib_{sci(n_base)}: {base['peak_mib']:.0f}")
    print(f"peak_mib_{sci(n)}: {big['peak_mib']:.0f}")
    print(f"memory_growth_ratio: {big['peak_mib'] / base['peak_mib']:.2f}")
    print(f"bytes_per_object_growth: {growth:.1f}")
    print(f"time_ratio_vs_baseline: {big['seconds'] / base['seconds']:.2f}")
    print(f"cpu_ratio_vs_baseline: {big['cpu_s'] / base['cpu_s']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
