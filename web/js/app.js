// HistoLabel web app: wiring of login, project/slide selection, viewer + overlay and the modes.
import { Api, ApiError, Outbox } from "./api.js";
import { openImage, openLabels } from "./pyramid.js";
import { PresignedStore, PresignedUrls, httpStore } from "./stores.js";
import { createViewer, zoomToBox } from "./viewer.js";
import { Overlay } from "./overlay.js";
import { SuperpixelColours } from "./lut.js";
import { LabelMode } from "./labeling.js";
import { GuidedMode } from "./guided.js";
import { ReviewMode } from "./review.js";
import { TrainingMode } from "./training.js";
import { AuditMode } from "./audit.js";
import { ManageMode } from "./manage.js";
import { readSettings, settingsFields } from "./setup.js";
import { Live } from "./live.js";
import { renderLegend } from "./legend.js";
import { $, el, eventKey, isTyping, toast } from "./ui.js";

const MODES = ["label", "guided", "review", "training", "audit", "manage"];
const DEFAULT_COUNT = 4096;

export const state = {
  api: null, outbox: null, config: null,
  projectId: null, project: null, role: null, user: null, myProjects: [],
  slideId: null, slide: null, image: null, labels: null,
  viewer: null, overlay: null, colours: new SuperpixelColours(DEFAULT_COUNT, []),
  labelEntries: new Map(), predictionsVersion: null, people: {},
  labelsLoading: false, labelsSeq: null, edits: [], live: null,
  mode: "label", modes: {}, ready: false,
};
window.histolabel = state; // for the browser tests and the console

function categories() {
  return (state.project && state.project.categories) || [];
}

export function categoryById(id) {
  return categories().find((c) => c.id === id);
}

export function showAlert(message) {
  const box = $("#alert");
  if (!message) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.hidden = false;
  box.textContent = message;
}

