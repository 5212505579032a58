// How the open project's things are shown: members by name or email, slides and categories by
// their names.
import { categories, state } from "./state.js";
import { el } from "./ui.js";

export function categoryById(id) {
  return categories().find((c) => c.id === id);
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

export function slideName(slideId) {
  const s = ((state.project && state.project.slides) || []).find((x) => x.slide_id === slideId);
  return s ? s.name : slideId;
}
