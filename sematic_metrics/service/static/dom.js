// Small DOM helpers and the pieces every page shows: state badges, run names.

import { shortId } from "./format.js";
import { enc } from "./api.js";

// Every page lives under /dashboard: "/", "/pipelines" and "/runs" are Sematic's own
// paths when the service fronts a Sematic server.
export const BASE = "/dashboard";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "checked" || k === "value") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** A run's state as the API states it; `status` is the server's reading of it (e.g. running). */
export const stateBadge = (run) =>
  h(
    "span",
    { class: `state ${run.future_state || ""} ${run.status || ""}`, title: run.future_state, dataset: { state: run.future_state ?? "" } },
    run.status || run.future_state || "UNKNOWN",
  );

/** A run's name and short id, the full id on hover. */
export const runName = (run, link = true) =>
  h(
    "span",
    { class: "run-name", title: run.id },
    link ? h("a", { href: `${BASE}/runs/${enc(run.id)}`, "data-nav": true }, run.name || shortId(run.id)) : run.name || shortId(run.id),
    " ",
    h("span", { class: "id mono" }, shortId(run.id)),
  );

export function stat(key, label, value, text, hint) {
  return h(
    "div",
    { class: "card stat", dataset: { stat: key, value: value == null ? "" : String(value) } },
    h("div", { class: "label" }, label),
    h("div", { class: "value" }, text),
    hint ? h("div", { class: "hint" }, hint) : null,
  );
}

export const errorBox = (err) => h("div", { class: "empty" }, `Could not load: ${err.message || err}`);
export const section = (title, ...children) => [h("h2", {}, title), ...children];
