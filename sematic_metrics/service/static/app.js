// The sematic-metrics dashboard: plain ES modules served by the service.
// Pages: pipelines index (/dashboard/), pipeline (/dashboard/pipelines/<function path>)
// and run (/dashboard/runs/<run id>), rendered from the JSON API.

import { api, apiKey, enc, KEY_STORE, setAuthHandler } from "./api.js";
import { BASE, errorBox, h } from "./dom.js";
import { fmtAgo, fmtCount, fmtDuration, fmtPct, fmtTime, wrapName } from "./format.js";
import { pipelinePage } from "./pipeline.js";
import { runPage } from "./run.js";

const app = document.getElementById("app");
const banner = document.getElementById("banner");
let page = null; // the current page's cleanup

function showBanner(text, error = false) {
  banner.textContent = text;
  banner.className = error ? "banner error" : "banner";
  banner.hidden = !text;
}

// ------------------------------------------------------------ API key ----
const keyDialog = document.getElementById("key-dialog");
const keyInput = document.getElementById("key-input");
const keyButton = document.getElementById("key-button");

setAuthHandler((message) => {
  showBanner(
    apiKey()
      ? `The API key was refused${message ? `: ${message}` : ""}. Paste another one.`
      : "This server requires an API key. Paste it to continue.",
    true,
  );
  if (!keyDialog.open) {
    keyInput.value = apiKey();
    keyDialog.showModal();
  }
});

const markKey = () => keyButton.classList.toggle("has-key", Boolean(apiKey()));
keyButton.addEventListener("click", () => {
  keyInput.value = apiKey();
  keyDialog.showModal();
});
keyDialog.addEventListener("close", () => {
  if (keyDialog.returnValue === "save" && keyInput.value.trim()) localStorage.setItem(KEY_STORE, keyInput.value.trim());
  else if (keyDialog.returnValue === "clear") localStorage.removeItem(KEY_STORE);
  else return;
  markKey();
  showBanner("");
  route();
});
markKey();

// ------------------------------------------------------------- router ----
function navigate(href) {
  history.pushState(null, "", href);
  route();
}

document.addEventListener("click", (event) => {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  const link = event.target.closest("a[data-nav]");
  const row = event.target.closest("tr[data-href]");
  if (link) {
    event.preventDefault();
    navigate(link.getAttribute("href"));
  } else if (row && !event.target.closest("a, input, button, label")) {
    navigate(row.dataset.href); // the whole row opens the pipeline
  }
});
window.addEventListener("popstate", route);

function route() {
  if (page) page();
  page = null;
  window.scrollTo(0, 0);
  app.replaceChildren();
  const path = location.pathname;
  if (path.startsWith(`${BASE}/pipelines/`)) page = pipelinePage(app, decodeURIComponent(path.slice(`${BASE}/pipelines/`.length)));
  else if (path.startsWith(`${BASE}/runs/`)) page = runPage(app, decodeURIComponent(path.slice(`${BASE}/runs/`.length)));
  else page = indexPage();
}

// ----------------------------------------------------- pipelines index ----
function indexPage() {
  document.title = "Pipelines · sematic-metrics";
  const body = h("div", {}, h("p", { class: "muted" }, "Loading pipelines…"));
  app.append(h("h1", {}, "Pipelines"), h("div", { class: "subtitle" }, "Every pipeline with runs, newest first."), body);
  api("/api/v1/pipelines")
    .then((pipelines) => {
      if (!pipelines.length) {
        body.replaceChildren(
          h("div", { class: "empty" }, "No pipelines yet. Post runs to POST /api/v1/runs, or run ", h("code", {}, "make demo"), " for a demo."),
        );
        return;
      }
      const cell = (field, value, text, cls = "num") =>
        h("td", { class: cls, dataset: { field, value: value == null ? "" : String(value) } }, text);
      const rows = pipelines.map((p) =>
        h(
          "tr",
          { class: "clickable", dataset: { pipeline: p.function_path, href: `${BASE}/pipelines/${enc(p.function_path)}` } },
          h(
            "td",
            { dataset: { field: "function_path" } },
            h("a", { href: `${BASE}/pipelines/${enc(p.function_path)}`, "data-nav": true, class: "mono path" }, wrapName(p.function_path)),
          ),
          cell("run_count", p.run_count, fmtCount(p.run_count)),
          cell("success_rate", p.success_rate, fmtPct(p.success_rate)),
          cell("avg_run_time_s", p.avg_run_time_s, fmtDuration(p.avg_run_time_s)),
          h("td", { dataset: { field: "last_run_at", value: p.last_run_at ?? "" }, title: fmtTime(p.last_run_at) }, fmtAgo(p.last_run_at) || "—"),
        ),
      );
      body.replaceChildren(
        h(
          "table",
          { class: "grid", id: "pipelines" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", {}, "Pipeline"),
              h("th", { class: "num" }, "Runs"),
              h("th", { class: "num" }, "Success rate"),
              h("th", { class: "num" }, "Avg run time"),
              h("th", {}, "Last run"),
            ),
          ),
          h("tbody", {}, rows),
        ),
      );
    })
    .catch((err) => body.replaceChildren(errorBox(err)));
  return () => {};
}

route();
