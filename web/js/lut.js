// Superpixel colouring: one packed RGBA value per superpixel id, applied to label chunks with
// a single typed-array lookup per pixel. Opacity is applied when compositing, so moving the
// slider never recolours anything.

const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export function packRGBA(r, g, b, a = 255) {
  return littleEndian ? ((a << 24) | (b << 16) | (g << 8) | r) >>> 0 : ((r << 24) | (g << 16) | (b << 8) | a) >>> 0;
}

export function hexToRGB(hex) {
  const h = hex.replace("#", "");
  return [parseInt(h.slice(0, 2), 16), parseInt(h.slice(2, 4), 16), parseInt(h.slice(4, 6), 16)];
}

export const BOUNDARY = packRGBA(255, 255, 255, 170);
export const PREDICTION_ALPHA = 120; // predictions are fainter than labels (and drawn without the label ring)
export const LABEL_ALPHA = 230;

// Per-superpixel state (category index 0 = none) and the LUT derived from it.
export class SuperpixelColours {
  constructor(count, categories = []) {
    this.resize(count);
    this.setCategories(categories);
    this.showLabels = true;
    this.showPredictions = true;
  }

  resize(count) {
    const old = this.label;
    this.count = count;
    this.label = new Uint16Array(count + 1);
    this.prediction = new Uint16Array(count + 1);
    this.lut = new Uint32Array(count + 1);
    this.changed = new Uint8Array(count + 1);
    if (old) this.label.set(old.subarray(0, Math.min(old.length, count + 1)));
  }

  // categories: [{id, color}] in display order; index i+1 stands for categories[i].
  setCategories(categories) {
    this.categories = categories;
    this.index = new Map(categories.map((c, i) => [c.id, i + 1]));
    this.labelColour = new Uint32Array(categories.length + 1);
    this.predColour = new Uint32Array(categories.length + 1);
    categories.forEach((c, i) => {
      const [r, g, b] = hexToRGB(c.color);
      this.labelColour[i + 1] = packRGBA(r, g, b, LABEL_ALPHA);
      this.predColour[i + 1] = packRGBA(r, g, b, PREDICTION_ALPHA);
    });
  }

  colourOf(id) {
    const l = this.showLabels ? this.label[id] : 0;
    if (l) return this.labelColour[l];
    const p = this.showPredictions ? this.prediction[id] : 0;
    return p ? this.predColour[p] : 0;
  }

  rebuild() {
    const { lut } = this;
    for (let id = 1; id < lut.length; id++) lut[id] = this.colourOf(id);
    this.changed.fill(1);
    return lut.length - 1;
  }

  // Set labels of `ids` to category id `cat` (null = unlabel); returns how many changed colour.
  setLabels(ids, cat) {
    const v = cat == null ? 0 : this.index.get(cat) || 0;
    let n = 0;
    for (const id of ids) {
      if (id <= 0 || id > this.count) continue;
      this.label[id] = v;
      const c = this.colourOf(id);
      if (c !== this.lut[id]) {
        this.lut[id] = c;
        this.changed[id] = 1;
        n++;
      }
    }
    return n;
  }

  setPredictions(ids, cats) {
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id > 0 && id <= this.count) this.prediction[id] = this.index.get(cats[i]) || 0;
    }
    return this.rebuild();
  }

  clearChanged() {
    this.changed.fill(0);
  }

  counts() {
    const counts = new Uint32Array(this.categories.length + 1);
    for (let id = 1; id <= this.count; id++) counts[this.label[id]]++;
    return counts;
  }
}

// Boundary mask of one label chunk: a pixel whose right or lower neighbour has another id.
export function boundaryIndex(ids, w, h) {
  const out = [];
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let x = 0; x < w; x++) {
      const i = row + x;
      const v = ids[i];
      if ((x + 1 < w && ids[i + 1] !== v) || (y + 1 < h && ids[i + w] !== v)) out.push(i);
    }
  }
  return Uint32Array.from(out);
}

// Unique ids of a chunk (sorted), so a label change recolours only the chunks that show it.
export function uniqueIds(ids) {
  const sorted = Uint32Array.from(ids).sort();
  let n = 0;
  for (let i = 0; i < sorted.length; i++) if (i === 0 || sorted[i] !== sorted[i - 1]) sorted[n++] = sorted[i];
  return sorted.slice(0, n);
}

// Recolour one chunk's pixels from the LUT (the hot loop measured by bench/web_overlay).
export function paintChunk(out32, ids, lut, boundary, showBoundaries) {
  const n = ids.length;
  for (let i = 0; i < n; i++) out32[i] = lut[ids[i]];
  if (showBoundaries && boundary) for (let j = 0; j < boundary.length; j++) {
    const i = boundary[j];
    if (ids[i] !== 0) out32[i] = BOUNDARY;
  }
}

export function chunkNeedsPaint(unique, changed) {
  for (let i = 0; i < unique.length; i++) if (changed[unique[i]]) return true;
  return false;
}
