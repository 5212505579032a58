// Labeling mode: the category panel (add, rename, colour, hotkey, exclude, merge, delete) with
// per-category counts, click to label/unlabel, and brush painting of whole superpixels.
import { loadLabels, myLabel, sendLabels } from "./labels.js";
import { categoryById, who } from "./names.js";
import { refreshProject } from "./session.js";
import { imagePointAt } from "./viewer.js";
import { $, confirmDialog, describeError, el, showAlert, toast } from "./ui.js";
import { may, palette } from "./vocabulary.js";

export class LabelMode {
  constructor(state) {
    this.state = state;
    this.active = null;
    this.brush = false; // paint-roller mode: plain drag paints
    this.radius = 24; // screen px
    this.stroke = null;
    this.root = $("#label-panel");
    this.render();
  }

  get cats() {
    return (this.state.project && this.state.project.categories) || [];
  }

  get canEdit() {
    return may("label", this.state.role);
  }

  get isOwner() {
    return may("merge_categories", this.state.role);
  }

  path(suffix = "") {
    return `/projects/${encodeURIComponent(this.state.projectId)}/categories${suffix}`;
  }

  onProject() {
    if (this.active && !this.cats.some((c) => c.id === this.active)) this.active = null;
    if (!this.active) {
      const first = this.cats.find((c) => !c.excluded) || this.cats[0];
      this.active = first ? first.id : null;
    }
    this.render();
  }

  onLabels() {
    this.renderCounts();
  }

  setActive(id) {
    this.active = id;
    for (const li of this.root.querySelectorAll(".cat")) li.setAttribute("aria-current", String(li.dataset.id === id));
    const c = this.cats.find((x) => x.id === id);
    const shown = $("#active-cat", this.root);
    if (shown) shown.textContent = c ? c.name : "none";
  }

  render() {
    const cats = this.cats;
    const msg = el("p", { id: "cat-msg", role: "status" });
    const list = el("ul", { class: "cats", id: "cat-list", "aria-label": "Categories" }, cats.map((c) => this.catRow(c)));
    const add = el("form", { id: "add-cat-form", class: "row", "aria-label": "Add category" },
      el("input", { name: "name", placeholder: "New category", required: true, size: 12, "aria-label": "New category name" }),
      el("input", { name: "color", type: "color", value: palette()[cats.length % palette().length], "aria-label": "New category colour" }),
      el("input", { name: "hotkey", size: 3, placeholder: "key", "aria-label": "New category hotkey" }),
      el("button", { type: "submit" }, "Add"));
    add.addEventListener("submit", (ev) => this.addCategory(ev, msg));
    const merge = el("details", {}, el("summary", {}, "Merge categories"),
      el("form", { id: "merge-form", class: "field" },
        el("span", {}, "Merge these:"),
        ...cats.map((c) => el("label", {}, el("input", { type: "checkbox", name: "source", value: c.id }), ` ${c.name}`)),
        el("label", {}, "into ", el("select", { name: "target" }, cats.map((c) => el("option", { value: c.id }, c.name)))),
        el("button", { type: "submit" }, "Merge")));
    merge.querySelector("form").addEventListener("submit", (ev) => this.merge(ev, msg));
    const brush = !this.canEdit ? "" : el("div", { class: "row" },
      el("button", { type: "button", id: "brush-btn", "aria-pressed": String(this.brush), onclick: () => this.toggleBrush() }, "Brush (paint roller)"),
      el("label", {}, "Size ", el("input", { id: "brush-size", type: "range", min: 4, max: 120, value: this.radius, oninput: (e) => { this.radius = Number(e.target.value); } })));
    const help = this.canEdit
      ? el("p", { class: "muted" }, "Click a superpixel to give it your label in the active category (click again to remove yours; colleagues' labels stay theirs). ",
        "Shift-drag or the brush paints whole superpixels. Press a category's hotkey to make it active. ",
        el("kbd", {}, "Alt+B"), " brush, ", el("kbd", {}, "["), el("kbd", {}, "]"), " brush size, ", el("kbd", {}, "Ctrl+Z"), " undo, ", el("kbd", {}, "Alt+O"), " overlay.")
      : el("p", { class: "muted", id: "view-only" }, `As ${this.state.role ? `a${/^[aeiou]/.test(this.state.role) ? "n" : ""} ${this.state.role}` : "a viewer"} you see the labels; click a superpixel to see who labeled it.`);
    this.root.replaceChildren(
      el("h2", {}, this.canEdit ? "Label" : "Labels"),
      help,
      this.canEdit ? el("div", {}, "Active: ", el("strong", { id: "active-cat" }, "none")) : "",
      brush,
      el("h3", {}, "Categories"),
      list,
      this.canEdit ? add : "",
      this.isOwner && cats.length > 1 ? merge : "",
      msg,
      el("h3", {}, "This slide"),
      el("p", { id: "label-summary", class: "muted", role: "status" }),
      el("div", { id: "sp-info", class: "sp-info", "aria-live": "polite" }),
    );
    if (this.active) this.setActive(this.active);
    this.renderCounts();
  }

