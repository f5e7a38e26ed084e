// The HTTP API client: the bearer token (kept in sessionStorage, so it lasts as long as the
// tab), JSON requests with the API's error shape, and the chat's event stream.

const KEY = "order-copilot.token";

export const session = {
  get token() {
    return sessionStorage.getItem(KEY);
  },
  set(token) {
    sessionStorage.setItem(KEY, token);
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
};

/** An error answer of the API: `{"error": {"code", "message", "request_id"}}`. */
export class ApiError extends Error {
  constructor(status, code, message, requestId) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

/** Fired when the token stops working (revoked, or the server's database was reset). */
export const onUnauthorized = new EventTarget();

async function failure(r) {
  let body = null;
  try {
    body = await r.json();
  } catch {
    /* not JSON */
  }
  const e = body && body.error;
  let message = e ? e.message : `${r.status} ${r.statusText}`;
  // A limit (requests a minute, turns at once, model tokens a day): say so plainly, with
  // the wait the server asked for.
  const wait = Number(r.headers.get("retry-after"));
  if (r.status === 429) message = `Slowed down: ${message}${wait > 0 ? ` (try again in ${wait} s)` : ""}`;
  const err = new ApiError(r.status, e ? e.code : "http", message, e ? e.request_id : r.headers.get("x-request-id"));
  err.retryAfter = wait > 0 ? wait : null;
  if (r.status === 401) onUnauthorized.dispatchEvent(new Event("unauthorized"));
  return err;
}

function headers(token, json) {
  const h = { Authorization: `Bearer ${token || session.token || ""}` };
  if (json) h["Content-Type"] = "application/json";
  return h;
}

/** Query string from an object, leaving out empty values. */
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === "") continue;
    u.set(k, Array.isArray(v) ? v.join(",") : String(v));
  }
  const t = u.toString();
  return t ? `?${t}` : "";
}

/** GET a JSON resource. */
export async function get(path, params, { token, signal } = {}) {
  const r = await fetch(`/api${path}${qs(params)}`, { headers: headers(token), signal });
  if (!r.ok) throw await failure(r);
  return r.json();
}

/** POST JSON, get JSON. */
export async function post(path, body) {
  const r = await fetch(`/api${path}`, {
    method: "POST",
    headers: headers(null, true),
    body: JSON.stringify(body || {}),
  });
  if (!r.ok) throw await failure(r);
  return r.json();
}

/**
 * POST /api/chat and call `onEvent(type, data)` for each server-sent event as it arrives.
 * It is a POST, so EventSource can't be used: the body is read as a stream and split into
 * events (`event: <type>\ndata: <json>\n\n`). Resolves when the stream ends.
 */
export async function chat(body, onEvent, signal) {
  const r = await fetch("/api/chat", {
    method: "POST",
    headers: { ...headers(null, true), Accept: "text/event-stream" },
    body: JSON.stringify(body),
    signal,
  });
  if (!r.ok) throw await failure(r);
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value.replaceAll("\r\n", "\n");
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      dispatch(block, onEvent);
    }
  }
  if (buf.trim()) dispatch(buf, onEvent);
}

function dispatch(block, onEvent) {
  let type = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue; // comment / keep-alive
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return;
  let parsed;
  try {
    parsed = JSON.parse(data.join("\n"));
  } catch {
    parsed = { message: data.join("\n") };
  }
  onEvent(type, parsed);
}
