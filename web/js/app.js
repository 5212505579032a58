// HistoLabel web app: the composition point. It loads the vocabulary, wires login, project
// picker, the top bar and keys, and makes the modes; the modes import what they share from
// state.js, session.js, labels.js, names.js and ui.js, never from here.
import { Api, Outbox } from "./api.js";
import { AuditMode } from "./audit.js";
import { GuidedMode } from "./guided.js";
import { loadLabels, renderOutbox, undoLast } from "./labels.js";
import { LabelMode } from "./labeling.js";
import { Live } from "./live.js";
import { ManageMode } from "./manage.js";
import { who } from "./names.js";
import { openImage, openLabels } from "./pyramid.js";
import { ReviewMode } from "./review.js";
import { MODES, applyOverlayControls, mountViewer, openSlide, refreshProject, renderSlides, setMode } from "./session.js";
import { readSettings, settingsFields } from "./setup.js";
import { DEFAULT_COUNT, state } from "./state.js";
import { httpStore } from "./stores.js";
import { TrainingMode } from "./training.js";
import { $, describeError, el, eventKey, isTyping, showAlert } from "./ui.js";
import { loadVocabulary, may } from "./vocabulary.js";

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
  // Roles, who may do what, the palette and settings choices: the panels are built from them.
  await loadVocabulary(state.api);
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

async function loadPeople() {
  try {
    const res = await state.api.get(`/projects/${encodeURIComponent(state.projectId)}/people`);
    state.people = res.people || {};
  } catch {
    state.people = {}; // names are a nicety: ids still identify everyone
  }
}

async function openProject(projectId) {
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
    if (may("label")) undoLast();
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


boot().catch((err) => showAlert(`Start-up failed: ${describeError(err)}`));
