// The pipeline page: its figures, its runs, and every metric of the selected runs compared.

import { api, enc } from "./api.js";
import { BASE, errorBox, h, runName, section, stateBadge } from "./dom.js";
import { fmtAgo, fmtTime, shortId, wrapName } from "./format.js";
import { chartsNotice, chartToolbar, duration, figures, newGrid, runSource } from "./toolbar.js";

const COMPARE_DEFAULT = 5; // runs selected when a pipeline page opens

export function pipelinePage(app, fp) {
  document.title = `${fp} · sematic-metrics`;
  const figureBox = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const runsBox = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const metricsBox = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  let runs = [];
  const selected = new Set();
  const sources = () => runs.filter((r) => selected.has(r.id)).map((r) => runSource(r, { root_function_path: fp, root_id: r.id }));
  let runCount = Infinity; // the pipeline's root runs, once its figures are in
  const grid = newGrid(sources, "", (chosen) =>
    // One request grouped by run when the selection is most of the pipeline's runs.
    chosen.length >= 2 && chosen.length * 2 >= Math.min(runCount, runs.length < 50 ? runs.length : Infinity)
      ? { labels: { root_function_path: fp }, key: "root_id" }
      : null,
  );
  app.append(
    h("div", { class: "crumbs" }, h("a", { href: `${BASE}/`, "data-nav": true }, "Pipelines"), " / "),
    h("h1", { class: "mono path" }, wrapName(fp)),
    figureBox,
    h("div", { class: "compare" }, h("div", {}, ...section("Runs", runsBox)), h("div", {}, ...section("Metrics of the selected runs", metricsBox))),
  );
  api(`/api/v1/pipelines/${enc(fp)}/metrics`)
    .then((m) => {
      runCount = m.run_count;
      figureBox.replaceChildren(...figures(m));
    })
    .catch((err) => figureBox.replaceChildren(errorBox(err)));

  let stateFilter = "";
  const selectionChanged = () => {
    for (const r of runs) if (selected.has(r.id)) grid.palette.get(r.id);
    for (const box of runsBox.querySelectorAll("input[data-run]")) {
      box.checked = selected.has(box.dataset.run);
      box.nextElementSibling.style.background = box.checked ? grid.palette.get(box.dataset.run) : "";
    }
    const n = selected.size;
    summary.textContent = `${n} of ${runs.length} runs selected`;
    // The selection is in the address, so a comparison can be shared.
    const url = new URL(location.href);
    url.searchParams.set("runs", runs.filter((r) => selected.has(r.id)).map((r) => r.id).join(","));
    history.replaceState(null, "", url);
    grid.reloadAll();
  };
  const summary = h("span", { class: "muted" });
  const visibleRuns = () => runs.filter((r) => !stateFilter || r.future_state === stateFilter);
  const selectRecent = () => {
    selected.clear();
    for (const r of visibleRuns().slice(0, COMPARE_DEFAULT)) selected.add(r.id);
    selectionChanged();
  };
  const renderRuns = () => {
    const states = [...new Set(runs.map((r) => r.future_state))];
    const filter = h(
      "select",
      {
        "aria-label": "Filter runs by state",
        id: "state-filter",
        onchange: (e) => {
          stateFilter = e.target.value;
          renderRuns();
          selectRecent();
        },
      },
      h("option", { value: "" }, "every state"),
      states.map((s) => h("option", { value: s }, `${s} (${runs.filter((r) => r.future_state === s).length})`)),
    );
    filter.value = stateFilter;
    const rows = visibleRuns().map((r) =>
      h(
        "tr",
        { dataset: { run: r.id } },
        h(
          "td",
          { class: "pick" },
          h("input", {
            type: "checkbox",
            checked: selected.has(r.id),
            dataset: { run: r.id },
            "aria-label": `Compare ${r.name || r.id}`,
            onchange: (e) => {
              if (e.target.checked) selected.add(r.id);
              else selected.delete(r.id);
              selectionChanged();
            },
          }),
          h("i", { class: "swatch", style: selected.has(r.id) ? `background:${grid.palette.get(r.id)}` : "" }),
        ),
        h(
          "td",
          {},
          runName(r),
          h(
            "div",
            { class: "muted small", title: fmtTime(r.started_at ?? r.created_at) },
            `${fmtAgo(r.started_at ?? r.created_at)} · ${duration(r)}`,
            r.original_run_id ? ` · copy of ${shortId(r.original_run_id)}` : "",
          ),
        ),
        h("td", {}, stateBadge(r)),
      ),
    );
    runsBox.replaceChildren(
      h(
        "div",
        { class: "run-tools" },
        filter,
        h("button", { type: "button", class: "ghost", onclick: selectRecent }, `Most recent ${COMPARE_DEFAULT}`),
        h(
          "button",
          {
            type: "button",
            class: "ghost",
            id: "select-all",
            onclick: () => {
              for (const r of visibleRuns()) selected.add(r.id);
              selectionChanged();
            },
          },
          "All listed",
        ),
        h("button", { type: "button", class: "ghost", onclick: () => (selected.clear(), selectionChanged()) }, "None"),
        summary,
      ),
      rows.length
        ? h(
            "div",
            { class: "runs-scroll" },
            h(
              "table",
              { class: "grid", id: "runs" },
              h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, "Run"), h("th", {}, "State"))),
              h("tbody", {}, rows),
            ),
          )
        : h("div", { class: "empty" }, "No runs."),
    );
    summary.textContent = `${selected.size} of ${runs.length} runs selected`;
  };
  const grouping = h(
    "label",
    { title: "One line per function of each run (group_by=function_path)" },
    h("input", {
      type: "checkbox",
      id: "group-function",
      onchange: (e) => {
        grid.groupBy = e.target.checked ? "function_path" : "";
        grid.reloadAll();
      },
    }),
    "Group by function_path",
  );

  // Pipeline-scope metrics (MetricScope.PIPELINE, e.g. a final accuracy per run) are also
  // drawn over every run of the pipeline, as one series in time.
  const trendSource = { key: "pipeline", id: null, name: "every run", labels: { root_function_path: fp, __scope__: "1" }, origin: null };
  const trend = newGrid(() => [trendSource]);
  const trendBox = h("div", { id: "pipeline-metrics" });
  const both = gridGroup(grid, trend);
  Promise.all([
    api(`/api/v1/pipelines/${enc(fp)}/runs`, { limit: "50" }),
    api("/api/v1/metrics", { labels: { root_function_path: fp } }),
    api("/api/v1/metrics", { labels: { root_function_path: fp, __scope__: "1" } }),
    api("/api/v1/metrics", { labels: { root_function_path: fp, __scope__: "0" } }),
    chartsNotice(),
  ])
    .then(([found, all, pipelineScope, runScope, notice]) => {
      const system = (n) => n.startsWith("sematic.");
      const names = all.filter((n) => !system(n) && (runScope.includes(n) || !pipelineScope.includes(n)));
      const trendNames = pipelineScope.filter((n) => !system(n));
      runs = found;
      const asked = new URLSearchParams(location.search).get("runs");
      if (asked !== null) {
        for (const id of asked.split(",")) if (runs.some((r) => r.id === id)) selected.add(id);
      } else {
        for (const r of runs.slice(0, COMPARE_DEFAULT)) selected.add(r.id);
      }
      for (const r of runs) if (selected.has(r.id)) grid.palette.get(r.id);
      renderRuns();
      if (!names.length && !trendNames.length) {
        metricsBox.replaceChildren(h("div", { class: "empty" }, "No metrics logged by this pipeline's runs yet."));
        return;
      }
      const toolbar = chartToolbar(both);
      toolbar.append(grouping);
      const compared = names.length ? grid.el : h("div", { class: "empty" }, "No run-scope metrics.");
      metricsBox.replaceChildren(...[notice, toolbar, compared, trendNames.length ? trendBox : null].filter(Boolean));
      trendBox.replaceChildren(...section("Pipeline metrics, every run over time", trend.el));
      grid.setNames(names);
      trend.setNames(trendNames);
    })
    .catch((err) => {
      runsBox.replaceChildren(errorBox(err));
      metricsBox.replaceChildren();
    });
  return () => both.destroy();
}

/** Several grids behind one toolbar. */
function gridGroup(...grids) {
  const group = {
    set onChange(fn) {
      for (const g of grids) g.onChange = fn;
    },
    counts: () =>
      grids.map((g) => g.counts()).reduce((a, c) => ({ total: a.total + c.total, shown: a.shown + c.shown, pinned: a.pinned + c.pinned })),
  };
  for (const method of ["reloadAll", "refresh", "setFilter", "destroy"]) group[method] = (...args) => grids.forEach((g) => g[method](...args));
  return group;
}
