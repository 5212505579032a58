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


def peak_rss_child(tif: Path) -> float:
    """Ingest `tif` in a fresh process; its peak resident memory in MiB."""
    import subprocess

    code = (
        "import resource, sys, tempfile, zarr; from pathlib import Path; "
        f"sys.path.insert(0, {str(ROOT)!r}); from histolabel.slides.ingest import ingest; "
        "d = tempfile.mkdtemp(); g = zarr.open_group(Path(d) / 'i.zarr', mode='w', zarr_format=3); "
        f"ingest(open({str(tif)!r}, 'rb'), g, 'x'); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def synthetic_slide(path: Path, side: int, texture: object) -> None:
    """A tiled JPEG TIFF of side x side px, written tile by tile from a real slide's texture."""
    import numpy as np
    import tifffile

    tex = np.asarray(texture)
    th, tw = tex.shape[0] // 512 * 512, tex.shape[1] // 512 * 512

    def tiles():
        for y in range(0, side, 512):
            for x in range(0, side, 512):
                yield tex[(y % th) : (y % th) + 512, (x % tw) : (x % tw) + 512]

    tifffile.imwrite(
        path,
        tiles(),
        shape=(side, side, 3),
        dtype="uint8",
        tile=(512, 512),
        photometric="rgb",
        compression="jpeg",
        bigtiff=True,
    )


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
    if not args.quick:
        import tifffile

        texture = tifffile.imread(SLIDES / "tcga-cr-7395-01a-01-ts1.svs")
        with tempfile.TemporaryDirectory() as tmp:
            peaks = []
            for side in (8192, 16384):
                tif = Path(tmp) / f"synthetic-{side}.tif"
                synthetic_slide(tif, side, texture)
                peaks.append(peak_rss_child(tif))
                print(
                    f"synthetic {side}x{side} ({side * side / 1e6:.0f} MP): peak {peaks[-1]:.0f} MiB",
                    flush=True,
                )
                tif.unlink()
        print(f"ingest_peak_mib_67mp: {peaks[0]:.0f}")
        print(f"ingest_peak_mem_ratio_at_4x_image: {peaks[1] / peaks[0]:.3f}")
    print(f"ingest_mpx_per_s: {total_mpx / total_s:.2f}")
    print(f"decode_only_mpx_per_s: {total_mpx / total_decode_s:.2f}")
    print(f"ingest_vs_decode_time_ratio: {total_s / total_decode_s:.2f}")
    print(f"pyramid_to_source_size_ratio: {total_zarr / total_src:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
