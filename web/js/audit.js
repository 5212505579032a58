// Audit view (owner, auditor): the event timeline of the project or a slide with who/when/what
// and the hash-chain check, and the overlay replayed as of a chosen moment.
import { relabel } from "./labels.js";
import { memberOptions, slideName, who } from "./names.js";
import { $, describeError, el, fmtTime, toast } from "./ui.js";
import { may, mayRoles, rolesInWords } from "./vocabulary.js";

function describe(e) {
  const d = e.data || {};
  const n = d.ids ? `${d.ids.length} superpixel(s)` : "";
  switch (e.type) {
    case "SuperpixelsLabeled": return `labeled ${n} as ${d.category_id} (${d.source})`;
    case "SuperpixelsUnlabeled": return `unlabeled ${n}`;
    case "LabelsReviewed": return `review ${d.action} ${n}${d.category_id ? ` → ${d.category_id}` : ""}`;
    default: return `${e.type} ${Object.entries(d).filter(([, v]) => typeof v !== "object").map(([k, v]) => `${k}=${v}`).join(" ")}`;
  }
}

export class AuditMode {
  constructor(state) {
    this.state = state;
    this.root = $("#audit-panel");
    this.events = [];
    this.replaying = false;
    this.render();
  }

  get allowed() {
    return may("audit", this.state.role);
  }

  enter() {
    this.render();
    if (this.allowed) this.load();
  }

  leave() {
    if (this.replaying) this.stopReplay();
  }

  render() {
    if (!this.allowed) {
      this.root.replaceChildren(el("h2", {}, "Audit"), el("p", {}, `The audit view is for ${rolesInWords(mayRoles("audit"))}.`));
      return;
    }
    const form = el("form", { id: "audit-form", class: "field" },
      el("label", {}, "Stream ", el("select", { name: "scope", id: "audit-scope" },
        el("option", { value: "slide" }, "labels of this slide"), el("option", { value: "project" }, "project"))),
      el("label", {}, "User ", el("select", { name: "user", id: "audit-user" }, memberOptions())),
      el("button", { type: "submit" }, "Load"));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.load();
    });
    const replay = el("form", { id: "replay-form", class: "field", "aria-label": "Replay" },
      el("label", {}, "Replay overlay as of ", el("input", { type: "datetime-local", step: "0.001", name: "as_of", id: "replay-at" })),
      el("label", {}, "or after event ", el("input", { type: "range", id: "replay-slider", min: 0, max: 0, value: 0 })),
      el("div", { class: "row" }, el("button", { type: "submit", class: "primary" }, "Replay"), el("button", { type: "button", id: "replay-stop", onclick: () => this.stopReplay() }, "Back to now")));
    replay.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const v = $("#replay-at", this.root).value;
      if (v) this.replay(new Date(v).toISOString());
    });
    replay.querySelector("#replay-slider").addEventListener("input", (ev) => {
      const e = this.labelEvents()[Number(ev.target.value)];
      if (e) this.replay(e.at);
    });
    this.root.replaceChildren(el("h2", {}, "Audit"), form, el("p", { id: "audit-chain", role: "status" }), replay,
      el("p", { id: "replay-msg", role: "status" }), el("ol", { id: "timeline", class: "timeline", "aria-label": "Event timeline" }));
  }

  labelEvents() {
    return this.events.filter((e) => e.type.startsWith("Superpixels") || e.type === "LabelsReviewed");
  }

  async load() {
    const form = new FormData($("#audit-form", this.root));
    const q = { limit: 1000 };
    if (form.get("scope") === "slide" && this.state.slideId) q.slide = this.state.slideId;
    if (form.get("user")) q.user = form.get("user");
    const chain = $("#audit-chain", this.root);
    try {
      let events = [];
      let res;
      let after;
      do {
        res = await this.state.api.get(`/projects/${encodeURIComponent(this.state.projectId)}/audit/history`, { ...q, after_seq: after });
        events = events.concat(res.events);
        after = res.next_after_seq;
      } while (after != null && res.events.length);
      this.events = events;
      toast(chain, res.chain_ok ? `✔ Hash chain intact (${events.length} events)` : `✖ Hash chain broken at seq ${res.first_bad_seq}`, res.chain_ok);
      const slider = $("#replay-slider", this.root);
      slider.max = String(Math.max(0, this.labelEvents().length - 1));
      slider.value = slider.max;
      $("#timeline", this.root).replaceChildren(...[...events].reverse().map((e) =>
        el("li", { dataset: { seq: e.seq, type: e.type } },
          el("strong", { title: e.actor_user }, who(e.actor_user)), ` @ ${e.actor_site} — ${fmtTime(e.at)}`, el("br"),
          `#${e.seq} ${describe(e)}`,
          el("button", { type: "button", class: "replay-here", "aria-label": `Replay as of event ${e.seq}`, onclick: () => this.replay(e.at) }, "as of here"))));
    } catch (err) {
      toast(chain, describeError(err), false);
    }
  }

  async replay(asOf) {
    const msg = $("#replay-msg", this.root);
    if (!this.state.slideId) return toast(msg, "Open a slide to replay its labels", false);
    let res;
    try {
      // The server folds the events with the projection's own fold: one definition of a label.
      res = await this.state.api.get(`/projects/${encodeURIComponent(this.state.projectId)}/audit/replay`, { as_of: asOf, slide: this.state.slideId });
    } catch (err) {
      return toast(msg, `Replay failed: ${describeError(err)}`, false);
    }
    const slide = (res.slides && res.slides[this.state.slideId]) || { labels: {} };
    const colours = this.state.colours;
    colours.label.fill(0);
    let n = 0;
    for (const [key, category] of Object.entries(slide.labels || {})) {
      const id = Number(key);
      if (id <= colours.count) {
        colours.label[id] = colours.index.get(category) || 0;
        n++;
      }
    }
    colours.rebuild();
    if (this.state.overlay) this.state.overlay.repaintAll();
    this.replaying = true;
    this.state.replayAsOf = asOf;
    const chains = Object.values(res.chains || {}).every(Boolean) ? "" : " — a hash chain is broken";
    toast(msg, `Showing ${slideName(this.state.slideId)} as of ${fmtTime(asOf)}: ${n} labeled superpixel(s)${chains}`);
  }

  stopReplay() {
    this.replaying = false;
    this.state.replayAsOf = null;
    relabel();
    const msg = $("#replay-msg", this.root);
    if (msg) toast(msg, "Showing the current labels");
  }
}
