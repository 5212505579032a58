// Import from other tools, in the Project panel: a segmentation (QuPath GeoJSON, Histomics JSON,
// a TIFF label image), labels (classified objects, a CSV of id -> category) or a feature table
// for one slide. The file goes to a presigned upload beside the slide, the import job runs it
// (the API's two import routes), and the panel follows the job to its outcome: objects imported,
// repaired and dropped by reason, labels per category, or the job's reason in words.
// Also the slide's label mask (TIFF) for download.
import { refreshProject } from "./session.js";
import { state as app } from "./state.js";
import { $, describeError, el, plainReason, toast } from "./ui.js";

const enc = encodeURIComponent;
const POLL_MS = 1000;
const KINDS = [
  ["segmentation", "Segmentation (objects become the superpixels)"],
  ["labels", "Labels (classified objects, mask or id,category CSV)"],
  ["features", "Features (table of id + columns)"],
];
// Why an object was dropped or changed, as the import job counts them (histolabel/imports/objects.py).
const REASONS = {
  not_polygon: "not a polygon",
  empty: "empty",
  outside: "outside the slide",
  invalid_repaired: "invalid, repaired",
  clipped: "clipped to the slide",
  covered: "covered by later objects",
};

// The API's filename rule (histolabel/imports/api.py): letters, digits, ".", "_" and "-".
export function importFilename(name) {
  const s = name.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^[^A-Za-z0-9]+/, "").slice(0, 200);
  return s || "import";
}

// "objects imported, repaired, dropped by reason" of a SegmentationCompleted the import recorded.
export function segmentationSummary(seg) {
  const dropped = seg.dropped || {};
  const changed = Object.entries(dropped).filter(([, n]) => n > 0).map(([k, n]) => `${n} ${REASONS[k] || k}`);
  return `${seg.count} objects imported of ${seg.objects_read} read` + (changed.length ? `; ${changed.join(", ")}` : "; none dropped or repaired");
}

function put(url, file, onProgress) {
  // XHR, not fetch, for upload progress; no Content-Type header: the presigned URL signs none.
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.total || file.size);
    xhr.onload = () => (xhr.status >= 200 && xhr.status < 300 ? resolve() : reject(new Error(`the upload was refused (HTTP ${xhr.status})`)));
    xhr.onerror = () => reject(new Error("the network failed during the upload"));
    xhr.send(new Blob([file]));
  });
}

