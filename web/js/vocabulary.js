// The product's vocabulary as the API states it (GET /config: roles, who may do what, the
// palette, job kinds, settings choices), loaded once at start: the app holds no copy of it.
import { state } from "./state.js";

export async function loadVocabulary(api) {
  const cfg = await api.loginConfig();
  state.vocabulary = cfg.vocabulary;
  return state.vocabulary;
}

// Whether a role may do an action ("label", "review", "guided", "train", "audit", "export",
// "manage", "merge_categories"): the roles of the route that does it (histolabel/api/routes.py).
export function may(action, role = state.role) {
  const roles = state.vocabulary && state.vocabulary.may[action];
  return !!roles && roles.includes(role);
}

export function mayRoles(action) {
  return (state.vocabulary && state.vocabulary.may[action]) || [];
}

// "owners and auditors", as the API words its refusals (histolabel/api/routes.py).
export function rolesInWords(list) {
  const names = list.map((r) => `${r}s`);
  return names.length > 1 ? `${names.slice(0, -1).join(", ")} and ${names.at(-1)}` : names[0] || "nobody";
}

export function roles() {
  return (state.vocabulary && state.vocabulary.roles) || [];
}

// The roles an invitation offers, those that may not manage the project first: the choice
// preselected is never the one that hands over the project.
export function inviteRoles() {
  return [...roles().filter((r) => !may("manage", r)), ...roles().filter((r) => may("manage", r))];
}

export function palette() {
  return (state.vocabulary && state.vocabulary.palette) || [];
}

// The choices of a setting the API lists ("certainty_metrics", "feature_kinds", "model_kinds").
export function choices(name) {
  return (state.vocabulary && state.vocabulary[name]) || [];
}
