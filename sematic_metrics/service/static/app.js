// The sematic-metrics dashboard: a plain ES module served by the service.
// Pages: pipelines index (/dashboard/), pipeline (/dashboard/pipelines/<function path>)
// and run (/dashboard/runs/<run id>), rendered from the JSON API.

import { ChartGrid, hasUPlot, loadUPlot, prefs } from "./charts.js";

// Every page lives under /dashboard: "/", "/pipelines" and "/runs" are Sematic's own
// paths when the service fronts a Sematic server.
const BASE = "/dashboard";
const KEY_STORE = "sematic-metrics.api-key";
const app = document.getElementById("app");
const banner = document.getElementById("banner");
const chartsReady = loadUPlot();
let page = null; // the current page's cleanup

// ---------------------------------------------------------------- API ----
class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const apiKey = () => localStorage.getItem(KEY_STORE) || "";

async function api(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null) url.searchParams.set(k, typeof v === "string" ? v : JSON.stringify(v));
  }
  const headers = { Accept: "application/json" };
  if (apiKey()) headers["X-API-KEY"] = apiKey();
  const response = await fetch(url, { headers });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (response.status === 401 || response.status === 403) {
    askForKey(body?.error);
  }
  if (!response.ok) throw new ApiError(response.status, body?.error || `${response.status} ${response.statusText}`);
  return body.content;
}

const enc = encodeURIComponent;

// ------------------------------------------------------------- format ----
export function fmtCount(n) {
  return n == null ? "—" : Number(n).toLocaleString("en-US");
}

export function fmtPct(rate) {
  return rate == null ? "—" : `${(rate * 100).toFixed(1)}%`;
}

export function fmtDuration(s) {
  if (s == null || !Number.isFinite(s)) return "—";
  if (s < 60) return `${s.toFixed(1)} s`;
  const total = Math.round(s);
  if (total < 3600) return `${Math.floor(total / 60)} min ${total % 60} s`;
  const minutes = Math.floor(total / 60);
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** Epoch seconds or an RFC 3339 string -> milliseconds (null when absent). */
function toMs(t) {
  if (t == null || t === "") return null;
  if (typeof t === "number") return t * 1000;
  const ms = Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(t) ? t : `${t}Z`);
  return Number.isNaN(ms) ? null : ms;
}

