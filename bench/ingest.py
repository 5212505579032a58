"""Ingest throughput and storage: every shared slide into an OME-Zarr pyramid.

    python bench/ingest.py [--quick]

Writes through the same zarr code path as the job, to a local zarr store (so S3 emulator
latency does not hide decode and compression cost), and compares against a baseline in
the same run: decoding the source alone (tifffile / pydicom frames / PNG), i.e. the floor.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLIDES = ROOT.parent / "shared" / "data" / "slides"


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="only the two smallest slides")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    import zarr

    from histolabel.slides.ingest import ingest
    from histolabel.slides.pyramid import blocks
    from histolabel.slides.readers import open_slide

    files = sorted(SLIDES.iterdir(), key=lambda f: f.stat().st_size)
    if args.quick:
        files = files[:3]
    total_mpx = total_s = total_decode_s = 0.0
    total_src = total_zarr = 0
    for path in files:
        with open(path, "rb") as fh:
            t0 = time.perf_counter()
            src = open_slide(fh)
            for y, x, h, w in blocks(src.height, src.width):
                src.read_region(y, x, h, w)
            decode_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp, open(path, "rb") as fh:
            group = zarr.open_group(Path(tmp) / "image.ome.zarr", mode="w", zarr_format=3)
            t0 = time.perf_counter()
            result = ingest(fh, group, path.stem)
            seconds = time.perf_counter() - t0
            size = dir_size(Path(tmp) / "image.ome.zarr")
        mpx = result.width * result.height / 1e6
        src_bytes = path.stat().st_size
        print(
            f"{path.name:32s} {result.format:8s} {mpx:6.1f} MP {result.levels} levels  "
            f"{mpx / seconds:6.1f} MP/s (decode only {mpx / decode_s:6.1f})  size x{size / src_bytes:5.2f}"
        )
        total_mpx += mpx
        total_s += seconds
        total_decode_s += decode_s
        total_src += src_bytes
        total_zarr += size
    print(f"ingest_mpx_per_s: {total_mpx / total_s:.2f}")
    print(f"decode_only_mpx_per_s: {total_mpx / total_decode_s:.2f}")
    print(f"ingest_vs_decode_time_ratio: {total_s / total_decode_s:.2f}")
    print(f"pyramid_to_source_size_ratio: {total_zarr / total_src:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
