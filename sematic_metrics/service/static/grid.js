// The charts of a page: one MetricChart per metric, ordered (pinned first),
// filtered by name, with one colour per run for the whole page.

import { MetricChart } from "./charts.js";
import { prefs } from "./prefs.js";

const el = (tag, cls) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  return e;
};

// Tableau 10: distinct on white, colour-blind friendlier than a rainbow.
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

const DASHES = [[], [6, 3], [2, 2], [8, 3, 2, 3], [12, 4]];

/** One colour per key (a run id) for the life of a page, so a run has the same colour on every chart. */
export class Palette {
  constructor() {
    this.colors = new Map();
    this.dashes = new Map();
  }

  /** A dash pattern per key (a function), for lines that share a run's colour. */
  dash(key) {
    let d = this.dashes.get(key);
    if (!d) {
      d = DASHES[this.dashes.size % DASHES.length];
      this.dashes.set(key, d);
    }
    return d;
  }
  get(key) {
    let c = this.colors.get(key);
    if (!c) {
      const i = this.colors.size;
      c = PALETTE[i % PALETTE.length];
      if (i >= PALETTE.length) c = shade(c, (Math.floor(i / PALETTE.length) % 3) - 1.5);
      this.colors.set(key, c);
    }
    return c;
  }
}

function shade(hex, k) {
  const n = parseInt(hex.slice(1), 16);
  const ch = (v) => Math.max(0, Math.min(255, Math.round(v + k * 40)));
  return `rgb(${ch(n >> 16)}, ${ch((n >> 8) & 255)}, ${ch(n & 255)})`;
}

/** The charts of a page: pinned metrics first, then by name; filtered by name. */
export class ChartGrid {
  constructor({ sources, fetchSeries, exportPoints, groupBy = "", shared = null }) {
    this._sources = sources;
    this.shared = shared; // (sources) => {labels, key} when one grouped request serves them all
    this.fetchSeries = fetchSeries;
    this.exportPoints = exportPoints;
    this.groupBy = groupBy;
    this.palette = new Palette();
    this.origins = new Map(); // source key -> relative time origin, when the source has none
    this.charts = new Map();
    this.filter = "";
    this.el = el("div", "charts");
    this.onChange = () => {};
  }

  sources() {
    return this._sources();
  }

  order(a, b) {
    const pa = prefs.pins.has(a) ? 0 : 1;
    const pb = prefs.pins.has(b) ? 0 : 1;
    return pa - pb || (a < b ? -1 : a > b ? 1 : 0);
  }

  add(name) {
    let chart = this.charts.get(name);
    if (chart) return chart;
    chart = new MetricChart(name, this);
    this.charts.set(name, chart);
    this.place(chart);
    chart.el.hidden = !this.matches(name);
    this.onChange();
    return chart;
  }

  place(chart) {
    const after = [...this.charts.keys()].filter((n) => n !== chart.name && this.order(n, chart.name) > 0).sort((a, b) => this.order(a, b))[0];
    this.el.insertBefore(chart.el, after ? this.charts.get(after).el : null);
  }

  setNames(names) {
    for (const name of names) this.add(name);
  }

  togglePin(name) {
    if (prefs.pins.has(name)) prefs.pins.delete(name);
    else prefs.pins.add(name);
    prefs.save();
    const chart = this.charts.get(name);
    chart.markPin();
    this.place(chart);
    this.onChange();
  }

  /** Metrics of a stream `buckets` event: merged where a chart can, else loaded again. */
  update(metrics) {
    for (const m of metrics) {
      const chart = this.charts.get(m.name);
      if (chart && !chart.push(m)) chart.refreshLive();
    }
  }

  /** The stream has new points of these metrics (all of them when `names` is null). */
  live(names = null) {
    for (const name of names ?? this.charts.keys()) this.charts.get(name)?.refreshLive();
  }

  reloadAll() {
    for (const chart of this.charts.values()) chart.reload();
  }

  refresh() {
    for (const chart of this.charts.values()) chart.invalidate();
  }

  matches(name) {
    return !this.filter || name.toLowerCase().includes(this.filter);
  }

  setFilter(text) {
    this.filter = text.trim().toLowerCase();
    for (const chart of this.charts.values()) chart.el.hidden = !this.matches(chart.name);
    this.onChange();
  }

  counts() {
    const shown = [...this.charts.values()].filter((c) => !c.el.hidden).length;
    return { total: this.charts.size, shown, pinned: [...this.charts.keys()].filter((n) => prefs.pins.has(n)).length };
  }

  destroy() {
    for (const chart of this.charts.values()) chart.destroy();
    this.charts.clear();
  }
}
