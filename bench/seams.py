"""Do tile edges show in the tiled segmentation? Share of superpixel boundary on tile lines.

    python bench/seams.py [--quick] [--slide PATH] [--size 32] [--kernel numba|skimage]

Runs the product's tiled SLIC (`histolabel.segmentation.tiled.segment`, one worker) and one
untiled SLIC of the same kernel with the same parameters on the same real tissue (skimage's with
the tissue as its mask; the numba kernel has no mask, and edges off tissue are not counted
either way), then measures, for
each, the share of boundary edges (neighbouring pixels with different ids) that lie on the
tiled run's tile lines (between rows/columns k*tile - 1 and k*tile). The untiled run gives
the chance level of boundary on those lines; seams that show push the tiled share above it.
Also prints the longest straight run of boundary along a tile line, in superpixel sides (a
superpixel that ends on a long straight line along a tile edge is what a user sees).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SLIDE = ROOT.parent / "shared" / "data" / "slides" / "tcga-cr-7395-01a-01-ts1.svs"


def boundary_on_lines(labels: np.ndarray, tile: int, tissue: np.ndarray) -> tuple[float, int]:
    """(share of boundary edges on tile lines, longest run of boundary along one line), counting
    only edges between two tissue pixels (the job leaves background unsegmented)."""
    # the edge between row y-1 and y sits at index y-1
    horizontal = (labels[1:, :] != labels[:-1, :]) & tissue[1:, :] & tissue[:-1, :]
    vertical = (labels[:, 1:] != labels[:, :-1]) & tissue[:, 1:] & tissue[:, :-1]
    lines_y = np.arange(tile, labels.shape[0], tile) - 1
    lines_x = np.arange(tile, labels.shape[1], tile) - 1
    on = int(horizontal[lines_y].sum() + vertical[:, lines_x].sum())
    total = int(horizontal.sum() + vertical.sum())
    longest = 0
    for row in [*horizontal[lines_y], *vertical[:, lines_x].T]:
        padded = np.concatenate([[0], row.astype(np.int8), [0]])
        starts, ends = np.flatnonzero(np.diff(padded) == 1), np.flatnonzero(np.diff(padded) == -1)
        if len(starts):
            longest = max(longest, int((ends - starts).max()))
    return on / max(total, 1), longest


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a small region (under a minute)")
    p.add_argument("--slide", type=Path, default=DEFAULT_SLIDE)
    p.add_argument("--size", type=int, default=32, help="superpixel side in px")
    sys.path.insert(0, str(ROOT))
    from histolabel.segmentation.kernel import DEFAULT_KERNEL, KERNELS
    from histolabel.segmentation.kernel import slic as kernel_slic

    p.add_argument("--kernel", choices=KERNELS, default=DEFAULT_KERNEL, help="SLIC kernel, tiled and untiled")
    args = p.parse_args()
    import tifffile
    from skimage.segmentation import slic

    from histolabel.segmentation.tiled import ArrayWindow, ScaledMask, SlicParams, segment
    from histolabel.slides.tissue import tissue_mask

    full = np.asarray(tifffile.imread(args.slide))
    region = full[:1024, :1536] if args.quick else full[:3072, :3072]
    params = SlicParams(
        args.size, 10.0, tile=12 * args.size if args.quick else 24 * args.size, kernel=args.kernel
    )
    h, w = region.shape[:2]
    # the tissue mask as the segment job uses it: found on a 4x smaller image, read back scaled
    small = tissue_mask(region[::4, ::4])
    mask = ScaledMask(small, 4.0)
    tissue = mask(0, 0, h, w)
    with tempfile.TemporaryDirectory() as work:
        tiled = np.zeros((h, w), np.uint32)

        def sink(y: int, x: int, ids: np.ndarray) -> None:
            tiled[y : y + ids.shape[0], x : x + ids.shape[1]] = ids

        segment(ArrayWindow(region), (h, w), params, mask, workers=1, workdir=Path(work), sink=sink)
    if args.kernel == "skimage":
        untiled = slic(
            region,
            mask=tissue,
            n_segments=h * w // args.size**2,
            compactness=10.0,
            start_label=1,
            channel_axis=-1,
            enforce_connectivity=True,
        )
    else:
        untiled = kernel_slic(region, h * w // args.size**2, 10.0, kernel=args.kernel)
    tile = params.tile_px
    share_t, run_t = boundary_on_lines(tiled, tile, tissue)
    share_u, run_u = boundary_on_lines(untiled, tile, tissue)
    print(
        f"region {h}x{w} ({tissue.mean():.0%} tissue), tile {tile} px, superpixel side {args.size} px, "
        f"{args.kernel} kernel"
    )
    print(f"tiled:   {share_t:.4f} of boundary on tile lines, longest straight run {run_t} px")
    print(f"untiled: {share_u:.4f} of boundary on the same lines, longest straight run {run_u} px")
    print(f"seam_share_tiled: {share_t:.4f}")
    print(f"seam_share_untiled: {share_u:.4f}")
    print(f"seam_share_ratio: {share_t / max(share_u, 1e-9):.2f}")
    print(f"seam_longest_run_sides: {run_t / args.size:.2f}")
    print(f"untiled_longest_run_sides: {run_u / args.size:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
