// Live updates: every POLL_MS the app asks GET .../changes what came after the project seq and
// the open slide's label cursor it holds (a seq per label stream), and shows it: colleagues' labels and reviews on the
// overlay, category/member/slide/model changes in the panels. A poll with nothing new is two
// empty DynamoDB queries; see docs/api.md for why this is polling and not WebSockets.
import { applyServerEntries, loadLabels, loadPredictions } from "./labels.js";
import { refreshProject } from "./session.js";

const POLL_MS = 2000;
const HIDDEN_POLL_MS = 15000; // a background tab still catches up, slowly

export class Live {
  constructor(state) {
    this.state = state;
    this.timer = null;
    this.busy = null;
    this.polls = 0;
    document.addEventListener("visibilitychange", () => document.visibilityState === "visible" && this.poke());
  }

  start() {
    this.schedule(POLL_MS);
  }

  schedule(ms) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.tick(), ms);
  }

  // Ask now (after one of my edits is saved, or the tab comes back).
  poke() {
    this.schedule(0);
  }

  async tick() {
    if (this.busy) return this.busy.then(() => this.schedule(0));
    this.busy = this.poll().catch(() => {}).finally(() => {
      this.busy = null;
      this.schedule(document.visibilityState === "hidden" ? HIDDEN_POLL_MS : POLL_MS);
    });
    return this.busy;
  }

  async poll() {
    const s = this.state;
    if (!s.projectId || !s.api) return;
    const projectId = s.projectId;
    const slideId = s.labelsSeq == null ? null : s.slideId;
    const query = slideId ? { slide: slideId, labels_seq: s.labelsSeq, labels_cursor: s.labelsCursor } : undefined;
    const res = await s.api.request("GET", `/projects/${encodeURIComponent(projectId)}/changes`, undefined, { query, retries: [] });
    this.polls++;
    if (projectId !== s.projectId) return;
    if (res.project_seq !== s.projectSeq) {
      const version = s.predictions ? s.predictions.version : null;
      await refreshProject();
      const pub = s.project.predictions;
      if (pub && pub.model_version !== version && s.slideId) await loadPredictions().catch(() => null);
    }
    if (!slideId || slideId !== s.slideId || s.labelsSeq == null) return;
    // My edits still on their way would be undone on screen by the server's older state.
    if (s.outbox.pending) return;
    if (res.reload) {
      await loadLabels();
      return;
    }
    if (res.entries.length || res.removed.length) applyServerEntries(res.entries, res.removed);
    if (res.labels_seq >= s.labelsSeq) {
      s.labelsSeq = res.labels_seq;
      s.labelsCursor = res.labels_cursor;
    }
  }
}
