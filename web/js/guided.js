// Guided mode: a film strip of the superpixels the model is least sure of. A category hotkey
// labels the selected card and moves on; arrows move; "agree with all" accepts the page's
// predictions; selecting a card zooms the viewer to it (switching slide when needed).
import { sendLabels } from "./labels.js";
import { categoryById, slideName } from "./names.js";
import { openSlide, slidePyramids, zoomTo } from "./session.js";
import { readRegion } from "./pyramid.js";
import { $, describeError, el, showAlert } from "./ui.js";
import { may } from "./vocabulary.js";

const THUMB = 120;
const CARD_W = 140;

export class GuidedMode {
  constructor(state) {
    this.state = state;
    this.items = [];
    this.page = 0;
    this.selected = 0;
    this.strip = $("#filmstrip");
    this.root = $("#guided-panel");
    this.modelVersion = null;
    window.addEventListener("resize", () => this.state.mode === "guided" && this.renderStrip());
    this.renderPanel();
  }

  get pageSize() {
    const width = this.strip.clientWidth || window.innerWidth - 360;
    return Math.max(2, Math.floor((width - 90) / (CARD_W + 6)));
  }

  pageItems() {
    return this.items.slice(this.page * this.pageSize, (this.page + 1) * this.pageSize);
  }

  renderPanel(message = "") {
    this.root.replaceChildren(
      el("h2", {}, "Guided labeling"),
      el("p", { class: "muted" }, "The cards are the superpixels the model is least certain about. ",
        el("kbd", {}, "←"), el("kbd", {}, "→"), " move, a category hotkey labels the selected card and moves on, ",
        el("kbd", {}, "Enter"), " zooms to it."),
      el("p", {}, `Model version: ${this.modelVersion ?? "none yet (spread order)"}`),
      el("ul", { class: "cats" }, this.categoryRows()),
      el("div", { class: "row" },
        may("label", this.state.role) ? el("button", { type: "button", id: "agree-all", class: "primary", onclick: () => this.agreeAll() }, "Agree with all on this page") : "",
        el("button", { type: "button", id: "reload-queue", onclick: () => this.load() }, "Refresh")),
      el("p", { id: "guided-msg", role: "status" }, message),
    );
  }

  categoryRows() {
    return ((this.state.project && this.state.project.categories) || []).filter((c) => !c.excluded).map((c) =>
      el("li", { class: "row" }, el("span", { class: "swatch", style: `background:${c.color}` }), el("kbd", {}, c.hotkey || "—"), ` ${c.name}`));
  }

  // A colleague's change to the project (a category renamed, excluded, included) updates the
  // category list in place: rebuilding the panel would drop a click on "Agree with all" under
  // way and wipe the message of the last action.
  onProject() {
    if (this.state.mode !== "guided") return;
    const list = $("ul.cats", this.root);
    if (list) list.replaceChildren(...this.categoryRows());
    else this.renderPanel();
  }

  async enter() {
    await this.load();
  }

  async load() {
    try {
      const res = await this.state.api.get(`/projects/${encodeURIComponent(this.state.projectId)}/queue`, { n: Math.min(200, this.pageSize * 3) });
      this.items = res.items.map((it) => ({ ...it, done: false }));
      this.modelVersion = res.model_version;
      this.page = 0;
      this.selected = 0;
      this.renderPanel(this.items.length ? "" : "Nothing left to label.");
      this.renderStrip();
      if (this.items.length) this.select(0);
    } catch (err) {
      this.renderPanel(describeError(err));
    }
  }

  renderStrip() {
    const items = this.pageItems();
    const pages = Math.max(1, Math.ceil(this.items.length / this.pageSize));
    const cards = items.map((it, i) => this.card(it, i));
    const pager = el("div", { class: "pager" },
      el("button", { type: "button", "aria-label": "Previous page", disabled: this.page === 0, onclick: () => this.goPage(this.page - 1) }, "‹"),
      el("span", { class: "muted" }, `${this.page + 1}/${pages}`),
      el("button", { type: "button", "aria-label": "Next page", onclick: () => this.goPage(this.page + 1) }, "›"));
    this.strip.replaceChildren(...cards, pager);
    this.strip.setAttribute("role", "listbox");
  }

  card(it, i) {
    const cat = it.prediction ? categoryById(it.prediction) : null;
    const certainty = it.certainty == null ? "n/a" : Number(it.certainty).toFixed(3);
    const label = `${slideName(it.slide_id)} superpixel ${it.id}, predicted ${cat ? cat.name : "nothing yet"}, certainty ${certainty}`;
    const canvas = el("canvas", { width: THUMB, height: THUMB });
    const node = el("div", {
      class: `card${it.done ? " done" : ""}`, role: "option", tabindex: -1, "aria-selected": String(i === this.selected),
      "aria-label": label, title: `certainty ${certainty}`, dataset: { id: it.id, slide: it.slide_id },
      onclick: () => this.select(i),
    },
    canvas,
    el("span", { class: "pred" }, el("span", { class: "swatch", style: `background:${cat ? cat.color : "transparent"}` }), cat ? cat.name : "no prediction"),
    el("span", { class: "slide", title: slideName(it.slide_id) }, slideName(it.slide_id)),
    el("span", { class: "muted certainty" }, `certainty ${certainty}`));
    if (cat) node.style.borderColor = cat.color;
    this.thumbnail(it, canvas).catch(() => {});
    return node;
  }

