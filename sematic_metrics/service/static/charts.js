// Metric charts on uPlot, fed by GET /api/v1/series.
//
// A chart plots one metric for one or more sources (a run, or a run's
// function); each source is one request, grouped further by the page's
// group_by. It asks for about one bucket per pixel of the plot and draws the
// value line with the min-max band; dragging zooms by asking the zoomed range
// again, so zooming in ends at the raw points (width 0). Charts are created
// when scrolled near and redrawn at most once per animation frame.

import { align, floorIndex, padRange, toLine } from "./chartdata.js";
import { fmtCount, fmtDuration, fmtTick, shortId, wrapName } from "./format.js";
import { prefs } from "./prefs.js";
import { AXIS_TITLE, fmtWidth, showTooltip } from "./tooltip.js";

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

function alpha(color, a) {
  if (color.startsWith("#")) {
    const n = parseInt(color.slice(1), 16);
    return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
  }
  return color.replace("rgb(", "rgba(").replace(")", `, ${a})`);
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
  // A frame's budget, so that scrolling stays smooth while many answers arrive at once;
  // the charts left over are drawn in the next frames.
  const start = performance.now();
  for (const chart of dirty) {
    dirty.delete(chart);
    chart.render();
    if (performance.now() - start > FRAME_BUDGET_MS) break;
  }
  if (dirty.size) frame = requestAnimationFrame(flush);
}

const visibility = new IntersectionObserver(
  (entries) => {
    for (const entry of entries) entry.target.chart?.setVisible(entry.isIntersecting);
  },
  { rootMargin: "300px 0px" },
);
const sizes = new ResizeObserver((entries) => {
  for (const entry of entries) entry.target.closest(".chart-card")?.chart?.resize();
});

const HEIGHT = 240;
const FRAME_BUDGET_MS = 8;
const LIVE_INTERVAL_MS = 1000;
// Steps are whole numbers: tick spacing 1, 2, 5, 10, 20, 25, 50, ...
const STEP_INCRS = [1, 2, 5].concat(...Array.from({ length: 15 }, (_, e) => [10, 20, 25, 50].map((m) => m * 10 ** e)));
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
};

export class MetricChart {
  /**
   * `grid` gives the sources (`grid.sources()`: [{key, name, id, labels, origin}]),
   * `grid.groupBy`, `grid.palette`, `grid.fetchSeries(params, signal)` and
   * `grid.exportPoints(params, filename)`.
   */
  constructor(name, grid) {
    this.name = name;
    this.grid = grid;
    this.type = null;
    this.axis = null; // the axis drawn: step | time | relative
    this.lines = [];
    this.missing = []; // sources without points on the step axis
    this.range = null; // zoomed x range in display units, or null: everything
    this.state = "idle"; // idle | loading | loaded | error
    this.generation = 0;
    this.controller = null;
    this.visible = false;
    this.stale = true;
    this.again = false;
    this.plot = null;
    this.plotKey = "";

    this.el = el("section", "chart-card");
    this.el.dataset.metric = name;
    this.el.chart = this;
    const header = el("header");
    this.pin = el("button", "pin");
    this.pin.type = "button";
    this.pin.addEventListener("click", () => grid.togglePin(name));
    this.title = el("span", "name");
    this.title.append(...wrapName(name));
    this.title.title = name;
    this.kind = el("span", "kind", "…");
    this.resolution = el("span", "resolution");
    this.exports = el("details", "export");
    this.exports.hidden = true;
    header.append(this.pin, this.title, this.kind, this.resolution, el("span", "spacer"), this.exports);
    this.legend = el("div", "legend");
    this.body = el("div", "plot");
    this.tooltip = el("div", "tooltip");
    this.tooltip.hidden = true;
    this.placeholder("waiting");
    this.el.append(header, this.legend, this.body);
    this.markPin();
    visibility.observe(this.el);
    sizes.observe(this.body);
  }

  markPin() {
    const pinned = prefs.pins.has(this.name);
    this.pin.textContent = pinned ? "★" : "☆";
    this.pin.title = pinned ? "Unpin" : "Pin to the top";
    this.pin.setAttribute("aria-pressed", String(pinned));
    this.el.classList.toggle("pinned", pinned);
  }

  placeholder(text) {
    this.destroyPlot();
    this.body.replaceChildren(el("div", "placeholder", text));
  }

