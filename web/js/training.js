// Training panel: current model, per-class scores, the learning curve (score vs labels), job
// status with a visible alert when a run failed, and a manual retrain button.
import { loadPredictions } from "./labels.js";
import { categoryById } from "./names.js";
import { refreshProject } from "./session.js";
import { $, describeError, el, fmtTime, showAlert, toast } from "./ui.js";
import { may } from "./vocabulary.js";

const POLL_MS = 2000;

// [[labels, score], ...] from the shapes a learning curve may come in.
export function curvePoints(curve) {
  if (!curve) return [];
  if (Array.isArray(curve)) {
    return curve.map((p) => (Array.isArray(p) ? [p[0], p[1]] : [p.labels ?? p.n_labels ?? p.n ?? p.x, p.score ?? p.accuracy ?? p.balanced_accuracy ?? p.y]))
      .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  }
  const xs = curve.labels || curve.n_labels || curve.n || curve.x || [];
  const ys = curve.score || curve.scores || curve.accuracy || curve.balanced_accuracy || curve.y || [];
  return xs.map((x, i) => [x, ys[i]]).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
}

function plot(points) {
  const W = 300, H = 150, P = 28;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("class", "plot");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `Learning curve: ${points.map(([x, y]) => `${x} labels → ${y.toFixed(2)}`).join(", ") || "no points yet"}`);
  if (!points.length) return svg;
  const xmax = Math.max(...points.map((p) => p[0]), 1);
  const sx = (x) => P + (x / xmax) * (W - P - 8);
  const sy = (y) => H - P + 4 - Math.max(0, Math.min(1, y)) * (H - P - 8);
  const ns = (tag, attrs) => {
    const n = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    svg.appendChild(n);
    return n;
  };
  ns("line", { x1: P, y1: H - P + 4, x2: W - 4, y2: H - P + 4, stroke: "#5a6272" });
  ns("line", { x1: P, y1: 4, x2: P, y2: H - P + 4, stroke: "#5a6272" });
  ns("text", { x: 2, y: 12, "font-size": 10 }).textContent = "1.0";
  ns("text", { x: 2, y: H - P + 4, "font-size": 10 }).textContent = "0";
  ns("text", { x: W - 70, y: H - 6, "font-size": 10 }).textContent = `labels (${xmax})`;
  ns("polyline", { points: points.map(([x, y]) => `${sx(x)},${sy(y)}`).join(" "), fill: "none", stroke: "#1f5fbf", "stroke-width": 2 });
  for (const [x, y] of points) ns("circle", { cx: sx(x), cy: sy(y), r: 3, fill: "#1f5fbf" });
  return svg;
}

export class TrainingMode {
  constructor(state) {
    this.state = state;
    this.root = $("#training-panel");
    this.timer = null;
    this.data = null;
    this.seenModel = null;
    this.render();
  }

  async enter() {
    await this.refresh();
    this.poll();
  }

  leave() {
    clearTimeout(this.timer);
    this.timer = null;
  }

  poll() {
    clearTimeout(this.timer);
    this.timer = setTimeout(async () => {
      await this.refresh().catch(() => {});
      if (this.state.mode === "training") this.poll();
    }, POLL_MS);
  }

  async refresh() {
    try {
      this.data = await this.state.api.get(`/projects/${encodeURIComponent(this.state.projectId)}/training`);
    } catch (err) {
      this.render(describeError(err));
      return;
    }
    const current = this.data.current_model;
    const version = current && (current.model_version ?? current);
    if (version != null && version !== this.seenModel) {
      const first = this.seenModel === null;
      this.seenModel = version;
      if (!first || !this.state.predictions || this.state.predictions.version !== version) {
        await refreshProject();
        await loadPredictions();
      }
    }
    const runs = this.data.runs || [];
    const last = runs[runs.length - 1];
    if (last && last.status === "failed") showAlert(`Training run ${last.request_id || ""} failed: ${last.reason_failed || "no reason given"}`);
    this.render();
  }

  render(message = "") {
    const d = this.data || {};
    const models = d.models || [];
    const current = models.find((m) => m.model_version === (d.current_model && (d.current_model.model_version ?? d.current_model))) || models[models.length - 1];
    const metrics = (current && current.metrics) || {};
    const perClass = metrics.per_class || metrics.per_category || metrics.class_scores || {};
    const name = (c) => ((categoryById(c) || {}).name || c);
    const runs = d.runs || [];
    const fmt = (v) => (typeof v === "number" ? v.toFixed(3) : typeof v === "object" && v ? Object.entries(v).map(([k, x]) => `${k} ${typeof x === "number" ? x.toFixed(2) : x}`).join(", ") : String(v));
    this.root.replaceChildren(
      el("h2", {}, "Training"),
      el("p", { id: "tr-model" }, current ? `Model version ${current.model_version} — trained on ${current.label_count ?? "?"} labels at ${fmtTime(current.at)}` : "No model yet."),
      el("p", { id: "tr-counts" }, this.data
        ? `${d.labeled_superpixels ?? "?"} labeled superpixel(s). ${d.labels_total ?? 0} label edit(s) in all (relabels and each member's count), ${d.labels_since_request ?? 0} since the last training request; it retrains every ${d.threshold ?? "?"} edits.`
        : "Loading…"),
      may("train", this.state.role) ? el("button", { type: "button", id: "retrain", class: "primary", onclick: () => this.retrain() }, "Retrain now") : "",
      el("p", { id: "tr-msg", role: "status" }, message),
      el("h3", {}, "Scores"),
      el("table", { id: "tr-scores" },
        Object.entries(metrics).filter(([, v]) => typeof v === "number").map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v.toFixed(3)))),
        Object.entries(perClass).map(([c, v]) => el("tr", {}, el("th", {}, name(c)), el("td", {}, fmt(v))))),
      el("h3", {}, "Learning curve"),
      plot(curvePoints(metrics.learning_curve)),
      el("h3", {}, "Runs"),
      el("ul", { id: "tr-runs", class: "timeline" }, [...runs].reverse().slice(0, 20).map((r) =>
        el("li", { class: r.status === "failed" ? "bad" : "" },
          el("span", { class: `status-${r.status}` }, r.status), ` ${r.request_id || ""} ${r.reason && r.status !== "failed" ? `(${r.reason})` : ""} ${fmtTime(r.at || r.requested_at)}`,
          r.status === "failed" ? el("div", { class: "error" }, r.reason_failed || r.error || "") : ""))),
    );
  }

  async retrain() {
    const msg = $("#tr-msg", this.root);
    try {
      const res = await this.state.api.post(`/projects/${encodeURIComponent(this.state.projectId)}/training`);
      toast(msg, `Training requested (${res.request_id})`);
      await this.refresh();
      toast($("#tr-msg", this.root), `Training requested (${res.request_id})`);
    } catch (err) {
      toast(msg, describeError(err), false);
    }
  }
}
