// The owner's Project panel: setup (settings with the expected superpixel count), slides (browser
// upload by presigned multipart straight to S3, resumable, with progress; pipeline status, the
// reason of a failed step, Retry, Remove), members (invite by email, role, remove), jobs and
// models (state, duration, reason, Retry; model versions with metrics and "Use this version"),
// and export. Reviewers and auditors see the export only.
import { loadPredictions } from "./labels.js";
import { who } from "./names.js";
import { openSlide, refreshProject } from "./session.js";
import { state as app } from "./state.js";
import { downloadMask, ImportPanel } from "./imports.js";
import { changedSettings, markSaved, readSettings, settingsFields, SEGMENTATION } from "./setup.js";
import { $, confirmDialog, describeError, el, fmtTime, plainReason, showAlert, toast } from "./ui.js";
import { inviteRoles, may, roles } from "./vocabulary.js";

const POLL_MS = 2000;
// Superpixels in the project from which an export runs as a job (GET .../export answers within a
// request below them): outlines cost ~1 ms each, table rows far less.
const JOB_EXPORT_FROM = { geojson: 20000, csv: 200000, parquet: 200000 };
const PARALLEL_PARTS = 3;
const READY = ["segmented", "embedded"];
const ACTIVE = ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"];
const enc = encodeURIComponent;

// The server's filename rule (histolabel/api/selfservice.py): other characters become "_".
export function safeFilename(name) {
  const s = name.replace(/[^A-Za-z0-9_.\- ]/g, "_").replace(/^[^A-Za-z0-9]+/, "").slice(0, 200);
  return s || "slide";
}

function putPart(url, blob, onProgress) {
  // XHR, not fetch: fetch reports no upload progress. No Content-Type (a Blob slice has none),
  // so the presigned signature holds.
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => (xhr.status >= 200 && xhr.status < 300 ? resolve() : reject(new Error(`S3 answered HTTP ${xhr.status} for a part`)));
    xhr.onerror = () => reject(new Error("the network failed while sending a part"));
    xhr.send(blob);
  });
}

export class ManageMode {
  constructor(state) {
    this.state = state;
    this.root = $("#manage-panel");
    this.timer = null;
    this.jobs = [];
    this.training = null;
    this.uploads = new Map(); // file key -> {name, loaded, size, status, error}
    this.render();
  }

  get pid() {
    return this.state.projectId;
  }

  get owner() {
    return may("manage", this.state.role);
  }

  // Slides uploaded from this browser whose pipeline is still running, kept across reloads.
  get driven() {
    return new Set(JSON.parse(localStorage.getItem(`histolabel.pipeline.${this.pid}`) || "[]"));
  }

  drive(slideId, on = true) {
    const s = this.driven;
    if (on) s.add(slideId);
    else s.delete(slideId);
    localStorage.setItem(`histolabel.pipeline.${this.pid}`, JSON.stringify([...s]));
  }