  setVisible(visible) {
    this.visible = visible;
    if (!visible) {
      // Scrolled past before its first answer: give the connection to the charts in view.
      if (this.state === "loading" && !this.ready) {
        this.generation += 1;
        this.controller?.abort();
        this.state = "idle";
        this.again = false;
        this.el.dataset.state = "idle";
      }
      return;
    }
    if (this.state === "idle") this.load();
    else if (this.stale) schedule(this);
  }

  /** Buckets to ask for: about one per pixel of the plot's width. */
  buckets() {
    // Before the first plot: the card's width less the y axis and gutters.
    const px = this.plot ? this.plot.bbox.width / devicePixelRatio : this.body.clientWidth - 100;
    return Math.max(50, Math.min(4000, Math.round(px || 600)));
  }

  params(source, x, offset) {
    const p = { name: this.name, labels: source.labels, x, buckets: String(this.buckets()) };
    if (this.grid.groupBy) p.group_by = this.grid.groupBy;
    if (this.range) {
      let { lo, hi } = this.range;
      if (x === "step") {
        lo = Math.floor(lo);
        hi = Math.max(lo + 1, Math.floor(hi) + 1);
      }
      p.from = String(lo + offset);
      p.to = String(hi + offset);
    }
    return p;
  }

  /** Where relative time starts for a source: its run's start, else its first point seen. */
  origin(source) {
    return source.origin ?? this.grid.origins.get(source.key) ?? 0;
  }

  async fetchAll(sources, x, axis, signal) {
    const shared = this.grid.shared?.(sources);
    if (shared && !(axis === "relative" && this.range)) return this.fetchShared(shared, sources, x, axis, signal);
    return Promise.all(
      sources.map(async (source) => {
        const offset = axis === "relative" ? this.origin(source) : 0;
        try {
          return { source, offset, content: await this.grid.fetchSeries(this.params(source, x, offset), signal) };
        } catch (err) {
          if (err.status === 404) return { source, offset, content: null }; // not logged by this source
          throw err;
        }
      }),
    );
  }

  /**
   * Every source in one request grouped by `shared.key` (e.g. the runs of a
   * pipeline grouped by root_id): fewer round trips when the selected runs
   * are most of what the filter matches. Series of unselected runs are dropped.
   */
  async fetchShared(shared, sources, x, axis, signal) {
    const params = this.params({ labels: shared.labels }, x, 0);
    params.group_by = [shared.key, this.grid.groupBy].filter(Boolean).join(",");
    let content = null;
    try {
      content = await this.grid.fetchSeries(params, signal);
    } catch (err) {
      if (err.status !== 404) throw err;
    }
    return sources.map((source) => {
      const offset = axis === "relative" ? this.origin(source) : 0;
      if (!content) return { source, offset, content: null };
      const series = content.series.filter((s) => s.group[shared.key] === source.id);
      return { source, offset, content: { ...content, series } };
    });
  }

  async load() {
    if (this.state === "loading") {
      this.again = true; // one more load when this one ends
      return;
    }
    const generation = ++this.generation;
    this.controller?.abort();
    const controller = (this.controller = new AbortController());
    this.state = "loading";
    this.el.dataset.state = "loading";
    if (!this.plot) this.placeholder("loading…");
    this.lastLoad = performance.now();
    const sources = this.grid.sources();
    // Logged without steps: against time, or, for several runs, the time since each started.
    const fallback = sources.length > 1 ? "relative" : "time";
    // A zoomed chart stays on its axis; a metric known to have no steps goes straight to time.
    let axis = this.range ? this.axis : prefs.axis === "step" && this.noSteps ? fallback : prefs.axis;
    let answers;
    try {
      answers = await this.fetchAll(sources, axis === "step" ? "step" : "time", axis, controller.signal);
      const hasSteps = answers.some((a) => a.content && a.content.series.length);
      if (axis === "step" && !hasSteps && !this.range) {
        this.noSteps = true;
        axis = fallback;
        answers = await this.fetchAll(sources, "time", axis, controller.signal);
      }
    } catch (err) {
      if (generation !== this.generation) return;
      this.state = "error";
      this.el.dataset.state = "error";
      this.placeholder(err.name === "AbortError" ? "cancelled" : String(err.message || err));
      return;
    }
    if (generation !== this.generation) return; // a newer load replaced this one
    this.apply(answers, axis);
    this.state = "loaded";
    this.el.dataset.state = "loaded";
    this.invalidate();
    if (this.again) {
      this.again = false;
      this.load();
    }
  }

