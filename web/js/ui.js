// Small DOM helpers shared by the modes, and errors in words.
import { ApiError } from "./api.js";

export const $ = (sel, root = document) => root.querySelector(sel);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) node.append(c);
  return node;
}

export function isTyping(target) {
  return target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT" || target.isContentEditable);
}

// "shift+a", "1", "arrowleft": the form category hotkeys are stored in.
export function eventKey(ev) {
  const parts = [];
  if (ev.ctrlKey) parts.push("ctrl");
  if (ev.altKey) parts.push("alt");
  if (ev.shiftKey && ev.key.length > 1) parts.push("shift");
  let key = ev.key.toLowerCase();
  if (ev.shiftKey && ev.key.length === 1) {
    const base = ev.code && ev.code.startsWith("Key") ? ev.code.slice(3).toLowerCase() : ev.code && ev.code.startsWith("Digit") ? ev.code.slice(5) : key;
    parts.push("shift");
    key = base;
  }
  parts.push(key);
  return parts.join("+");
}

export function confirmDialog(text) {
  const dialog = $("#confirm-dialog");
  $("#confirm-text").textContent = text;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true }));
}

export function toast(node, text, ok = true) {
  node.textContent = text;
  node.className = ok ? "ok" : "error";
}

export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function showAlert(message) {
  const box = $("#alert");
  if (!message) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.hidden = false;
  box.textContent = message;
}

// An error in words: a 422's field messages, never "[object Object]", and no storage paths
// (s3://bucket/key means nothing to a pathologist and tells an outsider where data lives).
export function describeError(err) {
  let text;
  if (err instanceof ApiError) {
    const detail = err.body && err.body.detail;
    if (Array.isArray(detail)) {
      text = detail.map((d) => (d && typeof d === "object" ? `${fieldName(d.field)}: ${d.msg}` : String(d))).join("; ");
    } else if (detail && typeof detail === "object") text = JSON.stringify(detail);
    else if (err.status === 0) text = "The server cannot be reached; check the connection and try again.";
    else text = err.message;
  } else text = String(err && err.message ? err.message : err);
  return text.replace(/s3:\/\/[^\s'",;)]+/g, "the stored file");
}

function fieldName(field) {
  return String(field || "input").split(".").filter((p) => !/^\d+$/.test(p)).join(" ").replace(/_/g, " ") || "input";
}

// A job's reason names objects by s3:// URI; people know them by file name.
export function plainReason(reason) {
  return String(reason || "").replace(/s3:\/\/[^\s:]*\/([^/\s:]+)/g, "$1");
}