  render() {
    const owner = this.owner;
    const section = (id, title, ...body) => el("section", { id, class: "mg-section", "aria-labelledby": `${id}-h` }, el("h3", { id: `${id}-h` }, title), ...body);
    this.root.replaceChildren(
      el("h2", {}, "Project"),
      owner ? section("mg-settings", "Setup",
        el("form", { id: "mg-settings-form", novalidate: true }, ...settingsFields(this.state.project ? this.state.project.settings : {}, "mg"),
          el("div", { class: "row" }, el("label", { class: "field" }, "Expected superpixels on", el("select", { id: "mg-est-slide" })),
            el("output", { id: "mg-estimate", "aria-live": "polite" })),
          el("p", { class: "muted" }, "Size, compactness and magnification apply to slides segmented from now on."),
          el("div", { class: "row" }, el("button", { type: "submit", class: "primary" }, "Save settings"), el("span", { id: "mg-settings-msg", role: "status" })))) : null,
      owner ? section("mg-slides", "Slides",
        el("div", { class: "row" }, el("input", { id: "mg-files", type: "file", multiple: true, "aria-label": "Slide files" }),
          el("button", { type: "button", id: "mg-upload", class: "primary" }, "Upload")),
        el("ul", { id: "mg-uploads", class: "mg-list" }),
        el("ul", { id: "mg-slide-list", class: "mg-list" })) : null,
      owner ? section("mg-imports", "Import from other tools", el("div", { id: "mg-import-root" })) : null,
      owner ? section("mg-members", "Members",
        el("ul", { id: "mg-member-list", class: "mg-list" }),
        el("form", { id: "mg-invite-form", class: "mg-invite" },
          el("label", { class: "field" }, "Email", el("input", { name: "email", type: "email", required: true, autocomplete: "off" })),
          el("label", { class: "field" }, "Role", el("select", { name: "role" }, ...inviteRoles().map((r) => el("option", { value: r }, r)))),
          el("label", { class: "field" }, "Site", el("input", { name: "site", required: true, value: "site-a" })),
          el("div", { class: "row" }, el("button", { type: "submit" }, "Invite"), el("span", { id: "mg-invite-msg", role: "status" })))) : null,
      owner ? section("mg-jobs", "Jobs",
        el("table", { id: "mg-job-table" }, el("thead", {}, el("tr", {}, ...["Job", "Slide", "State", "Took", ""].map((h) => el("th", {}, h)))), el("tbody"))) : null,
      section("mg-models", "Models", el("ul", { id: "mg-model-list", class: "mg-list" })),
      section("mg-export", "Export",
        el("label", {}, el("input", { type: "checkbox", id: "mg-anon" }), " hide annotators' identities"),
        el("div", { class: "row" },
          ...[["geojson", "GeoJSON (QuPath)"], ["csv", "CSV"], ["parquet", "Parquet"]].map(([f, t]) => el("button", { type: "button", "data-export": f }, t))),
        el("div", { class: "row" }, el("label", { class: "field" }, "Label mask of", el("select", { id: "mg-mask-slide" })),
          el("button", { type: "button", id: "mg-mask" }, "Mask (TIFF)")),
        el("span", { id: "mg-export-msg", role: "status" })),
    );
    this.wire();
    this.renderAll();
  }

