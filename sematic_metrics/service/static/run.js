// The run page: the run's state, Sematic's pipeline panel, and the run's
// metrics, live from the stream, with other runs of its pipeline if asked.

import { api, apiKey, enc } from "./api.js";
import { BASE, errorBox, h, runName, stateBadge } from "./dom.js";
import { fmtAgo, fmtCount, fmtDuration, fmtPct, fmtTime, shortId, wrapName } from "./format.js";
import { chartsNotice, chartToolbar, newGrid, runSource } from "./toolbar.js";

/** Sematic's pipeline panel for the run's pipeline, with the pipeline's own figures. */
function pipelinePanel(runId, record) {
  const title = h("h3", {}, "Pipeline metrics");
  const box = h("aside", { class: "card panel", id: "pipeline-panel" }, title, "Loading…");
  Promise.all([api(`/api/v1/runs/${enc(runId)}/metrics`), record.then((run) => api(`/api/v1/pipelines/${enc(run.root_function_path)}/metrics`)).catch(() => null)])
    .then(([m, p]) => {
      const runtimes = Object.entries(m.avg_runtime_children || {}).sort((a, b) => b[1] - a[1]);
      box.replaceChildren(
        title,
        h(
          "dl",
          {},
          h("dt", {}, "Run count"),
          h("dd", { dataset: { field: "total_count" } }, fmtCount(m.total_count)),
          h("dt", {}, "Success rate"),
          h("dd", { dataset: { field: "success_rate" } }, fmtPct(p?.success_rate)),
          h("dt", {}, "Avg run time"),
          h("dd", { dataset: { field: "avg_run_time_s" } }, fmtDuration(p?.avg_run_time_s)),
        ),
        h(
          "div",
          { class: "states" },
          Object.entries(m.count_by_state || {}).map(([state, n]) => h("span", { class: `state ${state}` }, `${state} ${n}`)),
        ),
        runtimes.length
          ? h(
              "table",
              {},
              h("caption", {}, "Average run time by function"),
              h("tbody", {}, runtimes.map(([fn, s]) => h("tr", {}, h("td", { class: "mono path", title: fn }, wrapName(fn)), h("td", {}, fmtDuration(s))))),
            )
          : "",
      );
    })
    .catch((err) => box.replaceChildren(title, h("p", { class: "muted" }, err.status === 404 ? "No run record for this run." : err.message)));
  return box;
}

function runDetails(run) {
  const rows = Object.entries(run).map(([k, v]) =>
    h("tr", {}, h("td", { class: "muted" }, k), h("td", { class: "mono" }, v == null ? "—" : k.endsWith("_at") ? fmtTime(v) : String(v))),
  );
  return h("table", { class: "grid" }, h("tbody", {}, rows));
}

/** "Compare with…": other runs of the same pipeline, added to every chart of this page. */
function comparePicker(record, grid, others) {
  const box = h("details", { class: "compare-picker", id: "compare-picker" }, h("summary", {}, "Compare with other runs"), h("p", { class: "muted" }, "Loading…"));
  box.addEventListener(
    "toggle",
    () => {
      if (!box.open || box.dataset.loaded) return;
      box.dataset.loaded = "1";
      record
        .then((run) => api(`/api/v1/pipelines/${enc(run.root_function_path)}/runs`, { limit: "50" }))
        .then((runs) => {
          const list = runs.filter((r) => r.id !== grid.runId);
          box.replaceChildren(
            box.firstChild,
            list.length
              ? h(
                  "ul",
                  {},
                  list.map((r) =>
                    h(
                      "li",
                      {},
                      h(
                        "label",
                        {},
                        h("input", {
                          type: "checkbox",
                          dataset: { run: r.id },
                          onchange: (e) => {
                            if (e.target.checked) others.set(r.id, r);
                            else others.delete(r.id);
                            grid.reloadAll();
                          },
                        }),
                        runName(r, false),
                        " ",
                        stateBadge(r),
                        h("span", { class: "muted" }, ` ${fmtAgo(r.started_at ?? r.created_at)}`),
                      ),
                    ),
                  ),
                )
              : h("p", { class: "muted" }, "No other runs of this pipeline."),
          );
        })
        .catch((err) => box.replaceChildren(box.firstChild, errorBox(err)));
    },
  );
  return box;
}