  apply(answers, axis) {
    this.ready = true; // drawable from now on, also while a newer load runs
    this.axis = axis;
    this.lines = [];
    this.missing = [];
    const palette = this.grid.palette;
    for (const { source, offset, content } of answers) {
      if (content) this.type = content.metric_type;
      const series = content ? content.series : [];
      if (!series.length) this.missing.push(source);
      for (const s of series) {
        let origin = offset;
        if (axis === "relative" && source.origin == null && !this.grid.origins.has(source.key) && s.x.length) {
          // No run start known: the first point of its first load is the origin.
          this.grid.origins.set(source.key, s.x[0]);
          origin = s.x[0];
        }
        const group = Object.entries(s.group || {})
          .filter(([k]) => k !== "run_id" && k !== "root_id")
          .map(([, v]) => v);
        const key = [source.key, ...group].join(" · ");
        const line = toLine(s, { width: content.width, offset: origin });
        line.key = key;
        line.type = content.metric_type;
        line.source = source;
        line.label = source.name || source.id;
        line.group = group.join(" · ");
        // A colour per run; grouped by function, several runs: a dash pattern per function,
        // one run: a colour per function.
        const byFunction = group.length > 0;
        line.color = palette.get(byFunction && answers.length === 1 ? group.join() : source.key);
        line.dash = byFunction && answers.length > 1 ? palette.dash(group.join()) : undefined;
        this.lines.push(line);
      }
    }
    const widths = this.lines.map((l) => l.width);
    this.width = widths.length ? Math.max(...widths) : null;
    this.el.dataset.axis = axis;
    this.el.dataset.width = this.width == null ? "" : String(this.width);
    this.renderLegend();
    this.renderExports();
  }

  /** Load afresh: the page's sources, axis or grouping changed, or the stream lost events. */
  reload() {
    // What is in flight answers the old question: drop it, and the zoom (its units may change).
    this.generation += 1;
    this.controller?.abort();
    this.state = "idle";
    this.again = false;
    this.noSteps = false;
    this.range = null;
    this.el.classList.remove("zoomed");
    this.stale = true;
    if (this.visible) this.load();
  }

  /** The stream has new points of this metric: fetch the shown range again. */
  refreshLive() {
    if (this.state === "loading") this.again = true;
    else if (this.state !== "loaded") return; // idle or failed: its next load is fresh anyway
    else if (!this.visible) this.state = "idle"; // loads when scrolled back
    else {
      // At most one load a second per chart, however often the run logs.
      const wait = this.lastLoad + LIVE_INTERVAL_MS - performance.now();
      if (wait <= 0) this.load();
      else this.liveTimer ||= setTimeout(() => {
        this.liveTimer = 0;
        this.refreshLive();
      }, wait);
    }
  }

  /**
   * A metric of a stream `buckets` event of the page's run: merged in place
   * when it carries the statistics and is at the width this chart shows (a
   * bucket in the event holds its full aggregate, so the chart then equals a
   * fresh load); false when the chart must load again instead.
   */
  push(update) {
    const line = this.lines[0];
    if (this.state !== "loaded" || this.lines.length !== 1 || this.grid.sources().length !== 1) return false;
    if (this.grid.groupBy || !Array.isArray(update.count) || update.reset) return false;
    if ((this.axis !== "time" && this.axis !== "relative") || update.width_s !== line.width) return false;
    const offset = this.axis === "relative" ? this.origin(line.source) : 0;
    const stats = ["value", "min", "max", "first", "last", "count"];
    update.points.forEach(([t, value], k) => {
      const x = t - offset;
      if (this.range && (x < this.range.lo || x >= this.range.hi)) return; // outside the zoomed range
      // No finite value: the series answers null for a count's sum too (the stream's points say 0).
      const finite = update.min[k] != null;
      const row = [finite ? value : null, update.min[k], update.max[k], update.first[k], update.last[k], update.count[k]];
      const i = floorIndex(line.x, x);
      if (i >= 0 && line.x[i] === x) stats.forEach((key, j) => (line[key][i] = row[j]));
      else {
        line.x.splice(i + 1, 0, x);
        stats.forEach((key, j) => line[key].splice(i + 1, 0, row[j]));
      }
    });
    // More points than the chart asked buckets for: a fresh load would bucket them.
    if (line.x.length > this.buckets()) return false;
    this.invalidate();
    return true;
  }