  wire() {
    const form = $("#mg-settings-form", this.root);
    if (form) {
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        this.saveSettings(form);
      });
      form.addEventListener("input", () => this.estimateSoon());
      $("#mg-est-slide", this.root).addEventListener("change", () => this.estimateSoon());
    }
    const upload = $("#mg-upload", this.root);
    if (upload) upload.addEventListener("click", () => this.uploadFiles([...$("#mg-files", this.root).files]));
    const invite = $("#mg-invite-form", this.root);
    if (invite) invite.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.invite(invite);
    });
    for (const b of this.root.querySelectorAll("[data-export]")) b.addEventListener("click", () => this.exportAs(b.dataset.export));
    const imports = $("#mg-import-root", this.root);
    this.imports = imports ? new ImportPanel(imports, this.pid) : null;
    $("#mg-mask", this.root).addEventListener("click", () => downloadMask(this.pid, $("#mg-mask-slide", this.root).value, $("#mg-export-msg", this.root)));
  }

  onProject() {
    if (!this.rendered || this.renderedRole !== this.state.role || this.renderedProject !== this.pid) {
      this.rendered = true;
      this.renderedRole = this.state.role;
      this.renderedProject = this.pid;
      this.render();
      return;
    }
    this.renderAll();
  }

  async enter() {
    this.active = true;
    await this.refresh();
    this.poll();
    this.estimateSoon();
  }

  leave() {
    this.active = false;
  }

  poll() {
    clearTimeout(this.timer);
    // Keeps polling while uploads or driven pipelines are under way, even in another mode.
    const busy = this.active || [...this.uploads.values()].some((u) => u.status === "uploading") || this.pipelinePending();
    if (!busy || !this.pid) return;
    this.timer = setTimeout(async () => {
      try {
        await refreshProject();
        await this.refresh();
      } catch {
        /* the next round tries again */
      }
      this.poll();
    }, POLL_MS);
  }

  pipelinePending() {
    const slides = (this.state.project && this.state.project.slides) || [];
    const driven = this.driven;
    return slides.some((s) => driven.has(s.slide_id) && s.status !== "embedded");
  }

  async refresh() {
    if (!this.pid) return;
    const base = `/projects/${enc(this.pid)}`;
    const [jobs, training] = await Promise.all([
      this.owner ? this.state.api.get(`${base}/jobs`).catch(() => null) : null,
      this.state.api.get(`${base}/training`).catch(() => null),
    ]);
    if (jobs) this.jobs = jobs.jobs;
    if (training) this.training = training;
    await this.advancePipelines();
    // The first slide ready to label opens by itself (the project may have had none till now).
    const slides = (this.state.project && this.state.project.slides) || [];
    const ready = slides.find((s) => READY.includes(s.status));
    if (ready && !this.state.slideId) {
      showAlert("");
      await openSlide(ready.slide_id).catch((err) => showAlert(describeError(err)));
    }
    this.renderAll();
  }

  // Ingest -> segment -> embed is chained by the server (the job-events handler starts each
  // next step when the last one succeeds); this browser only follows the slides it uploaded, to
  // say what runs next until they are embedded.
  async advancePipelines() {
    const driven = this.driven;
    for (const s of (this.state.project && this.state.project.slides) || []) {
      if (driven.has(s.slide_id) && s.status === "embedded") this.drive(s.slide_id, false);
    }
  }

  renderAll() {
    if (!this.state.project) return;
    this.renderEstimateSlides();
    this.renderMaskSlides();
    if (this.imports) this.imports.renderSlides();
    this.renderUploads();
    this.renderSlides();
    this.renderMembers();
    this.renderJobs();
    this.renderModels();
  }

  // ---- setup --------------------------------------------------------------------------------

  renderEstimateSlides() {
    const select = $("#mg-est-slide", this.root);
    if (!select) return;
    const slides = (this.state.project.slides || []).filter((s) => s.ingest || READY.includes(s.status) || s.status === "ingested");
    const keep = select.value;
    select.replaceChildren(...slides.map((s) => el("option", { value: s.slide_id }, s.name)));
    if (slides.some((s) => s.slide_id === keep)) select.value = keep;
    if (!slides.length) $("#mg-estimate", this.root).textContent = "no ingested slide yet";
  }

  renderMaskSlides() {
    const select = $("#mg-mask-slide", this.root);
    const slides = (this.state.project.slides || []).filter((s) => s.segmentation);
    const keep = select.value;
    select.replaceChildren(...slides.map((s) => el("option", { value: s.slide_id }, s.name)));
    if (slides.some((s) => s.slide_id === keep)) select.value = keep;
    $("#mg-mask", this.root).disabled = !slides.length;
  }

  estimateSoon() {
    clearTimeout(this.estimateTimer);
    this.estimateTimer = setTimeout(() => this.estimate(), 300);
  }

  async estimate() {
    const form = $("#mg-settings-form", this.root);
    const out = $("#mg-estimate", this.root);
    const slide = $("#mg-est-slide", this.root);
    if (!form || !slide || !slide.value) return;
    const read = readSettings(form);
    if (read.error) {
      out.textContent = "—";
      return;
    }
    try {
      const r = await this.state.api.get(`/projects/${enc(this.pid)}/slides/${enc(slide.value)}/superpixel-estimate`,
        { superpixel_size: read.settings.superpixel_size, magnification: read.settings.magnification });
      out.textContent = `≈ ${r.count.toLocaleString()} superpixels of ${r.superpixel_px} px (level ${r.level}${r.magnification ? `, ${r.magnification}×` : ""}, ${(r.tissue_fraction * 100).toFixed(0)}% tissue)`;
      out.dataset.count = String(r.count);
    } catch (err) {
      out.textContent = describeError(err);
    }
  }

  async saveSettings(form) {
    const msg = $("#mg-settings-msg", this.root);
    const read = readSettings(form);
    if (read.error) {
      toast(msg, read.error, false);
      form.elements[read.field].focus();
      return;
    }
    const changes = changedSettings(form, read.settings);
    if (!Object.keys(changes).length) return toast(msg, "Nothing changed.");
    try {
      await this.state.api.patch(`/projects/${enc(this.pid)}/settings`, { settings: changes });
      markSaved(form);
      await refreshProject();
      const resegment = SEGMENTATION.some((k) => k in changes);
      toast(msg, resegment ? "Saved; new slides are segmented with these settings." : "Saved.");
    } catch (err) {
      toast(msg, describeError(err), false);
    }
  }

  // ---- uploads and slides -------------------------------------------------------------------

  async uploadFiles(files) {
    if (!files.length) return;
    await Promise.allSettled(files.map((f) => this.uploadFile(f)));
    $("#mg-files", this.root).value = "";
  }

  async uploadFile(file) {
    const base = `/projects/${enc(this.pid)}/uploads`;
    const key = `histolabel.upload.${this.pid}.${file.name}.${file.size}.${file.lastModified}`;
    const row = { name: file.name, size: file.size, loaded: 0, status: "uploading", error: null };
    this.uploads.set(key, row);
    this.renderUploads();
    this.poll();
    try {
      let up = JSON.parse(localStorage.getItem(key) || "null");
      let first = null;
      if (up) {
        // A page reloaded mid-upload resumes: S3 says which parts it already holds.
        first = await this.state.api.post(`${base}/parts`, { ...this.ref(up), part_numbers: [1] }).catch(() => null);
        if (!first) up = null;
      }
      if (!up) {
        up = await this.state.api.post(base, { filename: safeFilename(file.name), size: file.size });
        localStorage.setItem(key, JSON.stringify(up));
      }
      const done = new Set(first ? first.done : []);
      const loaded = new Map();
      for (const n of done) loaded.set(n, Math.min(up.part_size, file.size - (n - 1) * up.part_size));
      const show = () => {
        row.loaded = [...loaded.values()].reduce((a, b) => a + b, 0);
        this.renderUploads();
      };
      show();
      const todo = [];
      for (let n = 1; n <= up.parts; n++) if (!done.has(n)) todo.push(n);
      for (let i = 0; i < todo.length; i += 100) {
        const batch = todo.slice(i, i + 100);
        const { urls } = await this.state.api.post(`${base}/parts`, { ...this.ref(up), part_numbers: batch });
        let next = 0;
        const worker = async () => {
          while (next < batch.length) {
            const n = batch[next++];
            const blob = file.slice((n - 1) * up.part_size, Math.min(file.size, n * up.part_size));
            await putPart(urls[String(n)], blob, (b) => {
              loaded.set(n, b);
              show();
            });
            loaded.set(n, blob.size);
            show();
          }
        };
        await Promise.all(Array.from({ length: Math.min(PARALLEL_PARTS, batch.length) }, worker));
      }
      row.status = "registering";
      this.renderUploads();
      const res = await this.state.api.post(`${base}/complete`, { ...this.ref(up), name: file.name });
      localStorage.removeItem(key);
      this.drive(res.slide.slide_id);
      row.status = "done";
      row.slideId = res.slide.slide_id;
      await refreshProject();
      await this.refresh();
      this.poll();
    } catch (err) {
      row.status = "failed";
      row.error = describeError(err);
      this.renderUploads();
    }
  }

  ref(up) {
    return { upload_id: up.upload_id, slide_id: up.slide_id, filename: up.filename };
  }

  renderUploads() {
    const list = $("#mg-uploads", this.root);
    if (!list) return;
    list.replaceChildren(...[...this.uploads.values()].map((u) => el("li", { class: `upload upload-${u.status}` },
      el("span", { class: "mg-name", title: u.name }, u.name),
      el("progress", { max: u.size, value: u.loaded, "aria-label": `Upload of ${u.name}` }),
      el("span", { class: "muted" }, u.status === "uploading" ? `${Math.floor((100 * u.loaded) / Math.max(1, u.size))}%` : u.status === "failed" ? `failed: ${u.error} (choose the file again to resume)` : u.status))));
  }

  step(s) {
    const running = this.jobs.find((j) => j.slide_id === s.slide_id && ACTIVE.includes(j.status));
    if (running) return `${running.job} ${running.status.toLowerCase()}…`;
    if (s.status === "embedded") return "ready";
    if (s.status === "segmented") return this.driven.has(s.slide_id) ? "segmented; embedding next" : "segmented (no features yet)";
    if (s.status === "ingested") return this.driven.has(s.slide_id) ? "ingested; segmenting next" : "ingested (not segmented)";
    return s.status;
  }

  renderSlides() {
    const list = $("#mg-slide-list", this.root);
    if (!list) return;
    const slides = this.state.project.slides || [];
    list.replaceChildren(...slides.map((s) => {
      const failure = s.status === "failed" ? (s.failures || []).at(-1) : null;
      const failedJob = failure && this.jobs.find((j) => j.slide_id === s.slide_id && j.job === failure.job);
      return el("li", { class: "mg-slide", "data-slide": s.slide_id },
        el("div", { class: "row" }, el("span", { class: "mg-name", title: s.slide_id }, s.name),
          el("span", { class: `badge status-${s.status}`, "data-status": s.status }, s.status)),
        el("div", { class: "muted" }, this.step(s)),
        failure ? el("div", { class: "error" }, `${failure.job} failed: ${plainReason(failure.reason)}`) : null,
        el("div", { class: "row" },
          failure ? el("button", { type: "button", onclick: () => this.retry(failedJob, s, failure.job) }, "Retry") : null,
          el("button", { type: "button", class: "danger", onclick: () => this.removeSlide(s) }, "Remove")));
    }));
    if (this.slideMessage) list.append(el("li", { class: "error" }, this.slideMessage));
  }

  async retry(job, slide, kind) {
    try {
      if (job) await this.state.api.post(`/projects/${enc(this.pid)}/jobs/${enc(job.job_id)}/retry`);
      else await this.state.api.post(`/projects/${enc(this.pid)}/slides/${enc(slide.slide_id)}/jobs`, { job: kind });
      this.drive(slide.slide_id);
      this.slideMessage = null;
      await this.refresh();
      this.poll();
    } catch (err) {
      this.slideMessage = `${slide.name}: ${describeError(err)}`;
      this.renderSlides();
    }
  }

  async removeSlide(s) {
    if (!(await confirmDialog(`Remove slide “${s.name}” from the project? Its labels leave the project; the audit keeps its history.`))) return;
    try {
      await this.state.api.del(`/projects/${enc(this.pid)}/slides/${enc(s.slide_id)}`);
      this.drive(s.slide_id, false);
      await refreshProject();
    } catch (err) {
      this.slideMessage = `${s.name}: ${describeError(err)}`;
      this.renderSlides();
    }
  }

  // ---- members -------------------------------------------------------------------------------

  renderMembers() {
    const list = $("#mg-member-list", this.root);
    if (!list) return;
    const members = Object.values(this.state.project.members || {}).sort((a, b) => who(a.user).localeCompare(who(b.user)));
    list.replaceChildren(...members.map((m) => el("li", { class: "row mg-member", "data-user": m.user },
      el("span", { class: "mg-name", title: m.user }, who(m.user)),
      el("select", { "aria-label": `Role of ${who(m.user)}`, disabled: m.user === this.state.user, onchange: (e) => this.changeRole(m.user, e.target.value) },
        ...roles().map((r) => el("option", { value: r, selected: r === m.role }, r))),
      el("span", { class: "muted" }, m.site),
      m.user === this.state.user ? el("span", { class: "muted" }, "you") : el("button", { type: "button", class: "danger", onclick: () => this.removeMember(m.user) }, "Remove"))));
  }

  async changeRole(user, role) {
    const msg = $("#mg-invite-msg", this.root);
    try {
      await this.state.api.patch(`/projects/${enc(this.pid)}/members/${enc(user)}`, { role });
      await refreshProject();
      toast(msg, `${who(user)} is now ${role}.`);
    } catch (err) {
      toast(msg, describeError(err), false);
      this.renderMembers();
    }
  }

  async removeMember(user) {
    if (!(await confirmDialog(`Remove ${who(user)} from the project? Their labels stay.`))) return;
    const msg = $("#mg-invite-msg", this.root);
    try {
      await this.state.api.del(`/projects/${enc(this.pid)}/members/${enc(user)}`);
      await refreshProject();
      toast(msg, `${who(user)} removed.`);
    } catch (err) {
      toast(msg, describeError(err), false);
    }
  }

  async invite(form) {
    const msg = $("#mg-invite-msg", this.root);
    const f = new FormData(form);
    try {
      const r = await this.state.api.post(`/projects/${enc(this.pid)}/invitations`, { email: String(f.get("email")).trim(), role: f.get("role"), site: String(f.get("site")).trim() });
      await refreshProject();
      toast(msg, r.created
        ? `Invited ${f.get("email")} as ${r.role}. Temporary password: ${r.temporary_password} — they choose their own at first sign-in.`
        : `Added ${f.get("email")} as ${r.role}.`);
      msg.dataset.password = r.temporary_password || "";
      msg.dataset.user = r.user;
      form.elements.email.value = "";
    } catch (err) {
      toast(msg, describeError(err), false);
    }
  }

  // ---- jobs and models -----------------------------------------------------------------------

  renderJobs() {
    const body = $("#mg-job-table tbody", this.root);
    if (!body) return;
    const name = (sid) => ((this.state.project.slides || []).find((s) => s.slide_id === sid) || {}).name || sid || "—";
    body.replaceChildren(...this.jobs.slice(0, 30).map((j) => el("tr", { "data-job": j.job_id },
      el("td", { title: j.job_id }, j.job),
      el("td", { title: j.slide_id || "" }, name(j.slide_id)),
      el("td", { class: `status-${j.status.toLowerCase()}`, title: plainReason(j.reason) }, j.status.toLowerCase(), j.reason ? el("div", { class: "muted" }, plainReason(j.reason)) : null),
      el("td", {}, j.duration_s == null ? "" : `${j.duration_s.toFixed(0)} s`),
      el("td", {}, el("div", { class: "mg-job-actions" },
        j.status === "FAILED" && j.slide_id ? el("button", { type: "button", onclick: () => this.retry(j, { slide_id: j.slide_id, name: name(j.slide_id) }, j.job) }, "Retry") : null,
        ACTIVE.includes(j.status) ? el("button", { type: "button", class: "mg-cancel", onclick: () => this.cancel(j, name(j.slide_id)) }, "Cancel") : null,
        j.status !== "UNKNOWN" ? el("a", { href: "#", class: "mg-log", onclick: (e) => { e.preventDefault(); this.showLog(j); } }, "log") : null)))));
  }

  async cancel(job, slideName) {
    const what = job.slide_id ? `the ${job.job} job of ${slideName}` : `the ${job.job} job`;
    if (!(await confirmDialog(`Cancel ${what}? It stops now; Retry runs it again.`))) return;
    try {
      await this.state.api.post(`/projects/${enc(this.pid)}/jobs/${enc(job.job_id)}/cancel`);
      await refreshProject();
      await this.refresh();
    } catch (err) {
      showAlert(describeError(err));
    }
  }

  // A job's log: the local runner's text in a dialog; on AWS, its CloudWatch page in a new tab.
  async showLog(job) {
    try {
      const log = await this.state.api.get(`/projects/${enc(this.pid)}/jobs/${enc(job.job_id)}/log`);
      if (log.url) {
        window.open(log.url, "_blank", "noopener");
        return;
      }
      let dialog = $("#mg-log-dialog");
      if (!dialog) {
        dialog = el("dialog", { id: "mg-log-dialog", "aria-labelledby": "mg-log-title" },
          el("form", { method: "dialog" }, el("h3", { id: "mg-log-title" }), el("pre", { id: "mg-log-text" }),
            el("div", { class: "row" }, el("button", { value: "close", id: "mg-log-close" }, "Close"))));
        document.body.append(dialog);
      }
      $("#mg-log-title", dialog).textContent = `Log of the ${job.job} job ${job.job_id}${log.truncated ? " (its end)" : ""}`;
      $("#mg-log-text", dialog).textContent = log.text || "(the job has written nothing yet)";
      dialog.showModal();
    } catch (err) {
      showAlert(describeError(err));
    }
  }

  renderModels() {
    const list = $("#mg-model-list", this.root);
    if (!list) return;
    const t = this.training;
    if (!t) {
      list.replaceChildren(el("li", { class: "muted" }, "loading…"));
      return;
    }
    const current = t.current_model && t.current_model.model_version;
    const shown = this.state.project.predictions && this.state.project.predictions.model_version;
    if (!t.models.length) {
      list.replaceChildren(el("li", { class: "muted" }, "no model yet"));
      return;
    }
    list.replaceChildren(...[...t.models].reverse().map((m) => {
      const x = m.metrics || {};
      const score = (v) => (typeof v === "number" ? v.toFixed(2) : "—");
      return el("li", { class: "mg-model", "data-version": m.model_version },
        el("div", { class: "row" }, el("strong", {}, `v${m.model_version}`),
          m.model_version === current ? el("span", { class: "badge" }, "in use") : null,
          m.model_version === shown ? el("span", { class: "badge" }, "predictions shown") : null,
          el("span", { class: "muted" }, fmtTime(m.at))),
        el("div", { class: "muted" }, `accuracy ${score(x.accuracy)} · macro F1 ${score(x.macro_f1)} · ${x.n_train ?? m.label_count ?? "?"} labels`),
        this.owner && m.model_version !== current ? el("button", { type: "button", onclick: () => this.useModel(m.model_version) }, "Use this version") : null);
    }));
  }

  async useModel(version) {
    try {
      const r = await this.state.api.post(`/projects/${enc(this.pid)}/models/${version}/use`);
      await refreshProject();
      await this.refresh();
      this.waitForPredictions(version, r.job_id);
    } catch (err) {
      toast($("#mg-export-msg", this.root), describeError(err), false);
    }
  }

  // The overlay follows once the chosen version's predictions are published.
  async waitForPredictions(version) {
    for (let i = 0; i < 90; i++) {
      await refreshProject();
      const p = this.state.project.predictions;
      if (p && p.model_version === version) {
        await loadPredictions();
        this.renderModels();
        return;
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  // ---- export ----------------------------------------------------------------------------------

  async exportAs(format) {
    const msg = $("#mg-export-msg", this.root);
    toast(msg, `Preparing ${format}…`);
    const anonymize = $("#mg-anon", this.root).checked;
    // Past what one API request builds in time (GeoJSON outlines ~1,000 superpixels/s against
    // API Gateway's 29 s), the export runs as a job and the browser downloads its file.
    const slides = (this.state.project && this.state.project.slides) || [];
    const superpixels = slides.reduce((n, s) => n + ((s.segmentation && s.segmentation.count) || 0), 0);
    if (superpixels >= JOB_EXPORT_FROM[format]) return this.exportByJob(format, anonymize, msg);
    const types = { geojson: "application/geo+json", csv: "text/csv", parquet: "application/vnd.apache.parquet" };
    try {
      const url = `${app.api.base}/projects/${enc(this.pid)}/export?format=${format}&anonymize=${anonymize}`;
      // A large export is a 303 to a copy in the data bucket; fetch follows it.
      const res = await fetch(url, { headers: { Authorization: `Bearer ${app.api.token}`, Accept: types[format] } });
      if (!res.ok) {
        const body = await res.json().catch(() => ({}));
        throw new Error(body.detail || `HTTP ${res.status}`);
      }
      const blob = await res.blob();
      const a = el("a", { href: URL.createObjectURL(blob), download: `${this.pid}.${format}` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
      toast(msg, `${format} downloaded (${(blob.size / 1024).toFixed(0)} KB).`);
    } catch (err) {
      toast(msg, `Export failed: ${describeError(err)}`, false);
    }
  }

  async exportByJob(format, anonymize, msg) {
    try {
      const job = await this.state.api.post(`/projects/${enc(this.pid)}/exports`, { format, anonymize });
      toast(msg, `Export job ${job.job_id} started…`);
      for (;;) {
        await new Promise((r) => setTimeout(r, POLL_MS));
        const st = await this.state.api.get(job.status_path);
        if (st.state === "failed") throw new Error(st.reason || "the export job failed");
        if (st.state === "done" && st.url) {
          const a = el("a", { href: st.url, download: `${this.pid}.${format}` });
          document.body.append(a);
          a.click();
          a.remove();
          const mb = ((st.bytes || 0) / 2 ** 20).toFixed(1);
          toast(msg, `${format} ready: ${st.rows} rows, ${mb} MB (link valid ${Math.round(st.expires_in / 60)} min, file kept ${st.expires_days} days).`);
          return;
        }
        const done = st.slides ? ` ${st.slides_done}/${st.slides} slides, ${st.rows || 0} rows` : "";
        toast(msg, `Export job ${st.status.toLowerCase()}…${done}`);
      }
    } catch (err) {
      toast(msg, `Export failed: ${describeError(err)}`, false);
    }
  }
}