  catRow(c) {
    const li = el("li", { class: `cat${c.excluded ? " excluded" : ""}`, dataset: { id: c.id }, "aria-current": String(c.id === this.active) });
    const color = el("input", { type: "color", value: c.color, "aria-label": `Colour of ${c.name}`, disabled: !this.canEdit });
    color.addEventListener("change", () => this.update(c, { color: color.value }));
    const name = this.canEdit
      ? el("button", { type: "button", class: "cat-name", title: "Make active (double-click to rename)", onclick: () => this.setActive(c.id) }, c.name)
      : el("span", { class: "cat-name" }, c.name);
    if (this.canEdit) name.addEventListener("dblclick", () => this.rename(c));
    const hotkey = this.canEdit
      ? el("input", { class: "hotkey", value: c.hotkey || "", "aria-label": `Hotkey of ${c.name}`, maxlength: 12 })
      : el("span", { class: "hotkey" }, c.hotkey || "");
    hotkey.addEventListener("change", () => this.update(c, { hotkey: hotkey.value.trim().toLowerCase() || null }));
    const actions = el("span", { class: "actions" },
      this.canEdit ? el("button", { type: "button", title: "Rename", "aria-label": `Rename ${c.name}`, onclick: () => this.rename(c) }, "✎") : "",
      this.isOwner ? el("button", { type: "button", title: c.excluded ? "Include in training" : "Exclude from training", "aria-label": `${c.excluded ? "Include" : "Exclude"} ${c.name}`, onclick: () => this.toggleExclude(c) }, c.excluded ? "⊕" : "⊘") : "",
      this.isOwner ? el("button", { type: "button", class: "danger", title: "Delete", "aria-label": `Delete ${c.name}`, onclick: () => this.remove(c) }, "✖") : "");
    li.append(color, name, hotkey, el("span", { class: "count", dataset: { count: c.id } }, "0"), actions);
    return li;
  }

  renderCounts() {
    const summary = $("#label-summary", this.root);
    if (this.state.labelsLoading) {
      // No false zeros while the slide's labels are on their way.
      for (const node of this.root.querySelectorAll("[data-count]")) node.textContent = "…";
      if (summary) summary.textContent = "Loading labels…";
      this.root.setAttribute("aria-busy", "true");
      return;
    }
    this.root.removeAttribute("aria-busy");
    const counts = this.state.colours.counts();
    let total = 0;
    this.cats.forEach((c, i) => {
      const node = this.root.querySelector(`[data-count="${CSS.escape(c.id)}"]`);
      if (node) node.textContent = String(counts[i + 1]);
      total += counts[i + 1];
    });
    const mine = [...this.state.labelEntries.values()].filter((e) => e.l && e.l[this.state.user]).length;
    if (summary) summary.textContent = `${total} labeled superpixel(s) on this slide, ${mine} of them labeled by you.`;
    if (this.infoId) this.showInfo(this.infoId);
  }

  async call(fn, msg) {
    try {
      const r = await fn();
      await refreshProject();
      return r;
    } catch (err) {
      const node = msg || $("#cat-msg", this.root);
      if (node) toast(node, describeError(err), false);
      else showAlert(describeError(err));
      return null;
    }
  }

  async addCategory(ev, msg) {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const body = { name: f.get("name").trim(), color: f.get("color") };
    const hotkey = f.get("hotkey").trim().toLowerCase();
    if (hotkey) body.hotkey = hotkey;
    const made = await this.call(() => this.state.api.post(this.path(), body));
    if (made) {
      this.setActive(made.id);
      toast($("#cat-msg", this.root), `Added ${made.name}`);
    }
  }

  update(c, body) {
    return this.call(() => this.state.api.patch(this.path(`/${encodeURIComponent(c.id)}`), body));
  }

  rename(c) {
    const name = prompt(`Rename "${c.name}" to:`, c.name);
    if (name && name.trim() && name.trim() !== c.name) return this.update(c, { name: name.trim() });
    return null;
  }

  toggleExclude(c) {
    return this.call(() => this.state.api.post(this.path(`/${encodeURIComponent(c.id)}/${c.excluded ? "include" : "exclude"}`)));
  }

  async remove(c) {
    if (!(await confirmDialog(`Delete category "${c.name}"? Its labels become unlabeled.`))) return;
    const res = await this.call(() => this.state.api.del(this.path(`/${encodeURIComponent(c.id)}`)));
    if (res) {
      toast($("#cat-msg", this.root), `Deleted ${c.name}; ${res.labels_cleared} label(s) cleared`);
      await loadLabels();
    }
  }

  async merge(ev, msg) {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const target = f.get("target");
    const sources = f.getAll("source").filter((s) => s !== target);
    if (!sources.length) return toast($("#cat-msg", this.root), "Tick at least one category other than the target", false);
    if (!(await confirmDialog(`Merge ${sources.length} categor${sources.length > 1 ? "ies" : "y"} into ${target}?`))) return;
    if (await this.call(() => this.state.api.post(this.path("/merge"), { sources, target }))) {
      await loadLabels();
    }
  }