  zoom(lo, hi) {
    if (!(hi > lo)) return;
    this.range = { lo, hi };
    this.el.classList.add("zoomed");
    this.plot?.setScale("x", { min: lo, max: hi }); // at once, on what is drawn; the answer refines it
    this.load();
  }

  resetZoom() {
    if (!this.range) return;
    this.range = null;
    this.el.classList.remove("zoomed");
    this.load();
  }

  invalidate() {
    this.stale = true;
    if (this.visible) schedule(this);
  }

  renderLegend() {
    const entries = this.lines.map((line) => {
      const entry = el("span", "entry");
      entry.dataset.key = line.key;
      const swatch = el("i", "swatch");
      swatch.style.background = line.color;
      const id = line.source.id ? el("span", "id mono", shortId(line.source.id)) : null;
      if (id) id.title = line.source.id;
      entry.append(swatch, el("span", "label", line.label), ...(id ? [id] : []));
      if (line.group) entry.append(el("span", "group mono", line.group));
      return entry;
    });
    const multi = this.grid.sources().length > 1;
    const notes = this.missing.map((source) => {
      const note = el("span", "entry missing");
      note.append(el("span", "label", source.name || source.id));
      if (source.id) note.append(el("span", "id mono", shortId(source.id)));
      note.append(el("span", "why", this.axis === "step" ? "no steps" : "no points"));
      return note;
    });
    this.legend.replaceChildren(...entries, ...(multi || notes.length ? notes : []));
    this.legend.hidden = !multi && !this.lines.some((l) => l.group) && !notes.length;
  }

  renderExports() {
    const summary = el("summary", null, "⤓");
    summary.title = "Download every raw point of the series, as logged (CSV or Parquet)";
    summary.setAttribute("aria-label", "Download points");
    const menu = el("div", "menu");
    const seen = new Set();
    for (const line of this.lines) {
      if (seen.has(line.source.key)) continue;
      seen.add(line.source.key);
      for (const format of ["csv", "parquet"]) {
        const b = el("button", "ghost", `${line.label}${line.source.id ? ` ${shortId(line.source.id)}` : ""} · ${format.toUpperCase()}`);
        b.type = "button";
        b.dataset.format = format;
        b.addEventListener("click", () => {
          const params = { name: this.name, labels: line.source.labels, x: this.axis === "step" ? "step" : "time", format };
          if (this.grid.groupBy) params.group_by = this.grid.groupBy;
          const file = `${this.name}-${shortId(line.source.id || line.source.key)}.${format}`.replace(/[^\w.-]+/g, "_");
          this.grid.exportPoints(params, file).catch((err) => alert(`Download failed: ${err.message}`));
          this.exports.open = false;
        });
        menu.append(b);
      }
    }
    this.exports.replaceChildren(summary, menu);
    this.exports.hidden = !seen.size;
  }

  render() {
    if (!this.visible || !this.ready || !uPlot) return;
    const type = this.type || "GAUGE";
    this.kind.textContent = type === "COUNT" && prefs.cumulative ? "cumulative sum" : KIND[type] || type;
    this.kind.className = `kind ${type}`;
    this.resolution.textContent = fmtWidth(this.width, this.axis);
    const points = this.lines.reduce((n, l) => n + l.x.length, 0);
    if (!points) {
      this.placeholder(this.missing.length && this.axis === "step" ? "no points at any step" : "no points");
      this.stale = false;
      return;
    }
    const finite = this.lines.some((l) => l.value.some((v) => v != null));
    const shaped = align(this.lines, {
      cumulativeCounts: prefs.cumulative,
      smoothing: prefs.smoothing,
      log: prefs.log,
      partialEdges: true,
    });
    this.shaped = shaped;
    const data = [shaped.xs];
    shaped.columns.forEach((c) => {
      data.push(c.value);
      if (c.raw) data.push(c.raw);
      if (c.edge) data.push(c.edge);
      data.push(c.band ? c.max : []);
      data.push(c.band ? c.min : []);
    });
    const key = [this.axis, prefs.log, prefs.smoothing > 0, prefs.cumulative, ...this.lines.map((l) => `${l.key}:${l.color}:${l.dash}:${l.x.length <= 60}`), ...shaped.columns.map((c) => `${!!c.edge}${!!c.raw}`)].join("|");
    if (!this.plot || key !== this.plotKey) this.create(data, key);
    else this.plot.setData(data);
    // The x range is ours: uPlot would stretch one point's x over 86,400 ms-units (years).
    const [lo, hi] = this.range ? [this.range.lo, this.range.hi] : padRange(shaped.xs[0], shaped.xs[shaped.xs.length - 1], this.axis);
    this.plot.setScale("x", { min: lo, max: hi });
    // What the chart shows, on the card: points drawn, and the first line's last point.
    const first = this.lines[0];
    this.el.dataset.points = String(points);
    this.el.dataset.lastX = String(first.x.at(-1));
    this.el.dataset.lastY = String(first.value.at(-1));
    this.note?.remove();
    this.note = null;
    if (!finite) {
      const total = this.lines.reduce((n, l) => n + l.count.reduce((a, b) => a + b, 0), 0);
      this.note = el("div", "note", `${fmtCount(total)} points, none finite (NaN or ±∞): nothing to draw`);
      this.body.append(this.note);
    }
    this.stale = false;
  }

