// The open project and slide: loading them from the API, the viewer and overlay of the slide,
// and which modes the caller's role is offered. The modes call these; app.js wires them to the
// page at start.
import { loadLabels, loadPredictions, relabel, showLegend } from "./labels.js";
import { slideName } from "./names.js";
import { Overlay } from "./overlay.js";
import { openImage, openLabels } from "./pyramid.js";
import { DEFAULT_COUNT, categories, state } from "./state.js";
import { PresignedStore, PresignedUrls } from "./stores.js";
import { createViewer, zoomToBox } from "./viewer.js";
import { may } from "./vocabulary.js";
import { $, describeError, el, showAlert } from "./ui.js";

export const MODES = ["label", "guided", "review", "training", "audit", "manage"];
// Modes a role is not offered at all unless it may do what they are for (GET /config's `may`:
// the queue is for learners, the audit trail for owners and auditors).
const GATED = ["guided", "audit"];

export async function refreshProject() {
  state.project = await state.api.get(`/projects/${encodeURIComponent(state.projectId)}`);
  state.role = state.project.your_role;
  state.projectSeq = state.project.seq;
  $("#user-role").textContent = state.role || "";
  document.body.dataset.role = state.role || "";
  applyRole();
  showLegend();
  state.colours.setCategories(categories());
  relabel();
  for (const m of Object.values(state.modes)) if (m.onProject) m.onProject();
  return state.project;
}

export function renderSlides() {
  const select = $("#slide-select");
  const slides = state.project.slides || [];
  select.replaceChildren(...slides.map((s) => el("option", { value: s.slide_id, disabled: !["ingested", "segmented", "embedded"].includes(s.status) }, `${s.name} (${s.status})`)));
  if (state.slideId) select.value = state.slideId;
  // A failure is news only while it stands: a retried step that succeeded has answered it.
  const failed = slides.filter((s) => s.status === "failed" && (s.failures || []).length)
    .map((s) => { const f = s.failures[s.failures.length - 1]; return `${s.name}: ${f.job} failed — ${describeError(f.reason)}`; });
  if (failed.length) showAlert(failed.join("; "));
}

const imageCache = new Map();

// The image + label pyramids of a slide (kept, so guided thumbnails of other slides are cheap).
export async function slidePyramids(slideId) {
  if (!imageCache.has(slideId)) {
    const p = (async () => {
      const urls = new PresignedUrls(state.api, state.projectId, slideId);
      const image = await openImage(new PresignedStore(urls, "image.ome.zarr"));
      const labels = await openLabels(image);
      return { image, labels };
    })();
    imageCache.set(slideId, p);
    p.catch(() => imageCache.delete(slideId));
  }
  return imageCache.get(slideId);
}

export async function openSlide(slideId) {
  if (state.slideId === slideId && state.viewer) return;
  state.slideId = slideId;
  state.labelsSeq = null; // live updates wait for this slide's labels to load
  state.labelEntries = new Map();
  state.labelsLoading = true;
  for (const m of Object.values(state.modes)) if (m.onLabels) m.onLabels();
  state.slide = (state.project.slides || []).find((s) => s.slide_id === slideId);
  $("#slide-select").value = slideId;
  $("#slide-name").textContent = slideName(slideId);
  const { image, labels } = await slidePyramids(slideId);
  showAlert("");
  renderSlides(); // shows any failed jobs again
  mountViewer(image, labels);
  const count = (state.slide && state.slide.segmentation && state.slide.segmentation.count) || DEFAULT_COUNT;
  state.colours.resize(count);
  state.colours.setCategories(categories());
  await Promise.all([loadLabels(), loadPredictions()]);
  for (const m of Object.values(state.modes)) if (m.onSlide) m.onSlide();
}

export function mountViewer(image, labels) {
  if (state.viewer) state.viewer.destroy();
  state.image = image;
  state.labels = labels;
  $("#viewer").replaceChildren();
  state.viewer = createViewer($("#viewer"), image, {
    onFirstDraw: (ms) => {
      $("#draw-time").textContent = `first view ${ms.toFixed(0)} ms`;
    },
  });
  state.overlay = labels ? new Overlay(state.viewer, labels, state.colours) : null;
  if (state.overlay) applyOverlayControls();
  for (const m of Object.values(state.modes)) if (m.onViewer) m.onViewer();
}

export function applyOverlayControls() {
  const o = state.overlay;
  if (!o) return;
  o.opacity = Number($("#opacity").value) / 100;
  o.visible = $("#show-overlay").checked;
  const boundaries = $("#show-boundaries").checked;
  const labels = $("#show-labels").checked;
  const preds = $("#show-predictions").checked;
  const recolour = labels !== state.colours.showLabels || preds !== state.colours.showPredictions || boundaries !== o.showBoundaries;
  state.colours.showLabels = labels;
  state.colours.showPredictions = preds;
  o.showBoundaries = boundaries;
  if (recolour) {
    state.colours.rebuild();
    o.repaintAll();
  } else o.draw();
}

// Zoom to a superpixel's box (capped at native resolution) and ring it.
export function zoomTo(bbox, id) {
  if (state.viewer && bbox) zoomToBox(state.viewer, bbox);
  if (state.overlay && id) state.overlay.highlight(id);
}

export function modeAllowed(mode, role = state.role) {
  return !GATED.includes(mode) || may(mode, role);
}

function applyRole() {
  for (const b of document.querySelectorAll(".modes button")) b.hidden = !modeAllowed(b.dataset.mode);
  if (!modeAllowed(state.mode)) setMode("label");
}

export function setMode(mode) {
  if (!MODES.includes(mode) || !modeAllowed(mode)) return;
  state.mode = mode;
  document.body.dataset.mode = mode;
  for (const b of document.querySelectorAll(".modes button")) b.setAttribute("aria-selected", String(b.dataset.mode === mode));
  for (const s of document.querySelectorAll("[data-panel]")) s.hidden = s.dataset.panel !== mode;
  $("#filmstrip").hidden = mode !== "guided";
  for (const [name, m] of Object.entries(state.modes)) {
    if (name === mode && m.enter) m.enter();
    else if (m.leave) m.leave();
  }
  if (state.viewer) setTimeout(() => state.overlay && state.overlay.requestDraw(), 0);
}