  toggleBrush(on = !this.brush) {
    this.brush = on;
    const b = $("#brush-btn", this.root);
    if (b) b.setAttribute("aria-pressed", String(on));
    if (this.state.viewer) this.state.viewer.element.classList.toggle("painting", on);
  }

  onKey(key) {
    if (this.state.mode !== "label") return false;
    const cat = this.cats.find((c) => c.hotkey && c.hotkey.toLowerCase() === key);
    if (cat) {
      this.setActive(cat.id);
      return true;
    }
    if (!this.canEdit) return false;
    if (key === "alt+b") return this.toggleBrush(), true;
    if (key === "[") return (this.radius = Math.max(4, this.radius - 4)), true;
    if (key === "]") return (this.radius = Math.min(120, this.radius + 4)), true;
    return false;
  }

  onViewer() {
    const viewer = this.state.viewer;
    if (!this.state.overlay) return;
    viewer.element.classList.toggle("painting", this.brush);
    viewer.addHandler("canvas-click", (e) => {
      if (this.state.mode !== "label" || !e.quick || this.stroke) return;
      if (this.justPainted) {
        this.justPainted = false;
        return;
      }
      e.preventDefaultAction = true;
      this.clickAt(e.originalEvent.clientX, e.originalEvent.clientY);
    });
    viewer.addHandler("canvas-press", (e) => {
      if (this.state.mode !== "label" || !(this.brush || e.originalEvent.shiftKey)) return;
      this.stroke = new Set();
      this.paintAt(e.originalEvent.clientX, e.originalEvent.clientY);
    });
    viewer.addHandler("canvas-drag", (e) => {
      if (!this.stroke) return;
      e.preventDefaultAction = true;
      this.paintAt(e.originalEvent.clientX, e.originalEvent.clientY);
    });
    viewer.addHandler("canvas-release", () => this.endStroke());
  }

  // Who holds which label on a superpixel, so nobody wonders why a click did what it did.
  showInfo(id) {
    this.infoId = id;
    const box = $("#sp-info", this.root);
    if (!box) return;
    const e = this.state.labelEntries.get(id);
    const name = (c) => (categoryById(c) || {}).name || c || "none";
    const users = e ? Object.entries(e.l || {}) : [];
    const rows = users.map(([u, [c]]) => el("li", { dataset: { user: u } },
      el("span", { class: "swatch", style: `background:${(categoryById(c) || {}).color || "transparent"}` }), ` ${name(c)} — ${u === this.state.user ? "you" : who(u)}`));
    const shown = e && e.c ? `${name(e.c)}${e.r && e.r.a === "change" ? " (changed by review)" : ""}` : "unlabeled";
    box.replaceChildren(
      el("strong", {}, `Superpixel ${id}: `), shown,
      rows.length ? el("ul", { class: "holders", "aria-label": "Labels on this superpixel" }, rows) : el("p", { class: "muted" }, "Nobody has labeled it."),
      e && e.r ? el("p", { class: "muted" }, `Review: ${e.r.a} by ${who(e.r.by)}`) : "");
  }

  noCategory() {
    if (!this.canEdit) return true;
    if (!this.active) return showAlert("Choose a category first (add one in the panel)."), true;
    return false;
  }

  async clickAt(clientX, clientY) {
    const p = imagePointAt(this.state.viewer, clientX, clientY);
    const id = await this.state.overlay.idAt(p.x, p.y);
    if (!id) return;
    if (this.state.overlay.highlight) this.state.overlay.highlight(id);
    if (!this.canEdit) return this.showInfo(id);
    if (this.noCategory()) return;
    // The click acts on MY label only: a colleague's label in the active category is theirs,
    // so clicking adds mine beside it; a second click removes mine again.
    const unlabel = myLabel(id) === this.active;
    sendLabels(this.state.slideId, [id], unlabel ? null : this.active, "click").catch(() => {});
    this.showInfo(id);
  }

  paintAt(clientX, clientY) {
    if (this.noCategory()) {
      this.stroke = null;
      return;
    }
    const viewer = this.state.viewer;
    const p = imagePointAt(viewer, clientX, clientY);
    const q = imagePointAt(viewer, clientX + this.radius, clientY);
    const fresh = [...this.state.overlay.idsInCircle(p.x, p.y, Math.abs(q.x - p.x))].filter((id) => !this.stroke.has(id));
    for (const id of fresh) this.stroke.add(id);
    if (fresh.length) {
      // Painted superpixels show at once; the stroke is saved as one edit on release.
      this.state.colours.setLabels(fresh, this.active);
      this.state.overlay.recolour();
    }
  }

  endStroke() {
    const stroke = this.stroke;
    this.stroke = null;
    if (!stroke) return;
    this.justPainted = true;
    setTimeout(() => { this.justPainted = false; }, 0);
    if (!stroke.size) return;
    sendLabels(this.state.slideId, stroke, this.active, "brush").catch(() => {});
  }
}
