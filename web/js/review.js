// Review mode: the API's filters, sort and grouping; bulk approve / change / clear; a summary of
// the selected row; agreement between users (and with the model) per category.
import { loadLabels } from "./labels.js";
import { categoryById, memberOptions, slideName, who } from "./names.js";
import { openSlide, zoomTo } from "./session.js";
import { newKey } from "./api.js";
import { drawThumbnail } from "./guided.js";
import { $, describeError, el, fmtTime, toast } from "./ui.js";
import { may } from "./vocabulary.js";

const THUMB = 84;

const BULK_CHUNK = 20000; // ids per review request (the API takes up to 100000 in a 2 MiB body)

const FILTERS = [
  ["slide", "Slide"], ["label", "Label"], ["prediction", "Prediction"], ["review", "Review"],
  ["labeled_by", "Labeled by"], ["reviewed_by", "Reviewed by"],
];

export class ReviewMode {
  constructor(state) {
    this.state = state;
    this.root = $("#review-panel");
    this.rows = [];
    this.selected = new Set();
    this.pageSize = 200; // rows a search loads at a time ("More" loads the next page)
    this.cursor = null;
    this.view = "gallery"; // thumbnails grouped by label, as Histomics Label's review mode; or "table"
    this.render();
  }

  get canReview() {
    return may("review", this.state.role);
  }

  // A project refresh (the changes poll after any edit, a colleague's included) updates the
  // choices in place: rebuilding the panel dropped the filters, the rows, the selection and the
  // message of a bulk action still running.
  onProject() {
    if (this.state.mode !== "review") return;
    const same = this.renderedRole === this.state.role && this.renderedProject === this.state.projectId;
    if (!$("#review-form", this.root) || !same) return this.enter();
    const keep = (id, options) => {
      const sel = $(`#${id}`, this.root);
      if (!sel) return;
      const value = sel.value;
      sel.replaceChildren(...options.filter(Boolean));
      sel.value = value;
      if (sel.value !== value) sel.selectedIndex = 0;
    };
    for (const [name, options] of Object.entries(this.choices())) keep(`rv-${name}`, options);
    keep("rv-change-to", this.catOptions(false));
  }

  // The filters' choices that follow the project (its slides, categories and members), by name.
  choices() {
    const slides = (this.state.project && this.state.project.slides) || [];
    return {
      slide: [el("option", { value: "" }, "all"), ...slides.map((s) => el("option", { value: s.slide_id }, s.name))],
      label: this.catOptions(),
      prediction: this.catOptions(),
      labeled_by: memberOptions(),
      reviewed_by: memberOptions(),
    };
  }

  enter() {
    this.render();
    this.search();
  }

  catOptions(withAny = true) {
    const cats = (this.state.project && this.state.project.categories) || [];
    return [withAny ? el("option", { value: "" }, "any") : "", ...cats.map((c) => el("option", { value: c.id }, c.name))];
  }

