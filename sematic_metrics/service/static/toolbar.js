// The chart toolbar and grid shared by the pipeline and run pages.

import { api, download } from "./api.js";
import { loadUPlot } from "./charts.js";
import { ChartGrid } from "./grid.js";
import { AXES, prefs } from "./prefs.js";
import { h, stat } from "./dom.js";
import { fmtCount, fmtDuration, fmtPct, toMs } from "./format.js";

const chartsReady = loadUPlot();

export function figures(m) {
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

export function duration(run) {
  if (run.duration_s != null) return fmtDuration(run.duration_s);
  const started = toMs(run.started_at);
  if (run.in_progress && started != null) return `${fmtDuration((Date.now() - started) / 1000)} so far`;
  return "—";
}

export function chartToolbar(grid) {
  const count = h("span", { class: "muted metric-count" });
  grid.onChange = () => {
    const c = grid.counts();
    count.textContent = `${c.shown === c.total ? fmtCount(c.total) : `${fmtCount(c.shown)} of ${fmtCount(c.total)}`} metrics${c.pinned ? ` · ${c.pinned} pinned` : ""}`;
  };
  const axis = h(
    "div",
    { class: "segmented", role: "radiogroup", "aria-label": "x axis" },
    Object.entries(AXES).map(([key, label]) =>
      h(
        "button",
        {
          type: "button",
          role: "radio",
          class: prefs.axis === key ? "on" : "",
          "aria-checked": String(prefs.axis === key),
          dataset: { axis: key },
          title: key === "step" ? "Plot against the step; metrics logged without steps fall back to time" : key === "time" ? "Plot against wall-clock time" : "Plot against the time since each run started",
          onclick: () => {
            prefs.axis = key;
            prefs.save();
            for (const b of axis.children) {
              b.classList.toggle("on", b.dataset.axis === key);
              b.setAttribute("aria-checked", String(b.dataset.axis === key));
            }
            grid.reloadAll();
          },
        },
        label,
      ),
    ),
  );
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
  const toggle = (key, label, title) =>
    h(
      "label",
      { title },
      h("input", {
        type: "checkbox",
        checked: prefs[key],
        dataset: { pref: key },
        onchange: (e) => {
          prefs[key] = e.target.checked;
          prefs.save();
          grid.refresh();
        },
      }),
      label,
    );
  return h(
    "div",
    { class: "toolbar" },
    h("input", { type: "search", placeholder: "Filter metrics", "aria-label": "Filter metrics", oninput: (e) => grid.setFilter(e.target.value) }),
    count,
    h("label", {}, "x axis", axis),
    h("label", { title: "Exponential moving average, as in TensorBoard" }, "Smoothing", slider, value),
    toggle("log", "Log scale"),
    toggle("cumulative", "Cumulative counts", "Count metrics: the running total instead of the sum per bucket"),
    h("span", { class: "muted hint" }, "Drag to zoom, double-click to reset, ☆ to pin"),
  );
}

export async function chartsNotice() {
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

export function newGrid(sources, groupBy = "", shared = null) {
  return new ChartGrid({
    sources,
    groupBy,
    shared,
    fetchSeries: (params, signal) => api("/api/v1/series", params, { signal }),
    exportPoints: (params, filename) => download("/api/v1/series/points", params, filename),
  });
}

/** A run as a chart source: its lines are the points it logged (`labels`). */
export const runSource = (run, labels) => ({
  key: run.id,
  id: run.id,
  name: run.name,
  labels,
  origin: run.started_at ?? run.created_at ?? null,
});
