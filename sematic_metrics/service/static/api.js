// The JSON API as the pages use it: one fetch helper that sends the API key
// kept in this browser and turns error answers into ApiError.

export const KEY_STORE = "sematic-metrics.api-key";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const apiKey = () => localStorage.getItem(KEY_STORE) || "";
export const enc = encodeURIComponent;

let onAuthError = () => {};
/** Called with the server's message when it answers 401 or 403. */
export function setAuthHandler(handler) {
  onAuthError = handler;
}

/** The URL of an API path with query parameters; objects are sent as JSON. */
export function apiUrl(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null) url.searchParams.set(k, typeof v === "string" ? v : JSON.stringify(v));
  }
  return url;
}

function headers(accept) {
  const h = { Accept: accept };
  if (apiKey()) h["X-API-KEY"] = apiKey();
  return h;
}

/** GET an API path; resolves to the answer's `content`. */
export async function api(path, params = {}, { signal } = {}) {
  const response = await fetch(apiUrl(path, params), { headers: headers("application/json"), signal });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (response.status === 401 || response.status === 403) onAuthError(body?.error);
  if (!response.ok) throw new ApiError(response.status, body?.error || `${response.status} ${response.statusText}`);
  return body.content;
}

/** Save what an API path answers as a file (with the API key, which a plain link cannot send). */
export async function download(path, params, filename) {
  const response = await fetch(apiUrl(path, params), { headers: headers("*/*") });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).error || message;
    } catch {
      // not JSON: keep the status line
    }
    if (response.status === 401 || response.status === 403) onAuthError(message);
    throw new ApiError(response.status, message);
  }
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
