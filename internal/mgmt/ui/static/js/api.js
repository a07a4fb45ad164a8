// Calls to the node's management HTTP API with the signed-in user's Basic
// credentials. The credentials live in sessionStorage: they last as long
// as the browser tab and are never sent anywhere but this node.

const AUTH_KEY = 'warren.auth';
const USER_KEY = 'warren.user';

/** An answer of the API other than 2xx, with its error and reason. */
export class ApiError extends Error {
  constructor(status, kind, reason) {
    super(reason || kind || `HTTP ${status}`);
    this.status = status;
    this.kind = kind;
    this.reason = reason;
  }
}

/** Basic credentials for user and password, UTF-8 then base64. */
export function basicAuth(user, pass) {
  const bytes = new TextEncoder().encode(`${user}:${pass}`);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** The stored session: {auth, user} or null when signed out. */
export function session() {
  const auth = sessionStorage.getItem(AUTH_KEY);
  return auth ? { auth, user: sessionStorage.getItem(USER_KEY) || '' } : null;
}

export function saveSession(auth, user) {
  sessionStorage.setItem(AUTH_KEY, auth);
  sessionStorage.setItem(USER_KEY, user);
}

export function clearSession() {
  sessionStorage.removeItem(AUTH_KEY);
  sessionStorage.removeItem(USER_KEY);
}

/**
 * Builds an API path from segments, escaping each one: vhost "/" becomes
 * "%2F" as the API expects.
 */
export function apiPath(...segments) {
  return '/' + segments.map((s) => encodeURIComponent(s)).join('/');
}

/**
 * Makes one request and returns the decoded JSON answer (null when the
 * answer has no body). Throws ApiError when the node refuses.
 * options.auth overrides the stored credentials; options.headers adds
 * headers.
 */
export async function call(method, path, body, options = {}) {
  const auth = options.auth ?? session()?.auth;
  const headers = { Accept: 'application/json', ...options.headers };
  if (auth) headers.Authorization = `Basic ${auth}`;
  const init = { method, headers, cache: 'no-store', credentials: 'omit' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(`api${path}`, init);
  } catch (err) {
    throw new ApiError(0, 'unreachable', `The node did not answer (${err.message}).`);
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!resp.ok) {
    throw new ApiError(resp.status, data?.error ?? resp.statusText, data?.reason ?? text.trim());
  }
  return data;
}

export const get = (path) => call('GET', path);
export const put = (path, body) => call('PUT', path, body);
export const post = (path, body) => call('POST', path, body);
export const del = (path, headers) => call('DELETE', path, undefined, { headers });

/** A one-line description of a failure for the page. */
export function describeError(err) {
  if (err instanceof ApiError) {
    const reason = err.reason || err.kind;
    const kind = err.kind && err.kind !== reason ? `${err.kind}, ` : '';
    return err.status ? `${reason} (${kind}HTTP ${err.status})` : reason;
  }
  return err?.message ?? String(err);
}
