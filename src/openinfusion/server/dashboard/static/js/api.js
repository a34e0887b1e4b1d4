// The server's REST API with the bearer token. The token lives in sessionStorage (gone when
// the tab closes) and only ever travels in the Authorization header, never in a URL.

const TOKEN_KEY = "openinfusion.token";
const USER_KEY = "openinfusion.user";
const EXPIRES_KEY = "openinfusion.expires";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
  /** The endpoint is missing on this server (older or partial build). */
  get notAvailable() {
    return this.status === 404 || this.status === 405 || this.status === 501;
  }
}

const listeners = new Set();
/** Called with no argument when the session ends (logout, expiry, a 401 from the server). */
export function onSessionEnd(fn) {
  listeners.add(fn);
}

export function session() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const expires = Number(sessionStorage.getItem(EXPIRES_KEY) || 0);
  if (!token || (expires && Date.now() >= expires)) return null;
  return { token, user: sessionStorage.getItem(USER_KEY) || "" };
}

export function endSession() {
  const had = sessionStorage.getItem(TOKEN_KEY) !== null;
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(USER_KEY);
  sessionStorage.removeItem(EXPIRES_KEY);
  if (had) for (const fn of listeners) fn();
}

/** The server's own words for a refusal: {"error": {"message"}} (this server's shape), or
 * FastAPI's {"detail"}. */
function detailText(body, fallback) {
  const error = body && body.error;
  if (error && typeof error.message === "string") return error.message;
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => (d && d.msg) || JSON.stringify(d)).join("; ");
  return fallback;
}

async function readJson(response) {
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : null;
}

export async function login(username, password) {
  const form = new URLSearchParams({ username, password });
  const response = await fetch("/api/auth/token", {
    method: "POST",
    body: form,
    headers: { Accept: "application/json" },
    credentials: "same-origin",
  });
  const body = await readJson(response).catch(() => null);
  if (!response.ok) {
    throw new ApiError(response.status, detailText(body, `login refused (HTTP ${response.status})`));
  }
  if (!body || typeof body.access_token !== "string") throw new ApiError(502, "the server sent no token");
  sessionStorage.setItem(TOKEN_KEY, body.access_token);
  sessionStorage.setItem(USER_KEY, username);
  const lifetime = Number(body.expires_in);
  if (Number.isFinite(lifetime) && lifetime > 0) {
    sessionStorage.setItem(EXPIRES_KEY, String(Date.now() + lifetime * 1000));
  }
}

/** Revoke the token on the server (best effort), then forget it here. */
export async function logout() {
  const current = session();
  if (current) {
    await fetch("/api/auth/logout", {
      method: "POST",
      headers: { Authorization: `Bearer ${current.token}` },
      credentials: "same-origin",
    }).catch(() => null);
  }
  endSession();
}

/** GET or POST a JSON endpoint; throws ApiError (status 0 when the server is unreachable). */
export async function request(path, { method = "GET", json, signal } = {}) {
  const current = session();
  if (!current) {
    endSession();
    throw new ApiError(401, "not logged in");
  }
  const headers = { Accept: "application/json", Authorization: `Bearer ${current.token}` };
  const init = { method, headers, signal, credentials: "same-origin" };
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError(0, "server unreachable");
  }
  const body = await readJson(response).catch(() => null);
  if (response.status === 401) {
    endSession();
    throw new ApiError(401, detailText(body, "session expired"));
  }
  if (!response.ok) throw new ApiError(response.status, detailText(body, `HTTP ${response.status}`));
  return body;
}

/**
 * Like request(), but resolves to {available: false, reason} when the server lacks the
 * endpoint (reason "missing") or the user's role may not use it (reason "forbidden").
 */
export async function optional(path, options) {
  try {
    return { available: true, data: await request(path, options), reason: null };
  } catch (err) {
    if (err instanceof ApiError && err.notAvailable) return { available: false, data: null, reason: "missing" };
    if (err instanceof ApiError && err.status === 403) return { available: false, data: null, reason: "forbidden" };
    throw err;
  }
}

/** A list from a response that is either a list or {items: [...]} / {<key>: [...]}. */
export function listOf(body, key) {
  if (Array.isArray(body)) return body;
  if (body && Array.isArray(body.items)) return body.items;
  if (body && key && Array.isArray(body[key])) return body[key];
  return [];
}
