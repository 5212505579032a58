// OpenSeadragon reading the OME-Zarr pyramid directly: each OSD tile is one 256 px zarr chunk
// (the writer's chunk size), decoded in the browser; no tile server in between.
import { readRegion, planarToImageData } from "./pyramid.js";

const OSD = window.OpenSeadragon;

function zarrTileSource(image) {
  const tile = image.levels[0].chunkW;
  const n = image.levels.length;
  const maxLevel = Math.ceil(Math.log2(Math.max(image.width, image.height)));
  const source = new OSD.TileSource({
    width: image.width,
    height: image.height,
    tileSize: tile,
    tileOverlap: 0,
    minLevel: Math.max(0, maxLevel - (n - 1)),
    maxLevel,
  });
  source.getTileUrl = (level, x, y) => `zarr://${level}/${x}/${y}`;
  source.getTilePostData = (level, x, y) => ({ level, x, y });
  source.downloadTileStart = (job) => {
    const { level, x, y } = job.postData;
    const zl = image.levels[maxLevel - level];
    if (!zl) return job.fail(`no pyramid level for OSD level ${level}`);
    const y0 = y * tile;
    const x0 = x * tile;
    const h = Math.min(tile, zl.height - y0);
    const w = Math.min(tile, zl.width - x0);
    const controller = new AbortController();
    job.userData = { controller };
    readRegion(zl, y0, x0, h, w, controller.signal)
      .then((chunk) => {
        const canvas = document.createElement("canvas");
        canvas.width = w;
        canvas.height = h;
        const ctx = canvas.getContext("2d");
        ctx.putImageData(planarToImageData(chunk.data, h, w), 0, 0);
        job.finish(ctx, null, "context2d");
      })
      .catch((err) => job.fail(String(err && err.message ? err.message : err)));
  };
  source.downloadTileAbort = (job) => job.userData && job.userData.controller.abort();
  return source;
}

export function createViewer(element, image, { onFirstDraw } = {}) {
  const viewer = OSD({
    element,
    tileSources: zarrTileSource(image),
    prefixUrl: "vendor/images/",
    showNavigationControl: false,
    drawer: "canvas",
    animationTime: 0.4,
    gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: false }, // clicks label; repeated clicks must not zoom
    imageLoaderLimit: 8,
    maxZoomPixelRatio: 4,
    visibilityRatio: 0.5,
    crossOriginPolicy: false,
  });
  const started = performance.now();
  let reported = false;
  viewer.addHandler("tile-drawn", () => {}); // keep OSD emitting per-tile events
  viewer.world.addHandler("add-item", (ev) => {
    ev.item.addHandler("fully-loaded-change", (e) => {
      if (e.fullyLoaded && !reported) {
        reported = true;
        const ms = performance.now() - started;
        window.__firstViewportMs = ms;
        if (onFirstDraw) onFirstDraw(ms);
      }
    });
  });
  return viewer;
}

// Level-0 image pixel under a point of the viewer element.
export function imagePointAt(viewer, clientX, clientY) {
  const rect = viewer.element.getBoundingClientRect();
  const p = new OSD.Point(clientX - rect.left, clientY - rect.top);
  return viewer.viewport.viewerElementToImageCoordinates(p);
}

// Fit a level-0 box (y0, x0, y1, x1) with a margin, never past native resolution: a small
// superpixel is shown at 1 image px per screen px, not magnified into blur.
export function zoomToBox(viewer, [y0, x0, y1, x1], margin = 3) {
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  const rect0 = viewer.element.getBoundingClientRect();
  const native = Math.min(rect0.width || 0, rect0.height || 0);
  const side = Math.max(Math.max(x1 - x0, y1 - y0, 32) * margin, native);
  const rect = viewer.viewport.imageToViewportRectangle(cx - side / 2, cy - side / 2, side, side);
  viewer.viewport.fitBounds(rect, false);
}