  render() {
    this.renderedRole = this.state.role;
    this.renderedProject = this.state.projectId;
    const choices = this.choices();
    const select = (name, options) => el("select", { name, id: `rv-${name}` }, options);
    const field = (name, label, input) => el("label", { class: "field" }, label, input);
    const form = el("form", { id: "review-form", "aria-label": "Review filters" },
      field("slide", "Slide", select("slide", choices.slide)),
      field("label", "Label", select("label", choices.label)),
      field("prediction", "Prediction", select("prediction", choices.prediction)),
      field("review", "Review", select("review", ["", "none", "approve", "change", "clear"].map((v) => el("option", { value: v }, v || "any")))),
      field("labeled_by", "Labeled by", select("labeled_by", choices.labeled_by)),
      field("reviewed_by", "Reviewed by", select("reviewed_by", choices.reviewed_by)),
      el("fieldset", {}, el("legend", {}, "Compare"),
        el("div", { class: "row" },
          el("input", { name: "compare_a", id: "rv-compare_a", placeholder: "label", size: 9, "aria-label": "Compare operand A (label, prediction, review, user:ID)" }),
          select("compare", ["", "matches", "differs"].map((v) => el("option", { value: v }, v || "—"))),
          el("input", { name: "compare_b", id: "rv-compare_b", placeholder: "prediction", size: 9, "aria-label": "Compare operand B" }))),
      el("div", { class: "row" },
        field("sort", "Sort", select("sort", ["", "slide", "label", "prediction", "review", "confidence", "certainty"].map((v) => el("option", { value: v }, v || "default")))),
        field("order", "Order", select("order", ["asc", "desc"].map((v) => el("option", { value: v }, v)))),
        field("group_by", "Group", select("group_by", ["", "slide", "label", "prediction", "review"].map((v) => el("option", { value: v }, v || "none"))))),
      el("button", { type: "submit", class: "primary" }, "Apply"));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.search();
    });
    const bulk = !this.canReview ? "" : el("div", { class: "row", "aria-label": "Bulk actions" },
      el("button", { type: "button", id: "rv-approve", disabled: !this.canReview, onclick: () => this.bulk("approve") }, "Approve selected"),
      el("select", { id: "rv-change-to", "aria-label": "Change to category" }, this.catOptions(false)),
      el("button", { type: "button", id: "rv-change", disabled: !this.canReview, onclick: () => this.bulk("change") }, "Change"),
      el("button", { type: "button", id: "rv-clear", class: "danger", disabled: !this.canReview, onclick: () => this.bulk("clear") }, "Clear"));
    this.root.replaceChildren(
      el("h2", {}, "Review"), form,
      el("p", { id: "rv-msg", role: "status" }),
      el("div", { id: "rv-groups" }),
      bulk,
      el("div", { class: "row" }, el("label", {}, el("input", { type: "checkbox", id: "rv-all", onchange: (e) => this.selectAll(e.target.checked) }), " select all shown"),
        el("button", { type: "button", id: "rv-more", hidden: true, onclick: () => this.search(true) }, "More"),
        el("button", { type: "button", id: "rv-select-matching", hidden: true, onclick: () => this.selectMatching() }, "Select all matching"),
        el("span", { id: "rv-selected", class: "muted", role: "status" })),
      el("div", { class: "row", role: "group", "aria-label": "Show as" },
        el("button", { type: "button", id: "rv-view-gallery", "aria-pressed": String(this.view === "gallery"), onclick: () => this.setView("gallery") }, "Gallery"),
        el("button", { type: "button", id: "rv-view-table", "aria-pressed": String(this.view === "table"), onclick: () => this.setView("table") }, "Table")),
      el("div", { id: "rv-gallery", hidden: this.view !== "gallery" }),
      el("table", { id: "rv-table", hidden: this.view !== "table" }, el("thead", {}, el("tr", {}, ["", "slide", "id", "label", "by", "prediction", "cert.", "review"].map((h) => el("th", {}, h)))), el("tbody")),
      el("h3", {}, "Summary"), el("div", { id: "rv-summary", class: "muted" }, "Select a row."),
      el("h3", {}, "Agreement"), el("div", { id: "rv-agreement" }),
    );
  }

  query() {
    const f = new FormData($("#review-form", this.root));
    const q = { limit: this.pageSize };
    for (const [k, v] of f.entries()) if (v) q[k] = v;
    if (!q.compare) {
      delete q.compare_a;
      delete q.compare_b;
    } else {
      q.compare_a = q.compare_a || "label";
      q.compare_b = q.compare_b || "prediction";
    }
    if (!q.sort) delete q.order;
    return q;
  }

  async search(more = false) {
    const msg = $("#rv-msg", this.root);
    msg.textContent = "Searching…";
    const ticket = (this.ticket = (this.ticket || 0) + 1);
    try {
      const q = this.query();
      if (more && this.cursor) q.cursor = this.cursor;
      const res = await this.state.api.get(`/projects/${encodeURIComponent(this.state.projectId)}/review`, q);
      if (ticket !== this.ticket) return; // a newer search was started meanwhile
      this.rows = more ? [...this.rows, ...res.items] : res.items;
      if (!more) this.selected.clear();
      this.showSelected();
      this.cursor = res.next_cursor;
      $("#rv-more", this.root).hidden = !this.cursor;
      const matching = $("#rv-select-matching", this.root);
      matching.hidden = !this.cursor;
      matching.textContent = `Select all ${res.total} matching`;
      toast(msg, `${res.total} labeled superpixel(s) match`);
      const groups = res.groups ? Object.entries(res.groups).map(([k, n]) => el("li", {}, `${(categoryById(k) || {}).name || k}: ${n}`)) : [];
      $("#rv-groups", this.root).replaceChildren(groups.length ? el("ul", {}, groups) : "");
      this.renderRows();
      this.agreement();
    } catch (err) {
      toast(msg, describeError(err), false);
    }
  }

  setView(view) {
    this.view = view;
    $("#rv-view-gallery", this.root).setAttribute("aria-pressed", String(view === "gallery"));
    $("#rv-view-table", this.root).setAttribute("aria-pressed", String(view === "table"));
    $("#rv-gallery", this.root).hidden = view !== "gallery";
    $("#rv-table", this.root).hidden = view !== "table";
    this.renderRows();
  }

  // Thumbnails grouped by the label shown, each with its selection box and review state;
  // a thumbnail is drawn when it scrolls into view.
  renderGallery() {
    const box = $("#rv-gallery", this.root);
    if (this.observer) this.observer.disconnect();
    this.observer = new IntersectionObserver((seen) => {
      for (const e of seen) {
        if (!e.isIntersecting) continue;
        this.observer.unobserve(e.target);
        const r = this.rows[Number(e.target.dataset.i)];
        if (r) drawThumbnail(r.slide_id, r.id, r.bbox, e.target, THUMB).catch(() => {});
      }
    }, { root: this.root.closest(".panel") || null });
    const groups = new Map();
    this.rows.forEach((r, i) => {
      const key = r.label || "";
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(i);
    });
    const sections = [...groups].map(([cat, idx]) => {
      const c = categoryById(cat);
      const thumbs = idx.map((i) => {
        const r = this.rows[i];
        const key = `${r.slide_id}:${r.id}`;
        const canvas = el("canvas", { width: THUMB, height: THUMB, dataset: { i } });
        const check = el("input", { type: "checkbox", "aria-label": `Select superpixel ${r.id}`, checked: this.selected.has(key) });
        check.addEventListener("change", () => {
          if (check.checked) this.selected.add(key);
          else this.selected.delete(key);
          this.showSelected();
        });
        const state = r.review ? r.review.a : "";
        const tile = el("figure", {
          class: `thumb${state ? ` reviewed-${state}` : ""}`, tabindex: 0, dataset: { i, id: r.id },
          title: `${slideName(r.slide_id)} #${r.id} — ${c ? c.name : "no label"} by ${who(r.labeled_by) || "—"}${r.prediction ? `, predicted ${(categoryById(r.prediction) || {}).name || r.prediction}` : ""}${state ? `, ${state}d` : ""}`,
          style: c ? `border-color:${c.color}` : "",
        }, canvas, el("figcaption", {}, check, ` #${r.id}`, state ? el("span", { class: "badge" }, state === "approve" ? "✓" : state) : ""));
        tile.addEventListener("click", (ev) => ev.target !== check && this.show(i));
        tile.addEventListener("keydown", (ev) => ev.key === "Enter" && this.show(i));
        this.observer.observe(canvas);
        return tile;
      });
      return el("section", { class: "rv-group", dataset: { category: cat } },
        el("h4", {}, el("span", { class: "swatch", style: `background:${c ? c.color : "transparent"}` }), ` ${c ? c.name : "no label"} `, el("span", { class: "muted" }, `(${idx.length} shown)`)),
        el("div", { class: "thumbs" }, thumbs));
    });
    box.replaceChildren(...(sections.length ? sections : [el("p", { class: "muted" }, "Nothing to show.")]));
  }

  renderRows() {
    if (this.view === "gallery") this.renderGallery();
    const name = (c) => (c ? ((categoryById(c) || {}).name || c) : "—");
    const body = $("#rv-table tbody", this.root);
    body.replaceChildren(...this.rows.map((r, i) => {
      const key = `${r.slide_id}:${r.id}`;
      const box = el("input", { type: "checkbox", "aria-label": `Select superpixel ${r.id}`, checked: this.selected.has(key) });
      box.addEventListener("change", () => {
        if (box.checked) this.selected.add(key);
        else this.selected.delete(key);
        this.showSelected();
      });
      const tr = el("tr", { tabindex: 0, dataset: { i, id: r.id } },
        el("td", {}, box), el("td", { title: slideName(r.slide_id) }, slideName(r.slide_id)), el("td", {}, String(r.id)),
        el("td", { title: name(r.label) }, name(r.label)),
        el("td", { title: who(r.labeled_by) }, who(r.labeled_by)), el("td", { title: name(r.prediction) }, name(r.prediction)),
        el("td", {}, r.certainty == null ? "" : Number(r.certainty).toFixed(2)), el("td", {}, r.review ? r.review.a : "—"));
      tr.addEventListener("click", (ev) => ev.target !== box && this.show(i));
      tr.addEventListener("keydown", (ev) => ev.key === "Enter" && this.show(i));
      return tr;
    }));
  }

  selectAll(on) {
    this.selected.clear();
    if (on) for (const r of this.rows) this.selected.add(`${r.slide_id}:${r.id}`);
    this.renderRows();
    this.showSelected();
  }

  // Every superpixel the filters match, not only the rows loaded: ids come in pages from
  // GET .../review/ids and are added one by one (never spread into a call: 125k arguments
  // overflowed the stack of Histomics Label's browser).
  async selectMatching() {
    const msg = $("#rv-msg", this.root);
    const q = { ...this.query(), limit: 20000 };
    delete q.cursor;
    this.selected.clear();
    try {
      for (let cursor = null, first = true; first || cursor; first = false) {
        const res = await this.state.api.get(`/projects/${encodeURIComponent(this.state.projectId)}/review/ids`, cursor ? { ...q, cursor } : q);
        for (const [slide, ids] of Object.entries(res.slides)) for (const id of ids) this.selected.add(`${slide}:${id}`);
        cursor = res.next_cursor;
        toast(msg, `Selecting… ${this.selected.size} of ${res.total}`);
      }
      toast(msg, `${this.selected.size} labeled superpixel(s) selected`);
    } catch (err) {
      toast(msg, describeError(err), false);
    }
    this.renderRows();
    this.showSelected();
  }

  showSelected() {
    const n = this.selected.size;
    $("#rv-selected", this.root).textContent = n ? `${n} selected` : "";
  }

  async show(i) {
    const r = this.rows[i];
    for (const tr of this.root.querySelectorAll("#rv-table tbody tr, #rv-gallery .thumb")) tr.setAttribute("aria-selected", String(tr.dataset.i === String(i)));
    const model = this.state.project && this.state.project.model;
    const name = (c) => (c ? ((categoryById(c) || {}).name || c) : "—");
    const users = Object.entries(r.labels || {}).map(([u, c]) => `${who(u)}: ${name(c)}`).join(", ");
    $("#rv-summary", this.root).replaceChildren(el("dl", {},
      el("dt", {}, "Label"), el("dd", {}, name(r.label)),
      el("dt", {}, "Labeled by"), el("dd", {}, `${who(r.labeled_by) || "—"} at ${fmtTime(r.labeled_at)}`),
      el("dt", {}, "All users"), el("dd", {}, users || "—"),
      el("dt", {}, "Prediction"), el("dd", {}, `${name(r.prediction)} (model ${model ? model.model_version ?? model.version ?? "?" : "none"}, confidence ${r.confidence == null ? "—" : Number(r.confidence).toFixed(2)}, certainty ${r.certainty == null ? "—" : Number(r.certainty).toFixed(3)})`),
      el("dt", {}, "Review"), el("dd", {}, r.review ? `${r.review.a} by ${who(r.review.by)} at ${fmtTime(r.review.at)}` : "not reviewed")));
    try {
      if (r.slide_id !== this.state.slideId) await openSlide(r.slide_id);
      const box = r.bbox || (this.state.overlay && (await this.state.overlay.findBox(r.id)));
      if (box) zoomTo(box, r.id);
    } catch (err) {
      toast($("#rv-msg", this.root), describeError(err), false);
    }
  }

  async bulk(action) {
    const msg = $("#rv-msg", this.root);
    if (!this.selected.size) return toast(msg, "Select rows first", false);
    const category = $("#rv-change-to", this.root).value;
    if (action === "change" && !category) return toast(msg, "Choose the category to change to", false);
    const bySlide = new Map();
    for (const key of this.selected) {
      const [slide, id] = [key.slice(0, key.lastIndexOf(":")), Number(key.slice(key.lastIndexOf(":") + 1))];
      if (!bySlide.has(slide)) bySlide.set(slide, []);
      bySlide.get(slide).push(id);
    }
    try {
      let n = 0;
      const total = this.selected.size;
      for (const [slide, ids] of bySlide) {
        // One request per BULK_CHUNK ids keeps each body well under the API's size limit.
        for (let start = 0; start < ids.length; start += BULK_CHUNK) {
          const part = ids.slice(start, start + BULK_CHUNK);
          const body = { action, ids: part, idempotency_key: newKey() };
          if (action === "change") body.category_id = category;
          const res = await this.state.api.post(`/projects/${encodeURIComponent(this.state.projectId)}/slides/${encodeURIComponent(slide)}/review`, body, { idempotencyKey: body.idempotency_key });
          n += res.ids ?? part.length;
          if (total > BULK_CHUNK) toast(msg, `${action}: ${n} of ${total}…`);
        }
      }
      toast(msg, `${action}: ${n} superpixel(s)`);
      if (bySlide.has(this.state.slideId)) await loadLabels();
      await this.search();
      toast(msg, `${action}: ${n} superpixel(s) done`);
    } catch (err) {
      toast(msg, describeError(err), false);
    }
  }

  async agreement() {
    const box = $("#rv-agreement", this.root);
    try {
      const slide = $("#rv-slide", this.root).value;
      const res = await this.state.api.get(`/projects/${encodeURIComponent(this.state.projectId)}/agreement`, slide ? { slide } : undefined);
      const name = (c) => ((categoryById(c) || {}).name || c);
      const fmt = (k) => (k == null ? "—" : Number(k).toFixed(2));
      const parts = [];
      for (const p of (res.users && res.users.pairs) || []) {
        parts.push(el("p", {}, `${who(p.a)} vs ${who(p.b)}: κ ${fmt(p.kappa)} over ${p.n}`));
        if (p.per_category) parts.push(el("table", { class: "agreement" }, el("tr", {}, el("th", {}, "category"), el("th", {}, "κ")),
          Object.entries(p.per_category).map(([c, k]) => el("tr", {}, el("td", {}, name(c)), el("td", {}, fmt(typeof k === "object" && k ? k.kappa : k))))));
      }
      if (res.users && res.users.fleiss) parts.push(el("p", {}, `Fleiss κ (${res.users.fleiss.users} users): ${fmt(res.users.fleiss.kappa)}`));
      if (res.predictions) {
        parts.push(el("p", {}, `Labels vs model: κ ${fmt(res.predictions.kappa)} over ${res.predictions.n}`));
        if (res.predictions.per_category) parts.push(el("table", {}, el("tr", {}, el("th", {}, "category"), el("th", {}, "κ vs model")),
          Object.entries(res.predictions.per_category).map(([c, k]) => el("tr", {}, el("td", {}, name(c)), el("td", {}, fmt(typeof k === "object" && k ? k.kappa : k))))));
      }
      box.replaceChildren(...(parts.length ? parts : [el("p", { class: "muted" }, "Needs labels from two users, or a model.")]));
    } catch (err) {
      box.textContent = describeError(err);
    }
  }
}
