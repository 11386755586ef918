// Metric charts on uPlot: created lazily when near the viewport, redrawn at
// most once per animation frame, with TensorBoard-style EMA smoothing and a
// log scale. A chart holds the series the metrics API answered and merges
// live buckets into it (each bucket carries its full aggregate).

let uPlot = null;

/** Load the vendored uPlot; false when the asset is missing. */
export async function loadUPlot() {
  try {
    uPlot = (await import("/dashboard/static/vendor/uPlot.esm.js")).default;
  } catch {
    uPlot = null;
  }
  return uPlot !== null;
}

export const hasUPlot = () => uPlot !== null;

const PREFS_KEY = "sematic-metrics.chart-prefs";

/** Chart settings shared by every chart, kept in localStorage. */
export const prefs = (() => {
  let saved = {};
  try {
    saved = JSON.parse(localStorage.getItem(PREFS_KEY) || "{}");
  } catch {
    saved = {};
  }
  return {
    smoothing: Math.min(0.99, Math.max(0, Number(saved.smoothing) || 0)),
    log: saved.log === true,
    save() {
      localStorage.setItem(PREFS_KEY, JSON.stringify({ smoothing: this.smoothing, log: this.log }));
    },
  };
})();

/** TensorBoard's smoothing: debiased exponential moving average, gaps kept. */
export function ema(ys, weight) {
  if (!(weight > 0)) return ys;
  const out = new Array(ys.length);
  let last = 0;
  let n = 0;
  for (let i = 0; i < ys.length; i++) {
    const v = ys[i];
    if (v == null || !Number.isFinite(v)) {
      out[i] = v;
      continue;
    }
    last = last * weight + (1 - weight) * v;
    n += 1;
    out[i] = last / (1 - Math.pow(weight, n));
  }
  return out;
}

/** Axis ticks: short, exponent for very small or large magnitudes. */
export function fmtTick(v) {
  if (v == null) return "";
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
}

function fmtValue(v) {
  if (v == null || Number.isNaN(v)) return "--";
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-4 || a >= 1e9)) return v.toExponential(4);
  return String(Number(v.toPrecision(6)));
}

const KIND = { GAUGE: "average per bucket", COUNT: "sum per bucket" };

// One rAF loop redraws every chart that changed since the last frame.
const dirty = new Set();
let frame = 0;
function schedule(chart) {
  dirty.add(chart);
  if (!frame) frame = requestAnimationFrame(flush);
}
function flush() {
  frame = 0;
  const charts = [...dirty];
  dirty.clear();
  for (const chart of charts) chart.render();
}

const visibility = new IntersectionObserver(
  (entries) => {
    for (const entry of entries) entry.target.chart?.setVisible(entry.isIntersecting);
  },
  { rootMargin: "400px 0px" },
);
const sizes = new ResizeObserver((entries) => {
  for (const entry of entries) entry.target.closest(".chart-card")?.chart?.resize();
});

export class MetricChart {
  /** `load` returns the `content` of GET /api/v1/metrics/{name}?...&rollup=auto. */
  constructor(name, load) {
    this.name = name;
    this.loadSeries = load;
    this.xs = [];
    this.ys = [];
    this.type = null;
    this.state = "idle"; // idle | loading | loaded | error
    this.generation = 0;
    this.queued = [];
    this.visible = false;
    this.stale = true;
    this.zoomed = false;
    this.plot = null;
    this.plotKey = "";

    this.el = document.createElement("section");
    this.el.className = "chart-card";
    this.el.dataset.metric = name;
    this.el.chart = this;
    const header = document.createElement("header");
    const title = document.createElement("span");
    title.className = "name";
    title.textContent = name;
    this.kind = document.createElement("span");
    this.kind.className = "kind";
    this.kind.textContent = "…";
    header.append(title, this.kind);
    this.body = document.createElement("div");
    this.body.className = "plot";
    this.placeholder("waiting");
    this.el.append(header, this.body);
    visibility.observe(this.el);
    sizes.observe(this.body);
  }

  placeholder(text) {
    this.body.innerHTML = "";
    const p = document.createElement("div");
    p.className = "placeholder";
    p.textContent = text;
    this.body.append(p);
  }

  setVisible(visible) {
    this.visible = visible;
    if (!visible) return;
    if (this.state === "idle") this.load();
    else if (this.stale) schedule(this);
  }

  async load() {
    const generation = ++this.generation;
    this.state = "loading";
    this.queued = [];
    if (!this.plot) this.placeholder("loading…");
    let content;
    try {
      content = await this.loadSeries();
    } catch (err) {
      if (generation !== this.generation) return;
      this.state = "error";
      this.placeholder(String(err.message || err));
      return;
    }
    if (generation !== this.generation) return; // a newer load replaced this one
    this.type = content.metric_type;
    this.xs = content.series.map((s) => Number(s[1][0]));
    this.ys = content.series.map((s) => s[0]);
    this.state = "loaded";
    // Updates that arrived while loading are newer than nothing we know: apply in order.
    for (const update of this.queued) this.apply(update);
    this.queued = [];
    this.invalidate();
  }

  /** Load the series again (the stream lost events or restarted). */
  reload() {
    this.generation += 1;
    this.state = "idle";
    this.queued = [];
    if (this.visible) this.load();
  }