export function runPage(app, runId) {
  document.title = `Run ${shortId(runId)} · sematic-metrics`;
  const labels = { run_id: runId };
  let self = { id: runId, name: null };
  const others = new Map(); // runs added for comparison
  const sources = () => [
    runSource(self, labels),
    // The same function in the other pipeline runs (for a root run: that run itself).
    ...[...others.values()].map((r) => runSource(r, { root_id: r.id, function_path: self.function_path ?? "" })),
  ];
  const grid = newGrid(sources);
  grid.runId = runId;
  grid.palette.get(runId);
  const live = h("span", { class: "live", id: "live" }, "connecting");
  const metricsBox = h("div", {}, h("p", { class: "muted" }, "Loading metrics…"));
  const crumbs = h("div", { class: "crumbs" }, h("a", { href: `${BASE}/`, "data-nav": true }, "Pipelines"), " / run");
  const heading = h("h1", {}, h("span", { class: "mono" }, runId));
  const details = h("div", { class: "card" }, "Loading…");
  const record = api(`/api/v1/runs/${enc(runId)}/record`);
  const showRecord = (run) => {
    self = { ...run, id: runId };
    const fp = run.root_function_path || run.function_path;
    crumbs.replaceChildren(
      h("a", { href: `${BASE}/`, "data-nav": true }, "Pipelines"),
      " / ",
      h("a", { href: `${BASE}/pipelines/${enc(fp)}`, "data-nav": true, class: "mono path" }, wrapName(fp)),
    );
    heading.replaceChildren(runName(run, false), " ", stateBadge(run));
    details.replaceChildren(runDetails(run));
  };
  record.then(showRecord).catch((err) => details.replaceChildren(h("p", { class: "muted" }, err.status === 404 ? "No run record for this run." : err.message)));
  let lastRecord = Date.now();
  const refreshRecord = () => {
    // The run's state while it logs: the record again, at most every few seconds.
    if (Date.now() - lastRecord < 5000) return;
    lastRecord = Date.now();
    api(`/api/v1/runs/${enc(runId)}/record`).then(showRecord).catch(() => {});
  };
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
            for (const b of tabBar.querySelectorAll("button")) b.classList.toggle("active", b === e.target);
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
  app.append(crumbs, heading, h("div", { class: "layout" }, h("div", {}, tabBar, metricsBox, details), pipelinePanel(runId, record)));

  // Charts load at once; the stream's first `ready` (subscribed) makes the
  // charts of a run in progress load again, so that no point stored between
  // their first load and the subscription is missed. Charts load lazily.
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
      record.catch(() => null),
    ]);
    hidden = new Set(pipelineScope.filter((n) => !runScope.includes(n)));
    if (!started) {
      started = true;
      const toolbar = chartToolbar(grid);
      metricsBox.replaceChildren(...[notice, toolbar, comparePicker(record, grid, others), grid.el].filter(Boolean));
    }
    grid.setNames(names.filter(shown));
    if (!grid.charts.size) grid.el.replaceChildren(h("div", { class: "empty", id: "no-metrics" }, "No metrics logged in this run yet."));
  };
  showNames().catch((err) => metricsBox.replaceChildren(errorBox(err)));
  const url = new URL("/api/v1/stream", location.origin);
  url.searchParams.set("run_id", runId);
  if (apiKey()) url.searchParams.set("api_key", apiKey());
  const source = new EventSource(url);
  let subscribed = false;
  source.addEventListener("ready", (e) => {
    const data = JSON.parse(e.data);
    live.className = "live on";
    live.textContent = "live";
    if (data.resumed) return;
    if (subscribed) {
      grid.reloadAll(); // events were lost: load the series again
      return;
    }
    subscribed = true;
    record.then((run) => run.in_progress !== false && grid.live(), () => grid.live());
  });
  source.addEventListener("buckets", (e) => {
    const data = JSON.parse(e.data);
    if (!started) return; // the names are not loaded yet; the charts will load fresh
    grid.el.querySelector("#no-metrics")?.remove();
    const metrics = data.metrics.filter((m) => shown(m.name));
    for (const m of metrics) if (!grid.charts.has(m.name)) grid.add(m.name);
    grid.update(metrics);
    refreshRecord();
    live.textContent = `live · updated ${new Date().toLocaleTimeString()}`;
  });
  source.onerror = () => {
    live.className = "live off";
    live.textContent = source.readyState === EventSource.CLOSED ? "not live" : "reconnecting…";
  };
  return () => {
    source.close();
    grid.destroy();
  };
}
