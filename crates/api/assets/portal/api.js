// Talks to the server: the session exchange, /portal/api/*, and the public GraphQL API
// with the session as a Bearer token. Every rule stays on the server; this file only
// carries requests and turns answers into values or errors.

const KEY = 'hookrelay.portal.session';
let memoryToken = null; // when sessionStorage is unavailable (some embedded contexts)
let endedHandler = () => {};

export class ApiError extends Error {
  constructor(message, { status = 0, code = null, classification = null, extensions = null, path = null } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.classification = classification;
    this.extensions = extensions;
    this.path = path;
  }

  get isAccessDenied() {
    return this.classification === 'AccessDeniedError' || this.status === 403;
  }

  get isValidation() {
    return this.classification === 'ValidationError';
  }
}

export class SessionEnded extends Error {
  constructor(message = 'Your session has ended.') {
    super(message);
    this.name = 'SessionEnded';
  }
}

export function onSessionEnded(fn) {
  endedHandler = fn;
}

export function getToken() {
  try {
    return sessionStorage.getItem(KEY) || memoryToken;
  } catch {
    return memoryToken;
  }
}

export function setToken(token) {
  memoryToken = token;
  try {
    if (token) sessionStorage.setItem(KEY, token);
    else sessionStorage.removeItem(KEY);
  } catch {
    // storage refused: the token lives in memory for this page only
  }
}

function ended(message) {
  setToken(null);
  const err = new SessionEnded(message);
  endedHandler(err);
  return err;
}

async function readJson(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { error: { code: 'BadResponse', message: text.slice(0, 300) } };
  }
}

function authHeaders(extra = {}) {
  const token = getToken();
  return token ? { Authorization: `Bearer ${token}`, ...extra } : { ...extra };
}

/** POST /portal/api/session {link}: the one-time link becomes a session. */
export async function exchangeLink(secret) {
  const response = await fetch('/portal/api/session', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ link: secret }),
    credentials: 'omit',
  });
  const body = await readJson(response);
  if (response.status === 201 || response.status === 200) {
    setToken(body.session);
    return body;
  }
  const err = body && body.error ? body.error : {};
  throw new ApiError(err.message || `The link was refused (HTTP ${response.status})`, {
    status: response.status,
    code: err.code || null,
  });
}

/** GET /portal/api/me. */
export async function me() {
  return portalGet('/portal/api/me');
}

export async function consoleData() {
  return portalGet('/portal/api/console');
}

async function portalGet(path) {
  if (!getToken()) throw ended('There is no session in this tab.');
  let response;
  try {
    response = await fetch(path, { headers: authHeaders(), credentials: 'omit' });
  } catch (e) {
    throw new ApiError(`The server did not answer (${e.message})`, { status: 0 });
  }
  const body = await readJson(response);
  if (response.status === 401) throw ended(body?.error?.message);
  if (!response.ok) {
    const err = body && body.error ? body.error : {};
    throw new ApiError(err.message || `HTTP ${response.status}`, { status: response.status, code: err.code || null });
  }
  return body;
}

export async function logout() {
  const token = getToken();
  if (token) {
    try {
      await fetch('/portal/api/logout', { method: 'POST', headers: authHeaders(), credentials: 'omit' });
    } catch {
      // the session is dropped here either way
    }
  }
  setToken(null);
}

export function graphqlPath(store) {
  return `/stores/${encodeURIComponent(store)}/graphql`;
}

export function graphqlUrl(store) {
  return `${location.origin}${graphqlPath(store)}`;
}

function toError(e, status) {
  const ext = e.extensions || {};
  return new ApiError(e.message || 'The request failed', {
    status,
    code: ext.code || null,
    classification: ext.classification || null,
    extensions: ext,
    path: e.path || null,
  });
}

/**
 * One GraphQL request on `store`. Answers `{data, errors}` without throwing on GraphQL
 * errors (for requests whose parts may fail one by one).
 */
export async function gqlRaw(store, query, variables = {}) {
  if (!getToken()) throw ended('There is no session in this tab.');
  let response;
  try {
    response = await fetch(graphqlPath(store), {
      method: 'POST',
      headers: authHeaders({ 'Content-Type': 'application/json' }),
      body: JSON.stringify({ query, variables }),
      credentials: 'omit',
    });
  } catch (e) {
    throw new ApiError(`The server did not answer (${e.message})`, { status: 0 });
  }
  const body = await readJson(response);
  if (response.status === 401) throw ended(body?.errors?.[0]?.message || body?.error?.message);
  if (!body || (typeof body === 'object' && !('data' in body) && !('errors' in body))) {
    const err = body?.error || {};
    throw new ApiError(err.message || `HTTP ${response.status}`, { status: response.status, code: err.code || null });
  }
  return {
    status: response.status,
    data: body.data || null,
    errors: (body.errors || []).map((e) => toError(e, response.status)),
  };
}

/** One GraphQL request; the first error is thrown as an ApiError. */
export async function gql(store, query, variables = {}) {
  const { data, errors } = await gqlRaw(store, query, variables);
  if (errors.length) throw errors[0];
  return data;
}
