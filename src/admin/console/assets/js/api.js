// The management API, called with the signed-in key. The key lives in this tab's
// sessionStorage only: it goes out in the Authorization header, never in a URL, and is gone
// when the tab closes or the user signs out.

const STORAGE_KEY = "memgate.console.credentials";

/** An error answer of the API: its status and the `{message, type, code, param}` it gave. */
export class ApiFailure extends Error {
  constructor(status, error) {
    super(error.message || `the server answered ${status}`);
    this.status = status;
    this.code = error.code || "";
    this.param = error.param || null;
  }
}

/** `{key, org, role}` of the signed-in key, or null. */
export function credentials() {
  try {
    return JSON.parse(sessionStorage.getItem(STORAGE_KEY));
  } catch {
    return null;
  }
}

export function isAdmin() {
  return credentials()?.role === "admin";
}

export function forget() {
  sessionStorage.removeItem(STORAGE_KEY);
}

/** Checks `key` with the server and keeps it for this tab; throws ApiFailure when refused. */
export async function signIn(key) {
  const caller = await call("GET", "/memory/whoami", undefined, key);
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ key, org: caller.org, role: caller.role }));
  return caller;
}

/** Called when the server no longer knows the key, so the page can ask for another. */
let onSignedOut = () => {};
export function whenSignedOut(handler) {
  onSignedOut = handler;
}

/** `query` is an object of query parameters; undefined values are left out. */
export function path(base, query = {}) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(name, value);
  }
  const text = params.toString();
  return text ? `${base}?${text}` : base;
}

/** The path segment of a memory id (ids may hold `:` and `@`). */
export function segment(id) {
  return encodeURIComponent(id);
}

export async function call(method, url, body, key = credentials()?.key) {
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new ApiFailure(0, { message: "memgate's admin listener cannot be reached", code: "unreachable" });
  }
  const text = await response.text();
  let answer = null;
  try {
    answer = text ? JSON.parse(text) : null;
  } catch {
    answer = null;
  }
  if (!response.ok) {
    const failure = new ApiFailure(response.status, answer?.error || {});
    if (response.status === 401 && key === credentials()?.key) {
      forget();
      onSignedOut(failure);
    }
    throw failure;
  }
  return answer;
}

export const get = (url) => call("GET", url);
export const post = (url, body) => call("POST", url, body);
export const patch = (url, body) => call("PATCH", url, body);
export const del = (url) => call("DELETE", url);