function fmtTime(t) {
  const ms = toMs(t);
  if (ms == null) return "—";
  return new Date(ms).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

function fmtAgo(t) {
  const ms = toMs(t);
  if (ms == null) return "";
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

// ---------------------------------------------------------------- DOM ----
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const IN_PROGRESS = new Set(["CREATED", "SCHEDULED", "RAN", "RETRYING"]);
const stateBadge = (state) => h("span", { class: `state ${state}` }, state || "UNKNOWN");

function stat(key, label, value, text, hint) {
  return h(
    "div",
    { class: "card stat", dataset: { stat: key, value: value == null ? "" : String(value) } },
    h("div", { class: "label" }, label),
    h("div", { class: "value" }, text),
    hint ? h("div", { class: "hint" }, hint) : null,
  );
}

function showBanner(text, error = false) {
  banner.textContent = text;
  banner.className = error ? "banner error" : "banner";
  banner.hidden = !text;
}

function errorBox(err) {
  return h("div", { class: "empty" }, `Could not load: ${err.message || err}`);
}

function section(title, ...children) {
  return [h("h2", {}, title), ...children];
}

// ------------------------------------------------------------ API key ----
const keyDialog = document.getElementById("key-dialog");
const keyInput = document.getElementById("key-input");
const keyButton = document.getElementById("key-button");

function askForKey(message) {
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
}

function markKey() {
  keyButton.classList.toggle("has-key", Boolean(apiKey()));
}

keyButton.addEventListener("click", () => {
  keyInput.value = apiKey();
  keyDialog.showModal();
});
keyDialog.addEventListener("close", () => {
  if (keyDialog.returnValue === "save" && keyInput.value.trim()) {
    localStorage.setItem(KEY_STORE, keyInput.value.trim());
  } else if (keyDialog.returnValue === "clear") {
    localStorage.removeItem(KEY_STORE);
  } else return;
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
  } else if (row && !event.target.closest("a")) {
    navigate(row.dataset.href);
  }
});
window.addEventListener("popstate", route);

function route() {
  if (page) page();
  page = null;
  window.scrollTo(0, 0);
  app.replaceChildren();
  const path = location.pathname;
  if (path.startsWith(`${BASE}/pipelines/`)) page = pipelinePage(decodeURIComponent(path.slice(`${BASE}/pipelines/`.length)));
  else if (path.startsWith(`${BASE}/runs/`)) page = runPage(decodeURIComponent(path.slice(`${BASE}/runs/`.length)));
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
          h(
            "div",
            { class: "empty" },
            "No pipelines yet. Post runs to POST /api/v1/runs, or run ",
            h("code", {}, "make demo"),
            " for a demo.",
          ),
        );
        return;
      }
      const cell = (field, value, text, cls = "num") =>
        h("td", { class: cls, dataset: { field, value: value == null ? "" : String(value) } }, text);
      const rows = pipelines.map((p) =>
        h(
          "tr",
          { class: "clickable", dataset: { href: `${BASE}/pipelines/${enc(p.function_path)}`, pipeline: p.function_path } },
          h(
            "td",
            { dataset: { field: "function_path" } },
            h("a", { href: `${BASE}/pipelines/${enc(p.function_path)}`, "data-nav": true, class: "mono" }, p.function_path),
          ),
          cell("run_count", p.run_count, fmtCount(p.run_count)),
          cell("success_rate", p.success_rate, fmtPct(p.success_rate)),
          cell("avg_run_time_s", p.avg_run_time_s, fmtDuration(p.avg_run_time_s)),
          h(
            "td",
            { dataset: { field: "last_run_at", value: p.last_run_at ?? "" }, title: fmtTime(p.last_run_at) },
            fmtAgo(p.last_run_at) || "—",
          ),
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

// ------------------------------------------------------------ figures ----
function figures(m) {
  const states = Object.entries(m.count_by_state || {}).sort((a, b) => b[1] - a[1]);
  return [
    h(
      "div",
      { class: "cards", id: "figures" },
      stat("run_count", "Run count", m.run_count, fmtCount(m.run_count), "root runs, every outcome"),
      stat("success_rate", "Success rate", m.success_rate, fmtPct(m.success_rate), "of terminated runs"),
      stat("avg_run_time_s", "Average run time", m.avg_run_time_s, fmtDuration(m.avg_run_time_s), "of successful runs"),
    ),
    h(
      "div",
      { class: "states" },
      states.map(([state, n]) => h("span", { class: `state ${state}`, dataset: { state, count: n } }, `${state} ${n}`)),
    ),
  ];
}

function runsTable(runs) {
  if (!runs.length) return h("div", { class: "empty" }, "No runs.");
  const now = Date.now();
  return h(
    "table",
    { class: "grid", id: "runs" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", {}, "Run"),
        h("th", {}, "State"),
        h("th", {}, "Started"),
        h("th", { class: "num" }, "Duration"),
      ),
    ),
    h(
      "tbody",
      {},
      runs.map((r) => {
        const started = toMs(r.started_at);
        let duration = r.duration_s;
        let running = false;
        if (duration == null && started != null && IN_PROGRESS.has(r.future_state)) {
          duration = (now - started) / 1000;
          running = true;
        }
        return h(
          "tr",
          { class: "clickable", dataset: { href: `${BASE}/runs/${enc(r.id)}`, run: r.id } },
          h(
            "td",
            {},
            h("a", { href: `${BASE}/runs/${enc(r.id)}`, "data-nav": true }, r.name || r.id),
            h("div", { class: "muted mono" }, r.id, r.original_run_id ? ` · copy of ${r.original_run_id}` : ""),
          ),
          h("td", {}, stateBadge(r.future_state)),
          h("td", { title: fmtTime(r.started_at ?? r.created_at) }, fmtTime(r.started_at ?? r.created_at)),
          h("td", { class: "num" }, running ? `${fmtDuration(duration)} so far` : fmtDuration(duration)),
        );
      }),
    ),
  );
}

// ------------------------------------------------------- chart toolbar ----
function chartToolbar(grid, extra = []) {
  const value = h("span", { class: "smoothing-value" }, prefs.smoothing.toFixed(2));
  const slider = h("input", {
    type: "range",
    min: "0",
    max: "0.99",
    step: "0.01",
    value: String(prefs.smoothing),
    "aria-label": "Smoothing",
    oninput: (e) => {
      prefs.smoothing = Number(e.target.value);
      value.textContent = prefs.smoothing.toFixed(2);
      prefs.save();
      grid.refresh();
    },
  });
  const log = h("input", {
    type: "checkbox",
    checked: prefs.log,
    onchange: (e) => {
      prefs.log = e.target.checked;
      prefs.save();
      grid.refresh();
    },
  });
  return h(
    "div",
    { class: "toolbar" },
    h(
      "label",
      {},
      h("input", {
        type: "search",
        placeholder: "Filter metrics",
        oninput: (e) => grid.setFilter(e.target.value),
      }),
    ),
    h("label", { title: "Exponential moving average, as in TensorBoard" }, "Smoothing", slider, value),
    h("label", {}, log, "Log scale"),
    h("span", { class: "muted" }, "Drag to zoom, double-click to reset"),
    h("span", { class: "spacer" }),
    ...extra,
  );
}

async function chartsNotice() {
  if (await chartsReady) return null;
  return h(
    "div",
    { class: "notice", id: "vendor-missing" },
    "Charts need uPlot, which is not installed. In the source tree run ",
    h("code", {}, "make install"),
    " (or ",
    h("code", {}, "scripts/install_assets.sh"),
    "), then reload this page.",
  );
}

const seriesLoader = (labels) => (name) => api(`/api/v1/metrics/${enc(name)}`, { labels, rollup: "auto" });

// ------------------------------------------------------- pipeline page ----
function pipelinePage(fp) {
  document.title = `${fp} · sematic-metrics`;
  const figureBox = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const runsBox = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const labels = { __scope__: "1", root_function_path: fp };
  const grid = new ChartGrid(seriesLoader(labels));
  const metricsBox = h("div", {});
  app.append(
    h("div", { class: "crumbs" }, h("a", { href: `${BASE}/`, "data-nav": true }, "Pipelines"), " / "),
    h("h1", { class: "mono" }, fp),
    figureBox,
    ...section("Recent runs", runsBox),
    ...section("Pipeline metrics", metricsBox),
  );
  api(`/api/v1/pipelines/${enc(fp)}/metrics`)
    .then((m) => figureBox.replaceChildren(...figures(m)))
    .catch((err) => figureBox.replaceChildren(errorBox(err)));
  api(`/api/v1/pipelines/${enc(fp)}/runs`, { limit: "25" })
    .then((runs) => runsBox.replaceChildren(runsTable(runs)))
    .catch((err) => runsBox.replaceChildren(errorBox(err)));
  Promise.all([api("/api/v1/metrics", { labels }), chartsNotice()])
    .then(([names, notice]) => {
      if (!names.length) {
        metricsBox.replaceChildren(
          h("div", { class: "empty" }, "No pipeline-scope metrics (log_metric(..., scope=MetricScope.PIPELINE))."),
        );
        return;
      }
      metricsBox.replaceChildren(...[notice, chartToolbar(grid), grid.el].filter(Boolean));
      grid.setNames(names);
    })
    .catch((err) => metricsBox.replaceChildren(errorBox(err)));
  return () => grid.destroy();
}

// ------------------------------------------------------------ run page ----
/** Sematic's pipeline panel for the run's pipeline, with the pipeline's own figures. */
function pipelinePanel(runId, record) {
  const title = h("h3", {}, "Pipeline metrics");
  const box = h("aside", { class: "card panel", id: "pipeline-panel" }, title, "Loading…");
  api(`/api/v1/runs/${enc(runId)}/metrics`)
    .then((m) => {
      const states = m.count_by_state || {};
      const resolved = states.RESOLVED || 0;
      const terminated = resolved + (states.FAILED || 0) + (states.NESTED_FAILED || 0);
      const rate = h("dd", { dataset: { field: "success_rate" } }, terminated ? fmtPct(resolved / terminated) : "—");
      const runtime = h("dd", { dataset: { field: "avg_run_time_s" } }, "—");
      const runtimes = Object.entries(m.avg_runtime_children || {}).sort((a, b) => b[1] - a[1]);
      const byFunction = runtimes.length
        ? h(
            "table",
            {},
            h("caption", {}, "Average run time by function"),
            h(
              "tbody",
              {},
              runtimes.map(([fn, s]) =>
                h("tr", {}, h("td", { class: "mono", title: fn }, fn), h("td", {}, fmtDuration(s))),
              ),
            ),
          )
        : "";
      box.replaceChildren(
        title,
        h(
          "dl",
          {},
          h("dt", {}, "Run count"),
          h("dd", { dataset: { field: "total_count" } }, fmtCount(m.total_count)),
          h("dt", {}, "Success rate"),
          rate,
          h("dt", {}, "Avg run time"),
          runtime,
        ),
        h(
          "div",
          { class: "states" },
          Object.entries(states).map(([state, n]) => h("span", { class: `state ${state}` }, `${state} ${n}`)),
        ),
        byFunction,
      );
      // The pipeline's own figures leave cached and cloned runs out, as on its page.
      record
        .then((run) => api(`/api/v1/pipelines/${enc(run.root_function_path)}/metrics`))
        .then((p) => {
          rate.textContent = fmtPct(p.success_rate);
          runtime.textContent = fmtDuration(p.avg_run_time_s);
        })
        .catch(() => {});
    })
    .catch((err) =>
      box.replaceChildren(
        title,
        h("p", { class: "muted" }, err.status === 404 ? "No run record for this run." : err.message),
      ),
    );
  return box;
}

function runDetails(record, header) {
  const box = h("div", { class: "card" }, "Loading…");
  record
    .then((run) => {
      const fp = run.root_function_path || run.function_path;
      header.replaceChildren(
        h("a", { href: `${BASE}/`, "data-nav": true }, "Pipelines"),
        " / ",
        h("a", { href: `${BASE}/pipelines/${enc(fp)}`, "data-nav": true, class: "mono" }, fp),
        " / ",
        stateBadge(run.future_state),
      );
      const rows = Object.entries(run).map(([k, v]) =>
        h(
          "tr",
          {},
          h("td", { class: "muted" }, k),
          h("td", { class: "mono" }, v == null ? "—" : k.endsWith("_at") ? fmtTime(v) : String(v)),
        ),
      );
      box.replaceChildren(h("table", { class: "grid" }, h("tbody", {}, rows)));
    })
    .catch((err) =>
      box.replaceChildren(h("p", { class: "muted" }, err.status === 404 ? "No run record for this run." : err.message)),
    );
  return box;
}

function runPage(runId) {
  document.title = `Run ${runId} · sematic-metrics`;
  const labels = { run_id: runId };
  const grid = new ChartGrid(seriesLoader(labels));
  const live = h("span", { class: "live", id: "live" }, "connecting");
  const metricsBox = h("div", {}, h("p", { class: "muted" }, "Loading metrics…"));
  const crumbs = h("div", { class: "crumbs" }, h("a", { href: `${BASE}/`, "data-nav": true }, "Pipelines"), " / run");
  const record = api(`/api/v1/runs/${enc(runId)}/record`);
  record.catch(() => {}); // shown by the Run tab
  const details = runDetails(record, crumbs);
  const tabs = { metrics: metricsBox, details };
  const tabBar = h(
    "div",
    { class: "tabs" },
    Object.keys(tabs).map((name) =>
      h(
        "button",
        {
          type: "button",
          class: name === "metrics" ? "active" : "",
          dataset: { tab: name },
          onclick: (e) => {
            for (const b of tabBar.children) b.classList.toggle("active", b === e.target);
            for (const [n, el] of Object.entries(tabs)) el.hidden = n !== name;
          },
        },
        name === "metrics" ? "Metrics" : "Run",
      ),
    ),
    h("span", { class: "spacer" }),
    live,
  );
  details.hidden = true;
  app.append(
    crumbs,
    h("h1", { class: "mono" }, runId),
    h("div", { class: "layout" }, h("div", {}, tabBar, metricsBox, details), pipelinePanel(runId, record)),
  );

  // The series are loaded only after the stream is subscribed (its `ready`),
  // so no point stored in between can be missed; charts load lazily.
  // The Metrics tab leaves out Sematic's system metrics and metrics this run
  // logged only at pipeline scope (those belong to the pipeline's page).
  let started = false;
  let hidden = new Set();
  const shown = (name) => !name.startsWith("sematic.") && !hidden.has(name);
  const showNames = async () => {
    const [names, pipelineScope, runScope, notice] = await Promise.all([
      api("/api/v1/metrics", { labels }),
      api("/api/v1/metrics", { labels: { ...labels, __scope__: "1" } }),
      api("/api/v1/metrics", { labels: { ...labels, __scope__: "0" } }),
      chartsNotice(),
    ]);
    hidden = new Set(pipelineScope.filter((n) => !runScope.includes(n)));
    if (!started) {
      started = true;
      metricsBox.replaceChildren(...[notice, chartToolbar(grid), grid.el].filter(Boolean));
    }
    grid.setNames(names.filter(shown));
    if (!grid.charts.size) grid.el.replaceChildren(h("div", { class: "empty", id: "no-metrics" }, "No metrics logged in this run yet."));
  };
  const start = () => showNames().catch((err) => metricsBox.replaceChildren(errorBox(err)));
  const url = new URL("/api/v1/stream", location.origin);
  url.searchParams.set("run_id", runId);
  if (apiKey()) url.searchParams.set("api_key", apiKey());
  const source = new EventSource(url);
  const fallback = setTimeout(start, 3000); // no stream (e.g. a proxy): static charts
  source.addEventListener("ready", (e) => {
    clearTimeout(fallback);
    const data = JSON.parse(e.data);
    live.className = "live on";
    live.textContent = "live";
    if (data.resumed) return;
    if (started) grid.reloadAll(); // events were lost: load the series again
    start();
  });
  source.addEventListener("buckets", (e) => {
    const data = JSON.parse(e.data);
    if (!started) return; // the series are not loaded yet; their load is newer
    grid.el.querySelector("#no-metrics")?.remove();
    for (const update of data.metrics) if (shown(update.name)) grid.push(update);
    live.textContent = `live · updated ${new Date().toLocaleTimeString()}`;
  });
  source.onerror = () => {
    live.className = "live off";
    live.textContent = source.readyState === EventSource.CLOSED ? "not live" : "reconnecting…";
    if (source.readyState === EventSource.CLOSED) {
      clearTimeout(fallback);
      if (!started) start();
    }
  };
  return () => {
    clearTimeout(fallback);
    source.close();
    grid.destroy();
  };
}

route();