  thumbnail(it, canvas) {
    return drawThumbnail(it.slide_id, it.id, it.bbox, canvas, THUMB);
  }

  goPage(p) {
    const pages = Math.ceil(this.items.length / this.pageSize);
    if (p >= pages) return this.load();
    this.page = Math.max(0, p);
    this.selected = 0;
    this.renderStrip();
    this.select(0);
    return null;
  }

  async select(i) {
    const items = this.pageItems();
    if (!items.length) return;
    this.selected = Math.max(0, Math.min(items.length - 1, i));
    for (const [j, c] of [...this.strip.querySelectorAll(".card")].entries()) c.setAttribute("aria-selected", String(j === this.selected));
    const it = items[this.selected];
    try {
      if (it.slide_id !== this.state.slideId) await openSlide(it.slide_id);
      zoomTo(it.bbox, it.id);
    } catch (err) {
      showAlert(describeError(err));
    }
  }

  label(categoryId) {
    const it = this.pageItems()[this.selected];
    if (!it) return;
    it.done = true;
    it.labeled = categoryId;
    sendLabels(it.slide_id, [it.id], categoryId, "guided").catch(() => {});
    // Labeled cards move to the end of the page, out of the way.
    const start = this.page * this.pageSize;
    const page = this.pageItems();
    const order = [...page.filter((x) => !x.done), ...page.filter((x) => x.done)];
    this.items.splice(start, page.length, ...order);
    const next = order.findIndex((x) => !x.done);
    this.renderStrip();
    if (next === -1) this.goPage(this.page + 1);
    else this.select(next);
  }

  async agreeAll() {
    const todo = this.pageItems().filter((it) => !it.done && it.prediction);
    if (!todo.length) return;
    const groups = new Map();
    for (const it of todo) {
      const key = `${it.slide_id}\u0000${it.prediction}`;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(it);
    }
    const sends = [];
    for (const list of groups.values()) {
      for (const it of list) it.done = true;
      sends.push(sendLabels(list[0].slide_id, list.map((x) => x.id), list[0].prediction, "guided"));
    }
    const results = await Promise.allSettled(sends);
    const failed = results.filter((r) => r.status === "rejected").length;
    $("#guided-msg", this.root).textContent = failed ? `${failed} group(s) not saved` : `Agreed with ${todo.length} prediction(s)`;
    this.goPage(this.page + 1);
  }

  onKey(key) {
    if (this.state.mode !== "guided") return false;
    if (key === "arrowright") return this.select(this.selected + 1), true;
    if (key === "arrowleft") return this.select(this.selected - 1), true;
    if (key === "pagedown") return this.goPage(this.page + 1), true;
    if (key === "pageup") return this.goPage(this.page - 1), true;
    if (key === "enter") return this.select(this.selected), true;
    const cat = ((this.state.project && this.state.project.categories) || []).find((c) => c.hotkey && c.hotkey.toLowerCase() === key);
    if (cat) {
      if (!may("label", this.state.role)) return showAlert("Your role cannot label."), true;
      this.label(cat.id);
      return true;
    }
    return false;
  }
}

// Masked crop of a superpixel: itself at full brightness, its surroundings dimmed, drawn into a
// `size` px canvas (guided cards and the review gallery).
export async function drawThumbnail(slideId, id, bbox, canvas, size) {
  if (!bbox) return;
  const { image, labels } = await slidePyramids(slideId);
  const [y0, x0, y1, x1] = bbox;
  const side = Math.max(y1 - y0, x1 - x0) * 2 + 16;
  let k = 0;
  while (k + 1 < image.levels.length && side / image.levels[k + 1].factor >= size * 0.75) k++;
  const lv = image.levels[k];
  const f = lv.factor;
  const cy = (y0 + y1) / 2 / f;
  const cx = (x0 + x1) / 2 / f;
  const s = Math.max(8, Math.ceil(side / f));
  const ry = Math.max(0, Math.min(lv.height - s, Math.round(cy - s / 2)));
  const rx = Math.max(0, Math.min(lv.width - s, Math.round(cx - s / 2)));
  const h = Math.min(s, lv.height - ry);
  const w = Math.min(s, lv.width - rx);
  const rgb = await readRegion(lv, ry, rx, h, w);
  let mask = null;
  const ll = labels && labels.levels.find((l) => Math.abs(l.factor - f) < 1e-6);
  if (ll) mask = (await readRegion(ll, ry, rx, Math.min(h, ll.height - ry), Math.min(w, ll.width - rx))).data;
  const img = new ImageData(w, h);
  const n = w * h;
  for (let i = 0; i < n; i++) {
    const dim = mask && mask[i] !== id ? 0.35 : 1;
    img.data[4 * i] = rgb.data[i] * dim;
    img.data[4 * i + 1] = rgb.data[n + i] * dim;
    img.data[4 * i + 2] = rgb.data[2 * n + i] * dim;
    img.data[4 * i + 3] = 255;
  }
  const tmp = el("canvas", { width: w, height: h });
  tmp.getContext("2d").putImageData(img, 0, 0);
  canvas.getContext("2d").drawImage(tmp, 0, 0, size, size);
  canvas.dataset.drawn = "1";
}
