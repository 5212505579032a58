// The superpixel overlay: label chunks (uint32 ids) of the level that matches the zoom,
// coloured client-side through the LUT in lut.js and composited on a canvas above the viewer.
import { readRegion } from "./pyramid.js";
import { boundaryIndex, chunkNeedsPaint, packRGBA, paintChunk, uniqueIds } from "./lut.js";

const OSD = window.OpenSeadragon;
const RETRY_MS = 3000;
const HIGHLIGHT = packRGBA(255, 212, 0, 255); // the chosen superpixel's ring: no category uses it

function holds(unique, id) {
  let lo = 0, hi = unique.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (unique[mid] === id) return true;
    if (unique[mid] < id) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

// A two-pixel ring on the outline of superpixel `id` in one painted chunk.
function ringChunk(chunk, id) {
  const { ids, w, boundary, out32 } = chunk;
  for (let j = 0; j < boundary.length; j++) {
    const i = boundary[j];
    const x = i % w;
    const right = x + 1 < w ? ids[i + 1] : -1;
    const below = ids[i + w];
    if (ids[i] !== id && right !== id && below !== id) continue;
    out32[i] = HIGHLIGHT;
    if (x + 1 < w) out32[i + 1] = HIGHLIGHT;
    if (i + w < ids.length) out32[i + w] = HIGHLIGHT;
  }
}

export class Overlay {
  constructor(viewer, labels, colours) {
    this.viewer = viewer;
    this.labels = labels; // {levels: [{array, width, height, chunkW, chunkH, factor}]}
    this.colours = colours;
    this.opacity = 0.6;
    this.showBoundaries = true;
    this.visible = true;
    this.chunks = new Map(); // "level/cy/cx" -> chunk
    this.loading = new Map();
    this.failed = new Map(); // key -> time of the last failure (retried after RETRY_MS)
    this.canvas = document.createElement("canvas");
    this.canvas.className = "overlay-canvas";
    this.canvas.setAttribute("aria-hidden", "true");
    viewer.canvas.appendChild(this.canvas);
    this.ctx = this.canvas.getContext("2d");
    this.frame = 0;
    this.highlighted = 0;
    const redraw = () => this.requestDraw();
    viewer.addHandler("update-viewport", redraw);
    viewer.addHandler("resize", redraw);
    viewer.addHandler("open", redraw);
  }

  requestDraw() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  // The coarsest label level still at least ~1 screen px per label px.
  levelForZoom() {
    const zoom = this.viewer.viewport.viewportToImageZoom(this.viewer.viewport.getZoom(true));
    const levels = this.labels.levels;
    let best = 0;
    for (let k = 0; k < levels.length; k++) if (levels[k].factor * zoom <= 1.5) best = k;
    return best;
  }

  visibleChunks(k) {
    const level = this.labels.levels[k];
    const vp = this.viewer.viewport;
    const b = vp.viewportToImageRectangle(vp.getBounds(true));
    const f = level.factor;
    const cx0 = Math.max(0, Math.floor(b.x / f / level.chunkW));
    const cy0 = Math.max(0, Math.floor(b.y / f / level.chunkH));
    const cx1 = Math.min(Math.ceil(level.width / level.chunkW) - 1, Math.floor((b.x + b.width) / f / level.chunkW));
    const cy1 = Math.min(Math.ceil(level.height / level.chunkH) - 1, Math.floor((b.y + b.height) / f / level.chunkH));
    const out = [];
    for (let cy = cy0; cy <= cy1; cy++) for (let cx = cx0; cx <= cx1; cx++) out.push([k, cy, cx]);
    return out;
  }

  chunk(k, cy, cx) {
    const key = `${k}/${cy}/${cx}`;
    const hit = this.chunks.get(key);
    if (hit) return hit;
    const failedAt = this.failed.get(key);
    if (failedAt && performance.now() - failedAt < RETRY_MS) return null;
    if (!this.loading.has(key)) {
      const p = this.load(k, cy, cx, key);
      p.catch((err) => {
        this.failed.set(key, performance.now());
        console.warn(`label chunk ${key}: ${err && err.message ? err.message : err}`);
      });
      this.loading.set(key, p);
    }
    return null;
  }

  async load(k, cy, cx, key) {
    const level = this.labels.levels[k];
    const y0 = cy * level.chunkH;
    const x0 = cx * level.chunkW;
    const h = Math.min(level.chunkH, level.height - y0);
    const w = Math.min(level.chunkW, level.width - x0);
    try {
      const region = await readRegion(level, y0, x0, h, w);
      const chunk = makeChunk(new Uint32Array(region.data.buffer, region.data.byteOffset, h * w), w, h);
      Object.assign(chunk, { k, y0, x0, factor: level.factor });
      this.paint(chunk);
      this.chunks.set(key, chunk);
      this.failed.delete(key);
      this.requestDraw();
      return chunk;
    } finally {
      this.loading.delete(key);
    }
  }

  async chunkAsync(k, cy, cx) {
    return this.chunk(k, cy, cx) || this.loading.get(`${k}/${cy}/${cx}`);
  }

  paint(chunk) {
    paintChunk(chunk.out32, chunk.ids, this.colours.lut, chunk.boundary, this.showBoundaries);
    if (this.highlighted && holds(chunk.unique, this.highlighted)) ringChunk(chunk, this.highlighted);
    chunk.ctx.putImageData(chunk.image, 0, 0);
  }

  // Ring the chosen superpixel (0: none), repainting only the chunks that show it.
  highlight(id) {
    const old = this.highlighted;
    this.highlighted = id || 0;
    if (old === this.highlighted) return;
    for (const chunk of this.chunks.values()) {
      if ((old && holds(chunk.unique, old)) || (this.highlighted && holds(chunk.unique, this.highlighted))) this.paint(chunk);
    }
    this.draw();
  }

  // After a LUT change: repaint only the chunks holding a changed id, then composite once.
  recolour() {
    const { changed } = this.colours;
    let painted = 0;
    for (const chunk of this.chunks.values()) {
      if (chunkNeedsPaint(chunk.unique, changed)) {
        this.paint(chunk);
        painted++;
      }
    }
    this.colours.clearChanged();
    this.draw();
    return painted;
  }

  repaintAll() {
    for (const chunk of this.chunks.values()) this.paint(chunk);
    this.colours.clearChanged();
    this.draw();
  }

  draw() {
    const el = this.viewer.canvas;
    const dpr = window.devicePixelRatio || 1;
    const W = Math.round(el.clientWidth * dpr);
    const H = Math.round(el.clientHeight * dpr);
    if (this.canvas.width !== W || this.canvas.height !== H) {
      this.canvas.width = W;
      this.canvas.height = H;
    }
    const ctx = this.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, W, H);
    if (!this.visible || !this.viewer.world.getItemCount()) return;
    ctx.globalAlpha = this.opacity;
    ctx.imageSmoothingEnabled = false;
    const k = this.levelForZoom();
    const vp = this.viewer.viewport;
    for (const [lk, cy, cx] of this.visibleChunks(k)) {
      let chunk = this.chunk(lk, cy, cx);
      if (!chunk) chunk = this.coarserCover(lk, cy, cx);
      if (!chunk) continue;
      const f = chunk.factor;
      const tl = vp.imageToViewerElementCoordinates(new OSD.Point(chunk.x0 * f, chunk.y0 * f));
      const br = vp.imageToViewerElementCoordinates(
        new OSD.Point((chunk.x0 + chunk.w) * f, (chunk.y0 + chunk.h) * f),
      );
      ctx.drawImage(chunk.canvas, tl.x * dpr, tl.y * dpr, (br.x - tl.x) * dpr, (br.y - tl.y) * dpr);
    }
  }

  coarserCover(k, cy, cx) {
    const levels = this.labels.levels;
    const f = levels[k].factor;
    for (let j = k + 1; j < levels.length; j++) {
      const l = levels[j];
      const ratio = l.factor / f;
      const c = this.chunks.get(`${j}/${Math.floor((cy * levels[k].chunkH) / ratio / l.chunkH)}/${Math.floor((cx * levels[k].chunkW) / ratio / l.chunkW)}`);
      if (c) return c;
    }
    return null;
  }

  // Superpixel id at a level-0 image point (reads the finest level; fetches its chunk if needed).
  async idAt(x, y) {
    const level = this.labels.levels[0];
    const lx = Math.floor(x / level.factor);
    const ly = Math.floor(y / level.factor);
    if (lx < 0 || ly < 0 || lx >= level.width || ly >= level.height) return 0;
    const chunk = await this.chunkAsync(0, Math.floor(ly / level.chunkH), Math.floor(lx / level.chunkW));
    if (!chunk) return 0;
    return chunk.ids[(ly - chunk.y0) * chunk.w + (lx - chunk.x0)];
  }

  // Level-0 box (y0, x0, y1, x1) of a superpixel, found in the coarsest level that shows it.
  async findBox(id) {
    const levels = this.labels.levels;
    for (let k = levels.length - 1; k >= 0; k--) {
      const level = levels[k];
      if (level.width * level.height > 4096 * 4096) break;
      if (!this.whole) this.whole = new Map();
      if (!this.whole.has(k)) this.whole.set(k, readRegion(level, 0, 0, level.height, level.width));
      const { data } = await this.whole.get(k);
      let y0 = Infinity, x0 = Infinity, y1 = -1, x1 = -1;
      for (let i = 0; i < data.length; i++) {
        if (data[i] !== id) continue;
        const y = Math.floor(i / level.width), x = i - y * level.width;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
      }
      if (y1 >= 0) {
        const f = level.factor;
        return [y0 * f, x0 * f, (y1 + 1) * f, (x1 + 1) * f];
      }
    }
    return null;
  }

  // Ids inside a circle (level-0 centre and radius), read from the level on screen.
  idsInCircle(x, y, r) {
    const k = this.levelForZoom();
    const level = this.labels.levels[k];
    const f = level.factor;
    const found = new Set();
    const lx0 = Math.max(0, Math.floor((x - r) / f));
    const lx1 = Math.min(level.width - 1, Math.ceil((x + r) / f));
    const ly0 = Math.max(0, Math.floor((y - r) / f));
    const ly1 = Math.min(level.height - 1, Math.ceil((y + r) / f));
    const rr = (r / f) ** 2;
    const step = Math.max(1, Math.floor((lx1 - lx0) / 64));
    for (let ly = ly0; ly <= ly1; ly += step) {
      for (let lx = lx0; lx <= lx1; lx += step) {
        if ((lx - x / f) ** 2 + (ly - y / f) ** 2 > rr) continue;
        const chunk = this.chunks.get(`${k}/${Math.floor(ly / level.chunkH)}/${Math.floor(lx / level.chunkW)}`);
        if (!chunk) continue;
        const id = chunk.ids[(ly - chunk.y0) * chunk.w + (lx - chunk.x0)];
        if (id) found.add(id);
      }
    }
    return found;
  }
}

export function makeChunk(ids, w, h) {
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(w, h);
  return {
    ids, w, h, canvas, ctx, image,
    out32: new Uint32Array(image.data.buffer),
    boundary: boundaryIndex(ids, w, h),
    unique: uniqueIds(ids),
  };
}
