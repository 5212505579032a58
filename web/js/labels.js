// The open slide's labels and predictions: loading them, my edits (optimistic, through the
// outbox, with undo) and what the overlay shows of them.
import { ApiError } from "./api.js";
import { renderLegend } from "./legend.js";
import { categories, state } from "./state.js";
import { $, el, showAlert } from "./ui.js";

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

export function showLegend() {
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

export function renderOutbox() {
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
