// Formatting with the platform's Intl: numbers, durations, times, "3 min ago".

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const percent = new Intl.NumberFormat(undefined, { style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 });
const precise = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 6 });
const short = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 4 });
const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumSignificantDigits: 3 });
const scientific = new Intl.NumberFormat(undefined, { notation: "scientific", maximumSignificantDigits: 3 });
const scientificLong = new Intl.NumberFormat(undefined, { notation: "scientific", maximumSignificantDigits: 6 });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const whole = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const tenth = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });

export const fmtCount = (n) => (n == null ? "—" : integer.format(n));
export const fmtPct = (rate) => (rate == null ? "—" : percent.format(rate));

/** A measured value: six significant digits, scientific when very small or large. */
export function fmtValue(v) {
  if (v == null) return "—";
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "+∞" : "−∞";
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-4 || a >= 1e9) ? scientificLong.format(v) : precise.format(v);
}

/** An axis tick: short. */
export function fmtTick(v) {
  if (v == null) return "";
  const a = Math.abs(v);
  if (a !== 0 && a < 1e-3) return scientific.format(v);
  if (a >= 1e5) return compact.format(v);
  return short.format(v);
}

/** A duration in seconds: "12.3 s", "4 min 5 s", "2 h 10 min", "3 d 4 h". */
export function fmtDuration(s) {
  if (s == null || !Number.isFinite(s)) return "—";
  const sign = s < 0 ? "−" : "";
  const a = Math.abs(s);
  if (a > 0 && a < 1) return `${sign}${whole.format(a * 1000)} ms`;
  if (a < 60) return `${sign}${tenth.format(a)} s`;
  const total = Math.round(a);
  if (total < 3600) return `${sign}${Math.floor(total / 60)} min ${total % 60} s`;
  const m = Math.floor(total / 60);
  if (m < 1440) return `${sign}${Math.floor(m / 60)} h ${m % 60} min`;
  return `${sign}${whole.format(Math.floor(m / 1440))} d ${Math.floor(m / 60) % 24} h`;
}

/** Epoch seconds or an RFC 3339 string -> milliseconds (null when absent). */
export function toMs(t) {
  if (t == null || t === "") return null;
  if (typeof t === "number") return t * 1000;
  const parsed = Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(t) ? t : `${t}Z`);
  return Number.isNaN(parsed) ? null : parsed;
}

export function fmtTime(t) {
  const m = toMs(t);
  return m == null ? "—" : dateTime.format(m);
}

/** "3 minutes ago", in the browser's language. */
export function fmtAgo(t) {
  const m = toMs(t);
  if (m == null) return "";
  const s = (m - Date.now()) / 1000;
  const a = Math.abs(s);
  if (a < 60) return relative.format(Math.round(s), "second");
  if (a < 3600) return relative.format(Math.round(s / 60), "minute");
  if (a < 86400) return relative.format(Math.round(s / 3600), "hour");
  return relative.format(Math.round(s / 86400), "day");
}

/** The first characters of a run id, enough to tell runs apart. */
export const shortId = (id) => String(id ?? "").slice(0, 8);

/** A dotted path or name that may wrap after a dot, a slash or an underscore, never mid-word. */
export const wrapName = (text) =>
  String(text)
    .split(/(?<=[./_:])/)
    .flatMap((part, i) => (i ? [document.createElement("wbr"), part] : [part]));
