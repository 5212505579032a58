"""Overlay recolouring at 200,000 superpixels in headless Chromium, against a trivial canvas fill.

Run: python bench/web_overlay.py [--quick] [--superpixels N]. Serves the repository over a
local static server, opens bench/web_overlay/index.html (which imports the app's own
web/js/lut.js and overlay.js) and prints the page's medians and their ratios to the fill.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from histolabel.localcloud.chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from histolabel.localcloud.webserver import start  # noqa: E402

FRAME_MS = 1000 / 60


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (well under a minute)")
    parser.add_argument("--superpixels", type=int, default=200_000)
    args = parser.parse_args(argv)
    if args.superpixels < 1 or args.superpixels > 5_000_000:
        parser.exit(2, "error: --superpixels must be between 1 and 5,000,000\n")
    if not Path(CHROMIUM).exists():
        parser.exit(2, f"error: {CHROMIUM} is missing (install Debian's chromium)\n")
    from playwright.sync_api import sync_playwright

    repeats = 10 if args.quick else 40
    server = start({}, root=ROOT)
    try:
        with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 800}
            )
            page = context.new_page()
            query = f"superpixels={args.superpixels}&repeats={repeats}"
            url = f"{server.url}/bench/web_overlay/index.html?{query}"
            page.goto(url)
            page.wait_for_function("window.__result !== undefined", timeout=120_000)
            result = page.evaluate("window.__result")
            context.close()
    finally:
        server.stop()
    if "error" in result:
        print(f"benchmark page failed: {result['error']}", file=sys.stderr)
        return 1
    fill = max(result["fill_ms"], 1e-3)
    print(f"superpixels {result['superpixels']}, {result['chunks']} chunks of 256 px on a 1280x720 canvas")
    print(f"{'case':<34}{'median ms':>10}{'x fill':>9}")
    for name, key in [
        ("trivial canvas fill (baseline)", "fill_ms"),
        ("one label change + composite", "one_label_ms"),
        ("10k labels change + composite", "bulk_10k_ms"),
        ("all recoloured (new model)", "all_recolour_ms"),
        ("LUT rebuild only", "lut_rebuild_ms"),
    ]:
        print(f"{name:<34}{result[key]:>10.2f}{result[key] / fill:>9.1f}")
    print(f"fill_ms: {result['fill_ms']:.3f}")
    print(f"one_label_recolour_ms: {result['one_label_ms']:.3f}")
    print(f"bulk_10k_recolour_ms: {result['bulk_10k_ms']:.3f}")
    print(f"all_recolour_ms: {result['all_recolour_ms']:.3f}")
    print(f"one_label_vs_fill: {result['one_label_ms'] / fill:.2f}")
    print(f"all_recolour_vs_fill: {result['all_recolour_ms'] / fill:.2f}")
    print(f"all_recolour_within_frame: {result['all_recolour_ms'] < FRAME_MS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
