// Chart settings shared by every chart and page, kept in this browser.

const PREFS_KEY = "sematic-metrics.chart-prefs";
export const AXES = { step: "Step", time: "Time", relative: "Relative time" };

/** The settings, read once; `save()` writes them back. */
export const prefs = (() => {
  let saved = {};
  try {
    saved = JSON.parse(localStorage.getItem(PREFS_KEY) || "{}");
  } catch {
    saved = {};
  }
  return {
    axis: saved.axis in AXES ? saved.axis : "step",
    smoothing: Math.min(0.99, Math.max(0, Number(saved.smoothing) || 0)),
    log: saved.log === true,
    cumulative: saved.cumulative === true,
    pins: new Set(Array.isArray(saved.pins) ? saved.pins.map(String) : []),
    save() {
      const { axis, smoothing, log, cumulative } = this;
      localStorage.setItem(PREFS_KEY, JSON.stringify({ axis, smoothing, log, cumulative, pins: [...this.pins] }));
    },
  };
})();
