// The overlay's legend: which colours are labels (strong) and which are the model's predictions
// (faint), per category, and the ring of the chosen superpixel. Alphas come from lut.js, so the
// legend shows exactly what the overlay paints.
import { LABEL_ALPHA, PREDICTION_ALPHA, hexToRGB } from "./lut.js";
import { el } from "./ui.js";

function swatch(color, alpha, title) {
  const [r, g, b] = hexToRGB(color);
  return el("span", { class: "swatch", title, style: `background: rgba(${r}, ${g}, ${b}, ${(alpha / 255).toFixed(2)})` });
}

export function renderLegend(box, categories, { predictions = false } = {}) {
  if (!box) return;
  const cats = (categories || []).filter((c) => !c.excluded);
  if (!cats.length) {
    box.replaceChildren();
    return;
  }
  box.replaceChildren(
    el("span", { class: "legend-part" }, el("strong", {}, "Labels"), ...cats.map((c) => el("span", { class: "legend-item" }, swatch(c.color, LABEL_ALPHA, `${c.name}: label`), c.name))),
    el("span", { class: "legend-part" }, el("strong", {}, "Predictions"),
      predictions ? cats.map((c) => swatch(c.color, PREDICTION_ALPHA, `${c.name}: prediction`)) : el("span", { class: "muted" }, "none yet"),
      predictions ? el("span", { class: "muted" }, "(fainter, no outline)") : ""),
    el("span", { class: "legend-part" }, el("span", { class: "swatch ring" }), "selected"),
  );
}
