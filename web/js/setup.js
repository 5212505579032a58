// Project setup: Histomics Label's choices (superpixel size and compactness, magnification,
// certainty metric, features, model, retrain threshold) as one form, used by the New project
// dialog and, later, by the owner's Project panel. Limits mirror ProjectSettings on the server,
// which checks them again and names the field it refuses.
import { el } from "./ui.js";
import { choices } from "./vocabulary.js";

// How each choice the API lists (GET /config) reads in the form; a choice without words here is
// still offered, by its name.
const WORDS = {
  confidence: "Confidence", margin: "Margin", entropy: "Negative entropy", batchbald: "BatchBALD",
  handcrafted: "Hand-crafted colour/texture (no weights)", patch: "Image patches (small CNN)",
  foundation: "Foundation model (weights by the deployer)", imported: "Imported per object (Import from other tools)",
  linear: "Linear head", cnn: "Small CNN",
};

export const FIELDS = [
  { name: "superpixel_size", label: "Superpixel size (px at the magnification)", type: "number", min: 8, max: 1024, step: 1, value: 64 },
  { name: "compactness", label: "Compactness (SLIC: higher is squarer)", type: "number", min: 0.01, max: 1000, step: "any", value: 10 },
  { name: "magnification", label: "Magnification to segment at (×)", type: "number", min: 0.1, max: 100, step: "any", value: 20 },
  { name: "certainty_metric", label: "Certainty metric (guided order)", choices: "certainty_metrics" },
  { name: "feature_kind", label: "Features", choices: "feature_kinds" },
  { name: "model_kind", label: "Model", choices: "model_kinds" },
  { name: "retrain_threshold", label: "Retrain after this many new labels", type: "number", min: 1, max: 100000, step: 1, value: 50 },
];
// Changing these after slides are segmented only affects slides segmented afterwards.
export const SEGMENTATION = ["superpixel_size", "compactness", "magnification"];

export function settingsFields(values = {}, prefix = "st") {
  return FIELDS.map((f) => {
    const id = `${prefix}-${f.name}`;
    const current = values[f.name] ?? f.value;
    const options = f.choices ? choices(f.choices) : null;
    const input = options
      ? el("select", { id, name: f.name }, ...options.map((v) => el("option", { value: v, selected: v === (values[f.name] ?? options[0]) }, WORDS[v] || v)))
      : el("input", { id, name: f.name, type: f.type, min: f.min, max: f.max, step: f.step, value: current, required: true });
    return el("label", { class: "field", for: id }, f.label, input);
  });
}

// The settings a form's user changed: those whose input differs from what it was filled with
// (the DOM's default value), so a save sends only them and a colleague's change to another
// setting since the form was drawn is kept.
export function changedSettings(form, settings) {
  const initial = (input) => (input.tagName === "SELECT"
    ? ([...input.options].find((o) => o.defaultSelected) || input.options[0] || {}).value
    : input.defaultValue);
  return Object.fromEntries(Object.entries(settings).filter(([k, v]) => String(v) !== String(initial(form.elements[k]))));
}

// After a save: what the form shows now is what it was filled with.
export function markSaved(form) {
  for (const input of form.elements) {
    if (input.tagName === "SELECT") for (const o of input.options) o.defaultSelected = o.selected;
    else if (input.tagName === "INPUT") input.defaultValue = input.value;
  }
}

// The settings of a form, or a message naming the first bad field (nothing is sent then).
export function readSettings(form) {
  const out = {};
  for (const f of FIELDS) {
    const input = form.elements[f.name];
    if (!input) continue;
    if (f.choices) {
      out[f.name] = input.value;
      continue;
    }
    const v = Number(input.value);
    if (input.value === "" || !Number.isFinite(v) || v < f.min || v > f.max || (f.step === 1 && !Number.isInteger(v))) {
      return { error: `${f.label}: give ${f.step === 1 ? "a whole number" : "a number"} from ${f.min} to ${f.max}`, field: f.name };
    }
    out[f.name] = v;
  }
  return { settings: out };
}