  /** A metric entry of a `buckets` stream event. */
  push(update) {
    if (this.state === "loading") this.queued.push(update);
    else if (this.state === "loaded") {
      this.apply(update);
      this.invalidate();
    }
    // idle or error: the next load fetches the current series anyway
  }

  apply(update) {
    this.type = update.metric_type;
    if (update.reset) {
      this.xs = update.points.map((p) => p[0]);
      this.ys = update.points.map((p) => p[1]);
      return;
    }
    const xs = this.xs;
    for (const [x, y] of update.points) {
      let hi = xs.length;
      if (hi === 0 || x > xs[hi - 1]) {
        xs.push(x);
        this.ys.push(y);
        continue;
      }
      let lo = 0;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (xs[mid] < x) lo = mid + 1;
        else hi = mid;
      }
      if (xs[lo] === x) this.ys[lo] = y;
      else {
        xs.splice(lo, 0, x);
        this.ys.splice(lo, 0, y);
      }
    }
  }

  invalidate() {
    this.stale = true;
    if (this.visible) schedule(this);
  }

  data() {
    const ys = prefs.log ? this.ys.map((v) => (v > 0 ? v : null)) : this.ys.slice();
    return prefs.smoothing > 0 ? [this.xs.slice(), ys, ema(ys, prefs.smoothing)] : [this.xs.slice(), ys];
  }

  render() {
    if (!this.visible || this.state !== "loaded" || !uPlot) return;
    this.kind.textContent = KIND[this.type] || this.type;
    this.kind.className = `kind ${this.type}`;
    if (this.xs.length === 0) {
      this.destroyPlot();
      this.placeholder("no points");
      this.stale = false;
      return;
    }
    const key = `${prefs.log}|${prefs.smoothing > 0}`;
    const data = this.data();
    if (!this.plot || key !== this.plotKey) this.create(data, key);
    else if (!this.zoomed) this.plot.setData(data);
    else {
      // Keep the zoomed x range; setting it again redraws and re-ranges y.
      const { min, max } = this.plot.scales.x;
      this.plot.setData(data, false);
      this.plot.setScale("x", { min, max });
    }
    this.stale = false;
  }

  create(data, key) {
    this.destroyPlot();
    this.body.innerHTML = "";
    this.plotKey = key;
    this.zoomed = false;
    const smooth = prefs.smoothing > 0;
    const dots = data[0].length <= 60;
    const opts = {
      width: Math.max(200, this.body.clientWidth),
      height: 220,
      scales: { x: { time: true }, y: { distr: prefs.log ? 3 : 1 } },
      series: [
        {},
        {
          label: this.type === "COUNT" ? "sum" : "average",
          stroke: smooth ? "rgba(59, 91, 219, 0.28)" : "#3b5bdb",
          width: smooth ? 1 : 1.75,
          points: { show: dots && !smooth, size: 5 },
          value: (u, v) => fmtValue(v),
        },
        ...(smooth
          ? [{ label: "smoothed", stroke: "#3b5bdb", width: 2, points: { show: false }, value: (u, v) => fmtValue(v) }]
          : []),
      ],
      axes: [{}, { size: 64, values: (u, splits) => splits.map(fmtTick) }],
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width > 0) this.zoomed = true;
          },
        ],
        draw: [(u) => this.painted(u)],
      },
    };
    this.plot = new uPlot(opts, data, this.body);
    this.plot.over.addEventListener("dblclick", () => {
      this.zoomed = false;
    });
  }

  /** Marks the card once a frame with the drawn data is on screen (tests read these). */
  painted(u) {
    const xs = u.data[0];
    const n = xs.length;
    const last = n ? xs[n - 1] : null;
    const value = n ? u.data[1][n - 1] : null;
    requestAnimationFrame(() => {
      this.el.dataset.points = String(n);
      this.el.dataset.lastX = String(last);
      this.el.dataset.lastY = String(value);
      this.el.dataset.paintedAt = String(Date.now());
    });
  }

  resize() {
    if (this.plot) this.plot.setSize({ width: Math.max(200, this.body.clientWidth), height: 220 });
  }

  destroyPlot() {
    if (this.plot) {
      this.plot.destroy();
      this.plot = null;
    }
  }

  destroy() {
    this.generation += 1;
    visibility.unobserve(this.el);
    sizes.unobserve(this.body);
    dirty.delete(this);
    this.destroyPlot();
    this.el.remove();
  }
}

/** The charts of a set of metrics, sorted by name, with a name filter. */
export class ChartGrid {
  constructor(loaderFor) {
    this.loaderFor = loaderFor;
    this.charts = new Map();
    this.filter = "";
    this.el = document.createElement("div");
    this.el.className = "charts";
  }

  add(name) {
    let chart = this.charts.get(name);
    if (chart) return chart;
    chart = new MetricChart(name, () => this.loaderFor(name));
    this.charts.set(name, chart);
    const after = [...this.charts.keys()].sort().filter((n) => n > name)[0];
    const before = after ? this.charts.get(after).el : null;
    this.el.insertBefore(chart.el, before);
    chart.el.hidden = !this.matches(name);
    return chart;
  }

  setNames(names) {
    for (const name of names) this.add(name);
  }

  push(update) {
    this.add(update.name).push(update);
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
  }

  destroy() {
    for (const chart of this.charts.values()) chart.destroy();
    this.charts.clear();
  }
}
