// Words for a chart's x values and buckets, and its tooltip.

import { floorIndex } from "./chartdata.js";
import { fmtCount, fmtDuration, fmtValue } from "./format.js";

const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
};
const localZone = (() => {
  const part = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" })
    .formatToParts(new Date())
    .find((p) => p.type === "timeZoneName");
  return part ? part.value : "local";
})();
export const AXIS_TITLE = { step: "step", time: `time (${localZone})`, relative: "time since run start" };
const timeOfDay = new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "medium" });

function fmtX(v, axis) {
  if (axis === "time") return timeOfDay.format(v * 1000);
  if (axis === "relative") return fmtDuration(v);
  return fmtCount(v);
}

/** A bucket's x range in words: "step 120", "steps 100–109", "12:00:00 – 12:00:10". */
function fmtBucket(x, width, axis) {
  if (!(width > 0)) return axis === "step" ? `step ${fmtCount(x)}` : fmtX(x, axis);
  if (axis === "step") return width === 1 ? `step ${fmtCount(x)}` : `steps ${fmtCount(x)}–${fmtCount(x + width - 1)}`;
  return `${fmtX(x, axis)} – ${fmtX(x + width, axis)}`;
}

export function fmtWidth(width, axis) {
  if (width == null) return "";
  if (width === 0) return "raw points";
  return axis === "step" ? `${fmtCount(width)} steps per bucket` : `${fmtDuration(width)} per bucket`;
}

/** A bucketed count's first or last bucket holding fewer points than the typical bucket. */
export function partial(line, i) {
  const n = line.x.length;
  if (line.type !== "COUNT" || !(line.width > 0) || n < 3 || (i !== 0 && i !== n - 1)) return false;
  const inner = line.count.slice(1, n - 1).sort((a, b) => a - b);
  return line.count[i] < inner[inner.length >> 1];
}

/** The tooltip of `chart`: per line, the bucket under the cursor with its statistics. */
export function showTooltip(chart, u) {
  const idx = u.cursor.idx;
  if (idx == null || u.cursor.left < 0) {
    chart.tooltip.hidden = true;
    return;
  }
  const x = u.posToVal(u.cursor.left, "x");
  const rows = [];
  for (const line of chart.lines) {
    if (!line.x.length) continue;
    // The bucket holding the cursor; for raw points the nearest one.
    let i = Math.max(0, floorIndex(line.x, x));
    if (!(line.width > 0) && i + 1 < line.x.length && Math.abs(line.x[i + 1] - x) < Math.abs(x - line.x[i])) i += 1;
    rows.push([line, i]);
  }
  if (!rows.length) {
    chart.tooltip.hidden = true;
    return;
  }
  const ranges = rows.map(([line, i]) => fmtBucket(line.x[i], line.width, chart.axis) + (partial(line, i) ? " (partial)" : ""));
  const shared = ranges.every((r) => r === ranges[0]);
  const table = el("table");
  const head = el("tr");
  const cols = ["", ...(shared ? [] : ["bucket"]), chart.type === "COUNT" ? "sum" : "avg", "min", "max", "last", "count"];
  for (const t of cols) head.append(el("th", null, t));
  table.append(head);
  rows.slice(0, 12).forEach(([line, i], r) => {
    const tr = el("tr");
    const name = el("td", "who");
    const dot = el("i", "swatch");
    dot.style.background = line.color;
    name.append(dot, `${line.label}${line.group ? ` · ${line.group}` : ""}`);
    tr.append(name);
    if (!shared) tr.append(el("td", "range", ranges[r]));
    for (const v of [line.value[i], line.min[i], line.max[i], line.last[i]]) tr.append(el("td", "num", fmtValue(v)));
    tr.append(el("td", "num", fmtCount(line.count[i])));
    table.append(tr);
  });
  chart.tooltip.replaceChildren(...(shared ? [el("div", "range", ranges[0])] : []), table);
  chart.tooltip.hidden = false;
  // Beside the cursor, on the side with more room; it may overlap the next card.
  const over = u.over.getBoundingClientRect();
  const card = chart.el.getBoundingClientRect();
  const left = over.left - card.left + u.cursor.left;
  const right = left > card.width / 2;
  chart.tooltip.style.left = right ? "" : `${left + 16}px`;
  chart.tooltip.style.right = right ? `${card.width - left + 16}px` : "";
  chart.tooltip.style.top = `${over.top - card.top + 4}px`;
}