// An error in words: a 422's field messages, never "[object Object]", and no storage paths
// (s3://bucket/key means nothing to a pathologist and tells an outsider where data lives).
export function describeError(err) {
  let text;
  if (err instanceof ApiError) {
    const detail = err.body && err.body.detail;
    if (Array.isArray(detail)) {
      text = detail.map((d) => (d && typeof d === "object" ? `${fieldName(d.field)}: ${d.msg}` : String(d))).join("; ");
    } else if (detail && typeof detail === "object") text = JSON.stringify(detail);
    else if (err.status === 0) text = "The server cannot be reached; check the connection and try again.";
    else text = err.message;
  } else text = String(err && err.message ? err.message : err);
  return text.replace(/s3:\/\/[^\s'",;)]+/g, "the stored file");
}

function fieldName(field) {
  return String(field || "input").split(".").filter((p) => !/^\d+$/.test(p)).join(" ").replace(/_/g, " ") || "input";
}

async function boot() {
  const config = await fetch("config.json").then((r) => (r.ok ? r.json() : {})).catch(() => ({}));
  state.config = config;
  const params = new URLSearchParams(location.search);
  if (params.get("zarr")) return openStandalone(params.get("zarr"));
  if (!config.apiUrl) {
    showAlert("config.json has no apiUrl: this app cannot reach its API.");
    return;
  }
  state.api = new Api(config.apiUrl);
  state.outbox = new Outbox(state.api);
  state.outbox.addEventListener("change", renderOutbox);
  state.outbox.addEventListener("failed", (e) => showAlert(`Saving an edit failed: ${describeError(e.detail.error)} — use Retry in the top bar.`));
  state.outbox.addEventListener("refused", (e) => {
    showAlert(`An edit was refused: ${describeError(e.detail.error)} — the labels shown are the server's again.`);
    if (state.slideId) loadLabels().catch(() => {});
  });
  // An edit still pending or failed is lost if the tab closes: the browser asks first.
  window.addEventListener("beforeunload", (e) => {
    if (state.outbox.pending || state.outbox.failed.length) e.preventDefault();
  });
  state.api.addEventListener("unauthorized", () => showLogin("Your session has expired; please sign in again."));
  state.api.takeHostedToken();
  wireChrome();
  state.modes = {
    label: new LabelMode(state), guided: new GuidedMode(state), review: new ReviewMode(state),
    training: new TrainingMode(state), audit: new AuditMode(state), manage: new ManageMode(state),
  };
  if (!state.api.signedIn) await showLogin();
  afterLogin(params.get("project") || localStorage.getItem("histolabel.lastProject"));
}

function showLogin(message = "") {
  const dialog = $("#login-dialog");
  $("#login-error").textContent = message;
  state.api.loginConfig().then((cfg) => {
    if (cfg.hostedUiUrl) {
      const link = $("#hosted-login");
      link.hidden = false;
      link.href = cfg.hostedUiUrl;
    }
  }).catch(() => {});
  if (!dialog.open) dialog.showModal();
  return new Promise((resolve) => {
    $("#login-form").onsubmit = async (ev) => {
      ev.preventDefault();
      const button = $("#login-submit");
      button.disabled = true;
      $("#login-error").textContent = "";
      try {
        await state.api.login($("#login-username").value.trim(), $("#login-password").value, $("#login-new-password").value);
        dialog.close();
        resolve();
      } catch (err) {
        // An invited user signs in with a temporary password first and must choose their own.
        if (err.code === "new_password_required") $("#login-new-password-row").hidden = false;
        $("#login-error").textContent = describeError(err);
      } finally {
        button.disabled = false;
      }
    };
  });
}

async function afterLogin(projectId) {
  const claims = state.api.claims();
  state.user = claims["cognito:username"] || claims.username || claims.sub;
  state.email = claims.email || null;
  showUser();
  if (!state.email) {
    state.api.get("/me").then((me) => {
      state.email = me.email || null;
      showUser();
    }, () => {});
  }
  await loadMyProjects();
  renderRecent();
  let opened = false;
  if (projectId) opened = await openProject(projectId).then(() => true, (err) => (showAlert(describeError(err)), false));
  if (!opened && state.myProjects.length) showProjectPicker();
  state.ready = true;
}

// The caller's projects (GET /projects); a failure only leaves the picker empty.
async function loadMyProjects() {
  try {
    state.myProjects = (await state.api.get("/projects")).projects || [];
  } catch {
    state.myProjects = [];
  }
  return state.myProjects;
}

function showProjectPicker() {
  const list = $("#project-list");
  list.replaceChildren(...state.myProjects.map((p) => el("li", {},
    el("button", { type: "button", "data-project": p.project_id, onclick: () => pickProject(p.project_id) },
      `${p.name} `, el("span", { class: "badge" }, p.role)))));
  const dialog = $("#project-picker");
  // Not modal: the top bar (open by id, New…) stays usable beside it.
  if (!dialog.open) dialog.show();
}

function pickProject(projectId) {
  $("#project-picker").close();
  openProject(projectId).catch((err) => showAlert(describeError(err)));
}

function renderRecent() {
  const recent = JSON.parse(localStorage.getItem("histolabel.recent") || "[]");
  const mine = new Map((state.myProjects || []).map((p) => [p.project_id, p]));
  const ids = [...recent, ...[...mine.keys()].filter((p) => !recent.includes(p))];
  $("#recent-projects").replaceChildren(...ids.map((p) => el("option", { value: p }, mine.has(p) ? `${mine.get(p).name} (${mine.get(p).role})` : p)));
}

function remember(projectId) {
  const recent = JSON.parse(localStorage.getItem("histolabel.recent") || "[]").filter((p) => p !== projectId);
  recent.unshift(projectId);
  localStorage.setItem("histolabel.recent", JSON.stringify(recent.slice(0, 10)));
  localStorage.setItem("histolabel.lastProject", projectId);
  renderRecent();
}

// A deployed pool's usernames are opaque ids (people sign in by email): show the email.
function showUser() {
  $("#user-name").textContent = state.email || who(state.user);
  $("#user-name").title = state.user;
}

// How to show a user id: the member's name or email from the pool (GET .../people), else the id.
export function who(user) {
  const p = user && state.people[user];
  return (p && (p.name || p.email)) || user || "";
}

// <option>s for a member filter: "anyone", then the project's members by how they are shown.
export function memberOptions() {
  const members = Object.keys((state.project && state.project.members) || {}).sort((a, b) => who(a).localeCompare(who(b)));
  return [el("option", { value: "" }, "anyone"), ...members.map((u) => el("option", { value: u }, who(u)))];
}

async function loadPeople() {
  try {
    const res = await state.api.get(`/projects/${encodeURIComponent(state.projectId)}/people`);
    state.people = res.people || {};
  } catch {
    state.people = {}; // names are a nicety: ids still identify everyone
  }
}

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

export async function openProject(projectId) {
  state.projectId = projectId;
  $("#project-id").value = projectId;
  // Members change rarely: their names load once per opened project, beside its state.
  await Promise.all([loadPeople(), refreshProject()]);
  showUser();
  state.edits = [];
  renderOutbox();
  if (!state.live) state.live = new Live(state);
  state.live.start();
  if ($("#project-picker").open) $("#project-picker").close();
  remember(projectId);
  const url = new URL(location.href);
  url.searchParams.set("project", projectId);
  history.replaceState(null, "", url);
  renderSlides();
  const slides = state.project.slides || [];
  const ready = slides.find((s) => s.status === "segmented" || s.status === "embedded") || slides.find((s) => s.status === "ingested");
  if (ready) await openSlide(ready.slide_id);
  else showAlert(slides.length ? "No slide is ingested yet." : "This project has no slides yet.");
}

function renderSlides() {
  const select = $("#slide-select");
  const slides = state.project.slides || [];
  select.replaceChildren(...slides.map((s) => el("option", { value: s.slide_id, disabled: !["ingested", "segmented", "embedded"].includes(s.status) }, `${s.name} (${s.status})`)));
  if (state.slideId) select.value = state.slideId;
  // A failure is news only while it stands: a retried step that succeeded has answered it.
  const failed = slides.filter((s) => s.status === "failed" && (s.failures || []).length)
    .map((s) => { const f = s.failures[s.failures.length - 1]; return `${s.name}: ${f.job} failed — ${describeError(f.reason)}`; });
  if (failed.length) showAlert(failed.join("; "));
}

export function slideName(slideId) {
  const s = ((state.project && state.project.slides) || []).find((x) => x.slide_id === slideId);
  return s ? s.name : slideId;
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

function mountViewer(image, labels) {
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

async function openStandalone(url) {
  const image = await openImage(httpStore(url));
  const labels = await openLabels(image);
  state.colours.resize(DEFAULT_COUNT);
  wireOverlayControls();
  mountViewer(image, labels);
  if (state.overlay) {
    state.colours.setCategories([{ id: "a", color: "#e15759" }, { id: "b", color: "#4e79a7" }]);
    state.colours.rebuild();
  }
  state.ready = true;
}

export async function loadLabels() {
  const slideId = state.slideId;
  state.labelsLoading = true;
  let res;
  try {
    res = await state.api.get(`/projects/${encodeURIComponent(state.projectId)}/slides/${encodeURIComponent(slideId)}/labels`);
  } finally {
    if (slideId === state.slideId) state.labelsLoading = false;
  }
  if (slideId !== state.slideId) return res; // another slide was opened meanwhile
  state.labelEntries = new Map(res.entries.map((e) => [e.id, e]));
  state.labelsSeq = res.seq;
  state.labelsCursor = res.cursor; // what GET .../changes continues from (one seq per member stream)
  const maxId = res.entries.reduce((m, e) => Math.max(m, e.id), 0);
  if (maxId > state.colours.count) state.colours.resize(maxId);
  relabel();
  return res;
}

// Colours from the label entries (shown category = `c`, the current label of the superpixel).
export function relabel() {
  const colours = state.colours;
  colours.label.fill(0);
  for (const e of state.labelEntries.values()) {
    if (e.id <= colours.count) colours.label[e.id] = colours.index.get(e.c) || 0;
  }
  colours.rebuild();
  if (state.overlay) state.overlay.repaintAll();
  for (const m of Object.values(state.modes)) if (m.onLabels) m.onLabels();
}

function showLegend() {
  renderLegend($("#legend"), categories(), { predictions: !!state.predictions });
}

// Per-slide predictions of the current model; see docs/api.md (GET .../slides/{s}/predictions).
export async function loadPredictions() {
  const base = `/projects/${encodeURIComponent(state.projectId)}/slides/${encodeURIComponent(state.slideId)}`;
  let res;
  try {
    res = await state.api.request("GET", `${base}/predictions`, undefined, { retries: [] });
  } catch (err) {
    // 404: no model yet; 409: no predictions for this slide yet. 0: an API without this route answers
    // its CORS preflight with 403, which fetch reports as a network error.
    if (err instanceof ApiError && [0, 403, 404, 409].includes(err.status)) return null;
    throw err;
  }
  if (!res || !res.ids) return null;
  const cats = res.classes.map((i) => res.categories[i]);
  state.predictions = { version: res.model_version, ids: res.ids, cats, certainty: res.certainty };
  state.colours.setPredictions(res.ids, cats);
  if (state.overlay) state.overlay.repaintAll();
  showLegend();
  return res;
}

// What the server's fold does with my label or unlabel (histolabel/projections/labels.py): my
// label replaces only mine; removing mine shows the latest colleague's label again.
function foldMine(entry, id, categoryId) {
  const e = entry ? { ...entry, l: { ...entry.l } } : { id, l: {}, c: null, cb: null, ca: null, r: null };
  const me = state.user;
  if (categoryId != null) {
    delete e.l[me];
    const at = new Date().toISOString();
    e.l[me] = [categoryId, at];
    Object.assign(e, { c: categoryId, cb: me, ca: at, r: null });
  } else if (me in e.l) {
    delete e.l[me];
    if (e.cb === me) {
      const users = Object.keys(e.l);
      const last = users[users.length - 1];
      Object.assign(e, last ? { c: e.l[last][0], ca: e.l[last][1], cb: last } : { c: null, ca: null, cb: null }, { r: null });
    }
  }
  return !Object.keys(e.l).length && e.c == null && e.r == null ? null : e;
}

function showEntries(ids) {
  for (const id of ids) {
    const e = state.labelEntries.get(id);
    state.colours.setLabels([id], e ? e.c : null);
  }
  if (state.overlay) state.overlay.recolour();
  for (const m of Object.values(state.modes)) if (m.onLabels) m.onLabels();
}

// Applies my label change locally (optimistically) and recolours the overlay.
export function applyLocalLabels(ids, categoryId) {
  for (const id of ids) {
    const e = foldMine(state.labelEntries.get(id), id, categoryId);
    if (e) state.labelEntries.set(id, e);
    else state.labelEntries.delete(id);
  }
  showEntries(ids);
}

// Entries as the server holds them now (GET .../changes): replaces what was shown for those ids.
export function applyServerEntries(entries, removed) {
  for (const id of removed) state.labelEntries.delete(id);
  for (const e of entries) state.labelEntries.set(e.id, e);
  const maxId = entries.reduce((m, e) => Math.max(m, e.id), 0);
  if (maxId > state.colours.count) state.colours.resize(maxId);
  showEntries([...removed, ...entries.map((e) => e.id)]);
}

// My own category on a superpixel of the open slide (null: none).
export function myLabel(id) {
  const e = state.labelEntries.get(id);
  const mine = e && e.l && e.l[state.user];
  return mine ? mine[0] : null;
}

const MAX_UNDO = 50;

// Sends a label/unlabel edit through the outbox; returns the API's answer. The edit is kept
// for undo with what I had on each superpixel before (edits on a slide not open were made on
// superpixels the guided queue offered me: unlabeled by me).
export function sendLabels(slideId, ids, categoryId, source, { undoable = true } = {}) {
  const base = `/projects/${encodeURIComponent(state.projectId)}/slides/${encodeURIComponent(slideId)}`;
  const list = [...ids];
  if (undoable) {
    const open = slideId === state.slideId;
    state.edits.push({ slideId, categoryId, before: list.map((id) => [id, open ? myLabel(id) : null]) });
    if (state.edits.length > MAX_UNDO) state.edits.shift();
  }
  if (slideId === state.slideId) applyLocalLabels(list, categoryId);
  const onDone = () => state.live && state.live.poke();
  const sent = categoryId == null
    ? state.outbox.send(`${base}/unlabel`, { ids: list, source }, { onDone })
    : state.outbox.send(`${base}/labels`, { category_id: categoryId, ids: list, source }, { onDone });
  renderOutbox();
  return sent;
}

// Undo my last edit: each superpixel gets back the label I had on it (colleagues' labels were
// never touched by my edit, so they need nothing).
export async function undoLast() {
  const edit = state.edits.pop();
  renderOutbox();
  if (!edit) return showAlert("Nothing to undo."), null;
  const groups = new Map();
  for (const [id, before] of edit.before) {
    const key = before ?? "";
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(id);
  }
  const sends = [...groups].map(([cat, ids]) => sendLabels(edit.slideId, ids, cat || null, "click", { undoable: false }));
  const results = await Promise.allSettled(sends);
  if (results.some((r) => r.status === "rejected")) return null;
  $("#outbox").dataset.undone = String(Number($("#outbox").dataset.undone || 0) + 1);
  return edit;
}

// Zoom to a superpixel's box (capped at native resolution) and ring it.
export function zoomTo(bbox, id) {
  if (state.viewer && bbox) zoomToBox(state.viewer, bbox);
  if (state.overlay && id) state.overlay.highlight(id);
}

function renderOutbox() {
  const box = $("#outbox");
  const pending = state.outbox.pending;
  const failed = state.outbox.failed;
  const parts = [];
  if (pending) parts.push(el("span", {}, `Saving ${pending}…`));
  if (failed.length) {
    parts.push(el("span", { class: "failed" }, `✖ ${failed.length} edit(s) not saved `));
    parts.push(el("button", { type: "button", id: "retry-edits", onclick: () => state.outbox.retryFailed().then(() => { if (!state.outbox.failed.length) showAlert(""); }) }, "Retry"));
  }
  if (!pending && !failed.length && state.edits.length) parts.push(el("span", {}, "✔ All edits saved"));
  if (state.edits.length) parts.push(el("button", { type: "button", id: "undo-btn", title: "Undo your last edit (Ctrl+Z)", onclick: () => undoLast() }, "↶ Undo"));
  box.replaceChildren(...parts);
}

// Which modes a role can use (histolabel/api/routes.py: the queue is for learners, the audit
// trail for owners and auditors): the others are not offered at all.
const MODE_ROLES = {
  guided: ["owner", "annotator", "reviewer"],
  audit: ["owner", "auditor"],
};

export function modeAllowed(mode, role = state.role) {
  return !MODE_ROLES[mode] || MODE_ROLES[mode].includes(role);
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

function applyOverlayControls() {
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

function wireOverlayControls() {
  for (const id of ["#opacity", "#show-overlay", "#show-boundaries", "#show-labels", "#show-predictions"]) {
    $(id).addEventListener("input", applyOverlayControls);
  }
}

function wireChrome() {
  wireOverlayControls();
  for (const b of document.querySelectorAll(".modes button")) b.addEventListener("click", () => setMode(b.dataset.mode));
  $("#project-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    openProject($("#project-id").value.trim()).catch((err) => showAlert(describeError(err)));
  });
  $("#slide-select").addEventListener("change", (ev) => openSlide(ev.target.value).catch((err) => showAlert(describeError(err))));
  $("#logout-btn").addEventListener("click", () => {
    state.api.logout();
    location.reload();
  });
  const npd = $("#new-project-dialog");
  $("#new-project-btn").addEventListener("click", () => npd.showModal());
  $("#picker-new-project").addEventListener("click", () => {
    $("#project-picker").close();
    npd.showModal();
  });
  npd.querySelector("[data-close]").addEventListener("click", () => npd.close());
  $("#np-settings").append(...settingsFields({}, "np"));
  $("#new-project-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const setup = readSettings(ev.target);
    if (setup.error) {
      npd.querySelector(".error").textContent = setup.error;
      return;
    }
    try {
      const p = await state.api.post("/projects", { project_id: f.get("project_id"), name: f.get("name"), site: f.get("site"), settings: setup.settings });
      npd.close();
      await openProject(p.project_id);
    } catch (err) {
      npd.querySelector(".error").textContent = describeError(err);
    }
  });
  document.addEventListener("keydown", onKey);
}

function onKey(ev) {
  if (isTyping(ev.target) || document.querySelector("dialog[open]")) return;
  const key = eventKey(ev);
  if ((ev.ctrlKey || ev.metaKey) && !ev.shiftKey && ev.key.toLowerCase() === "z") {
    ev.preventDefault();
    if (["owner", "annotator"].includes(state.role)) undoLast();
    return;
  }
  if (ev.altKey && /^[1-6]$/.test(ev.key)) {
    setMode(MODES[Number(ev.key) - 1]);
    ev.preventDefault();
    return;
  }
  const mode = state.modes[state.mode];
  if (mode && mode.onKey && mode.onKey(key, ev)) {
    ev.preventDefault();
    return;
  }
  if (key === "alt+o") {
    $("#show-overlay").checked = !$("#show-overlay").checked;
    applyOverlayControls();
    ev.preventDefault();
  }
}

export { toast };

boot().catch((err) => showAlert(`Start-up failed: ${describeError(err)}`));
