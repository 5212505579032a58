// The web app's one state: what is open (project, slide, viewer), what the server said (labels,
// predictions, people, vocabulary) and the modes. Every module reads and writes this object;
// app.js fills it at start.
import { SuperpixelColours } from "./lut.js";

export const DEFAULT_COUNT = 4096;

export const state = {
  api: null, outbox: null, config: null, vocabulary: null,
  projectId: null, project: null, role: null, user: null, myProjects: [],
  slideId: null, slide: null, image: null, labels: null,
  viewer: null, overlay: null, colours: new SuperpixelColours(DEFAULT_COUNT, []),
  labelEntries: new Map(), predictionsVersion: null, people: {},
  labelsLoading: false, labelsSeq: null, edits: [], live: null,
  mode: "label", modes: {}, ready: false,
};
window.histolabel = state; // for the browser tests and the console

export function categories() {
  return (state.project && state.project.categories) || [];
}
