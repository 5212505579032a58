// Overlay recolouring at 200,000 superpixels, against a trivial full-canvas fill measured in the
// same page. Uses the app's own modules (web/js/lut.js, web/js/overlay.js).
import { SuperpixelColours } from "../../web/js/lut.js";
import { makeChunk } from "../../web/js/overlay.js";
import { paintChunk, chunkNeedsPaint } from "../../web/js/lut.js";

const params = new URLSearchParams(location.search);
const N = Number(params.get("superpixels") || 200000);
const REPEATS = Number(params.get("repeats") || 30);
const W = 1280, H = 720, CHUNK = 256, CELL = 4;
const screen = document.getElementById("screen");
const ctx = screen.getContext("2d");

// Label image covering the screen with N ids in jittered 4x4-ish cells (ids repeat past N).
function makeChunks() {
  const cols = Math.ceil(W / CHUNK), rows = Math.ceil(H / CHUNK);
  const side = Math.ceil(Math.sqrt(N * CELL * CELL));
  const cells = Math.ceil(side / CELL);
  const span = Math.ceil(Math.sqrt(N));
  const chunks = [];
  for (let cy = 0; cy < rows; cy++) for (let cx = 0; cx < cols; cx++) {
    const ids = new Uint32Array(CHUNK * CHUNK);
    for (let y = 0; y < CHUNK; y++) for (let x = 0; x < CHUNK; x++) {
      // map screen pixels onto a virtual label image holding all N ids
      const gx = Math.floor(((cx * CHUNK + x) * cells) / W);
      const gy = Math.floor(((cy * CHUNK + y) * cells) / H);
      ids[y * CHUNK + x] = ((gy * span + gx) % N) + 1;
    }
    const c = makeChunk(ids, CHUNK, CHUNK);
    c.x = cx * CHUNK; c.y = cy * CHUNK;
    chunks.push(c);
  }
  return chunks;
}

function composite(chunks) {
  ctx.clearRect(0, 0, W, H);
  ctx.globalAlpha = 0.6;
  for (const c of chunks) ctx.drawImage(c.canvas, c.x, c.y);
  ctx.globalAlpha = 1;
}

function flush() {
  ctx.getImageData(0, 0, 1, 1); // forces the canvas work to finish before the clock stops
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function time(fn) {
  const xs = [];
  fn(0); flush(); // warm-up
  for (let r = 1; r <= REPEATS; r++) {
    const t0 = performance.now();
    fn(r);
    flush();
    xs.push(performance.now() - t0);
  }
  return median(xs);
}

function recolour(colours, chunks, all) {
  let painted = 0;
  for (const c of chunks) {
    if (all || chunkNeedsPaint(c.unique, colours.changed)) {
      paintChunk(c.out32, c.ids, colours.lut, c.boundary, true);
      c.ctx.putImageData(c.image, 0, 0);
      painted++;
    }
  }
  colours.clearChanged();
  composite(chunks);
  return painted;
}

async function run() {
  const cats = [
    { id: "tumor", color: "#e15759" }, { id: "stroma", color: "#4e79a7" },
    { id: "lymph", color: "#59a14f" }, { id: "other", color: "#f28e2b" },
  ];
  const colours = new SuperpixelColours(N, cats);
  const ids = new Uint32Array(N);
  const preds = [];
  for (let i = 0; i < N; i++) { ids[i] = i + 1; preds.push(cats[i % 4].id); }
  colours.setPredictions(ids, preds);
  const chunks = makeChunks();
  recolour(colours, chunks, true);

  // The fill is faster than the browser's 0.1 ms clock, so it is timed in batches of 50.
  const fill = time((r) => {
    for (let k = 0; k < 50; k++) { ctx.fillStyle = (r + k) % 2 ? "#123456" : "#654321"; ctx.fillRect(0, 0, W, H); }
  }) / 50;
  // One click: one superpixel changes category.
  const one = time((r) => { colours.setLabels([1 + ((r * 7919) % N)], cats[r % 4].id); recolour(colours, chunks, false); });
  // A brush stroke / bulk action: 10,000 superpixels change.
  const batch = Array.from({ length: 10000 }, (_, i) => 1 + ((i * 20) % N));
  const bulk = time((r) => { colours.setLabels(batch, cats[r % 4].id); recolour(colours, chunks, false); });
  // A new model: every one of the N superpixels gets a new predicted class (LUT rebuilt, all repainted).
  const full = time((r) => { colours.setPredictions(ids, preds.map((_, i) => cats[(i + r) % 4].id)); recolour(colours, chunks, true); });
  const lutOnly = time((r) => { colours.showPredictions = r % 2 === 0; colours.rebuild(); });
  const result = {
    superpixels: N, chunks: chunks.length, fill_ms: fill, one_label_ms: one, bulk_10k_ms: bulk,
    all_recolour_ms: full, lut_rebuild_ms: lutOnly,
  };
  document.getElementById("out").textContent = JSON.stringify(result, null, 1);
  window.__result = result;
}

run().catch((err) => { window.__result = { error: String(err && err.stack || err) }; });