  create(data, key) {
    this.destroyPlot();
    this.body.replaceChildren();
    this.plotKey = key;
    const axis = this.axis;
    const series = [{}];
    const bands = [];
    this.shaped.columns.forEach((c, i) => {
      const line = this.lines[i];
      const few = line.x.length <= 60;
      const smooth = Boolean(c.raw);
      series.push({
        label: line.key,
        stroke: line.color,
        dash: line.dash,
        width: 1.75,
        points: { show: few && !smooth, size: 5, fill: line.color },
      });
      if (c.raw) series.push({ label: `${line.key} raw`, stroke: alpha(line.color, 0.3), width: 1, points: { show: false } });
      if (c.edge) series.push({ label: `${line.key} partial`, stroke: line.color, width: 1.5, dash: [4, 4], points: { show: false } });
      const maxIdx = series.length;
      series.push({ label: `${line.key} max`, stroke: "transparent", width: 0, points: { show: few && line.x.length <= 2, size: 7, stroke: line.color, fill: alpha(line.color, 0.35) } });
      series.push({ label: `${line.key} min`, stroke: "transparent", width: 0, points: { show: few && line.x.length <= 2, size: 7, stroke: line.color, fill: alpha(line.color, 0.35) } });
      if (c.band) bands.push({ series: [maxIdx, maxIdx + 1], fill: alpha(line.color, this.lines.length > 3 ? 0.1 : 0.18) });
    });
    const opts = {
      width: Math.max(200, this.body.clientWidth),
      height: HEIGHT,
      scales: {
        x: { time: axis === "time", auto: false },
        y: { distr: prefs.log ? 3 : 1 },
      },
      series,
      bands,
      axes: [
        {
          label: AXIS_TITLE[axis],
          labelSize: 18,
          labelFont: "12px system-ui, sans-serif",
          ...(axis === "step" ? { incrs: STEP_INCRS } : {}),
          ...(axis === "time" ? {} : { values: (u, splits) => splits.map((v) => (axis === "relative" ? fmtDuration(v) : fmtTick(v))) }),
        },
        {
          label: this.type === "COUNT" ? (prefs.cumulative ? `${this.name}, running total` : `${this.name} per bucket`) : this.name,
          labelSize: 18,
          labelFont: "12px system-ui, sans-serif",
          size: 60,
          values: (u, splits) => splits.map(fmtTick),
        },
      ],
      legend: { show: false },
      // Zoom and reset are ours (they ask the server again); uPlot's double-click is off.
      cursor: { drag: { x: true, y: false, setScale: false }, points: { size: 6 }, bind: { dblclick: () => null } },
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width < 3) return;
            const lo = u.posToVal(u.select.left, "x");
            const hi = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
            this.zoom(lo, hi);
          },
        ],
        setCursor: [(u) => this.hover(u)],
      },
    };
    this.plot = new uPlot(opts, data, this.body);
    this.plot.over.addEventListener("dblclick", () => this.resetZoom());
    this.plot.over.addEventListener("mouseleave", () => {
      this.tooltip.hidden = true;
    });
    this.el.append(this.tooltip);
  }

  hover(u) {
    showTooltip(this, u);
  }

  resize() {
    if (this.plot) this.plot.setSize({ width: Math.max(200, this.body.clientWidth), height: HEIGHT });
  }

  destroyPlot() {
    if (this.plot) {
      this.plot.destroy();
      this.plot = null;
    }
  }

  destroy() {
    clearTimeout(this.liveTimer);
    this.generation += 1;
    this.controller?.abort();
    visibility.unobserve(this.el);
    sizes.unobserve(this.body);
    dirty.delete(this);
    this.destroyPlot();
    this.el.remove();
  }
}
