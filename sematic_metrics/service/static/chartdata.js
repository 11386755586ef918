// Pure data shaping for the charts: GET /api/v1/series answers -> the
// aligned columns uPlot draws. No DOM here.

/** TensorBoard's smoothing: debiased exponential moving average; gaps kept. */
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

/** Running sum of bucket sums (buckets without a finite value add nothing). */
export function cumulative(ys) {
  const out = new Array(ys.length);
  let total = 0;
  for (let i = 0; i < ys.length; i++) {
    if (ys[i] != null && Number.isFinite(ys[i])) total += ys[i];
    out[i] = total;
  }
  return out;
}

/** Index of the last element of sorted `xs` that is <= x (-1 if none). */
export function floorIndex(xs, x) {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/**
 * One line of a chart from one series of the answer: x in display units
 * (relative time subtracts the run's origin).
 */
export function toLine(series, { width, offset = 0 }) {
  const x = offset ? series.x.map((v) => v - offset) : series.x.slice();
  return {
    x,
    value: series.value,
    min: series.min,
    max: series.max,
    first: series.first,
    last: series.last,
    count: series.count,
    width,
  };
}

/**
 * Columns for uPlot from several lines with different x values: the sorted
 * union of x, and per line its columns placed at their x. Positions a line
 * has no bucket at are `undefined` (uPlot joins over them); a bucket without
 * a finite value is `null` (uPlot leaves a gap).
 *
 * Per line: `value` (what the line draws: smoothed, cumulative, log-safe),
 * `edge` (the first and last segment of a bucketed count, drawn dashed: a
 * partial bucket at either end holds less than a full width's sum and must
 * not read as a collapse), `min` and `max` (the band, for gauges).
 */
export function align(lines, { cumulativeCounts, smoothing, log, partialEdges }) {
  const set = new Set();
  for (const line of lines) for (const v of line.x) set.add(v);
  const xs = Float64Array.from(set).sort();
  const where = new Map();
  xs.forEach((v, i) => where.set(v, i));
  const out = [];
  for (const line of lines) {
    const n = line.x.length;
    const pos = line.x.map((v) => where.get(v));
    const counts = line.type === "COUNT";
    let ys = line.value;
    if (counts && cumulativeCounts) ys = cumulative(ys);
    if (log) ys = ys.map((v) => (v != null && v > 0 ? v : null));
    const drawn = ema(ys, smoothing);
    const value = new Array(xs.length);
    const min = new Array(xs.length);
    const max = new Array(xs.length);
    const edge = new Array(xs.length);
    const raw = smoothing > 0 ? new Array(xs.length) : null;
    // The band brackets an average; a count's min and max (single values) do not bracket its
    // sum, so counts show them on hover only.
    const band = !counts;
    const dashEdges = partialEdges && counts && !cumulativeCounts && line.width > 0 && n >= 2;
    for (let i = 0; i < n; i++) {
      const p = pos[i];
      value[p] = drawn[i];
      if (raw) raw[p] = ys[i];
      if (band) {
        min[p] = log && !(line.min[i] > 0) ? null : line.min[i];
        max[p] = log && !(line.max[i] > 0) ? null : line.max[i];
      }
      edge[p] = null;
    }
    if (dashEdges) {
      // The solid line runs from the second to the second-to-last bucket; the
      // edge buckets are dashed, at the rate of a full bucket when they hold
      // fewer points than the typical one (the tooltip gives their real sum).
      const typical = median(line.count.slice(1, n - 1)) || Math.max(line.count[0], line.count[n - 1]);
      const scaled = (i) => (drawn[i] != null && line.count[i] < typical ? (drawn[i] * typical) / line.count[i] : drawn[i]);
      edge[pos[0]] = scaled(0);
      edge[pos[1]] = drawn[1];
      edge[pos[n - 2]] = drawn[n - 2];
      edge[pos[n - 1]] = scaled(n - 1);
      if (n === 2) {
        edge[pos[0]] = scaled(0);
        edge[pos[1]] = scaled(1);
      }
      value[pos[0]] = undefined;
      value[pos[n - 1]] = undefined;
    }
    out.push({ value, raw, min, max, edge: dashEdges ? edge : null, band, positions: pos });
  }
  return { xs: Array.from(xs), columns: out };
}

function median(values) {
  if (!values.length) return 0;
  const sorted = values.slice().sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}

/** An x range with room around it when every point sits at one x. */
export function padRange(min, max, axis) {
  if (min == null || max == null) return axis === "step" ? [0, 10] : [0, 60];
  if (min !== max) return [min, max];
  if (axis === "step") return [min - 1, max + 1];
  return [min - 30, max + 30]; // seconds
}