export class ImportPanel {
  constructor(root, projectId) {
    this.root = root;
    this.pid = projectId;
    root.replaceChildren(
      el("form", { id: "imp-form", class: "mg-import", novalidate: true },
        el("label", { class: "field" }, "Slide", el("select", { id: "imp-slide", name: "slide" })),
        el("label", { class: "field" }, "Import", el("select", { id: "imp-kind", name: "kind" }, ...KINDS.map(([v, t]) => el("option", { value: v }, t)))),
        el("input", { id: "imp-file", type: "file", "aria-label": "File to import" }),
        el("label", { class: "imp-seg" }, el("input", { type: "checkbox", id: "imp-lenient" }), " repair, clip or drop bad objects (else one refuses the file)"),
        el("label", { class: "imp-seg" }, el("input", { type: "checkbox", id: "imp-replace" }), " replace even if the slide has labels"),
        el("div", { class: "row" }, el("button", { type: "submit", id: "imp-start", class: "primary" }, "Import"),
          el("progress", { id: "imp-progress", max: 1, value: 0, hidden: true }))),
      el("p", { id: "imp-status", role: "status", "aria-live": "polite" }),
      el("p", { id: "imp-result", "aria-live": "polite" }),
    );
    $("#imp-kind", root).addEventListener("change", () => this.showOptions());
    $("#imp-form", root).addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.start();
    });
    this.showOptions();
    this.renderSlides();
  }

  showOptions() {
    const seg = $("#imp-kind", this.root).value === "segmentation";
    for (const n of this.root.querySelectorAll(".imp-seg")) n.hidden = !seg;
  }

  renderSlides() {
    const select = $("#imp-slide", this.root);
    const slides = (app.project && app.project.slides) || [];
    const keep = select.value;
    select.replaceChildren(...slides.filter((s) => s.ingest).map((s) => el("option", { value: s.slide_id }, s.name)));
    if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  }

  status(text, ok = true) {
    toast($("#imp-status", this.root), text, ok);
  }

  async start() {
    const kind = $("#imp-kind", this.root).value;
    const slideId = $("#imp-slide", this.root).value;
    const file = $("#imp-file", this.root).files[0];
    const result = $("#imp-result", this.root);
    const bar = $("#imp-progress", this.root);
    result.textContent = "";
    result.dataset.state = "";
    if (!slideId) return this.status("Choose an ingested slide first.", false);
    if (!file) return this.status("Choose a file to import.", false);
    const base = `/projects/${enc(this.pid)}/slides/${enc(slideId)}/imports`;
    const filename = importFilename(file.name);
    const options = kind === "segmentation"
      ? { lenient: $("#imp-lenient", this.root).checked, replace_labels: $("#imp-replace", this.root).checked } : {};
    const button = $("#imp-start", this.root);
    button.disabled = true;
    try {
      this.status(`Uploading ${file.name}…`);
      const ticket = await app.api.post(base, { kind, filename, size: file.size });
      bar.hidden = false;
      await put(ticket.upload_url, file, (loaded, total) => {
        bar.value = total ? loaded / total : 0;
        this.status(`Uploading ${file.name}: ${Math.round(100 * bar.value)}%`);
      });
      bar.removeAttribute("value"); // indeterminate while the job runs
      const job = await app.api.post(`${base}/${ticket.import_id}/start`, { kind, filename, options });
      this.status(`Importing ${kind} (job ${job.job_id})…`);
      const done = await this.follow(job.job_id, kind);
      if (done.status !== "SUCCEEDED") {
        const reason = plainReason((done.outcome && done.outcome.reason) || done.reason || "the job failed without a reason");
        result.dataset.state = "failed";
        result.textContent = `Import refused: ${reason}`;
        this.status("Nothing was imported.", false);
        return;
      }
      await refreshProject();
      result.dataset.state = "done";
      result.textContent = await this.describe(kind, slideId);
      this.status(`Imported ${file.name}.`);
    } catch (err) {
      result.dataset.state = "failed";
      result.textContent = `Import refused: ${describeError(err)}`;
      this.status("Nothing was imported.", false);
    } finally {
      button.disabled = false;
      bar.hidden = true;
      bar.value = 0;
    }
  }

  async follow(jobId, kind) {
    for (;;) {
      const s = await app.api.get(`/projects/${enc(this.pid)}/jobs/${enc(jobId)}`);
      if (s.status === "SUCCEEDED" || s.status === "FAILED") return s;
      this.status(`Importing ${kind}: ${s.status.toLowerCase()}…`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  async describe(kind, slideId) {
    const slide = app.project.slides.find((s) => s.slide_id === slideId);
    if (kind === "segmentation") return segmentationSummary(slide.segmentation);
    if (kind === "features") {
      const f = (slide.features || {}).imported;
      return f ? `Features imported: ${f.dim} columns per superpixel.` : "Features imported.";
    }
    const labels = await app.api.get(`/projects/${enc(this.pid)}/slides/${enc(slideId)}/labels`);
    const names = Object.fromEntries((app.project.categories || []).map((c) => [c.id, c.name]));
    const parts = Object.entries(labels.counts || {}).map(([c, n]) => `${names[c] || c} ${n}`);
    const total = Object.values(labels.counts || {}).reduce((a, b) => a + b, 0);
    return `${total} superpixels labeled on this slide now` + (parts.length ? ` (${parts.join(", ")})` : "");
  }
}

// The slide's labels as a TIFF mask: the API answers a redirect to a presigned copy; fetch follows it.
export async function downloadMask(projectId, slideId, msg) {
  toast(msg, "Preparing the mask…");
  try {
    const url = `${app.api.base}/projects/${enc(projectId)}/slides/${enc(slideId)}/mask?format=tiff`;
    const res = await fetch(url, { headers: { Authorization: `Bearer ${app.api.token}` } });
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      throw new Error(body.detail || `HTTP ${res.status}`);
    }
    const blob = await res.blob();
    const a = el("a", { href: URL.createObjectURL(blob), download: `${slideId}-mask.tif` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
    toast(msg, `Mask downloaded (${(blob.size / 1024).toFixed(0)} KB).`);
  } catch (err) {
    toast(msg, `Mask export failed: ${describeError(err)}`, false);
  }
}
