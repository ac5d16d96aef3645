// Every call to the service: the key from this tab's sessionStorage in the
// Authorization header (never in a URL, never in a cookie), errors as ApiError.

const STORAGE = 'media-store-console-key';

export const session = {
  get key() { return sessionStorage.getItem(STORAGE); },
  set key(value) {
    if (value) sessionStorage.setItem(STORAGE, value);
    else sessionStorage.removeItem(STORAGE);
  },
  who: null,          // {name, scope} from /api/whoami
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** What went wrong, in words a person can act on. */
export function explain(err) {
  if (!(err instanceof ApiError)) return `Something went wrong: ${err.message}`;
  switch (err.code) {
    case 'network': return 'The service cannot be reached. Check the connection and try again.';
    case 'unauthorized':
    case 'invalid_credentials':
      return 'That key was not accepted: it is unknown, revoked or mistyped.';
    case 'forbidden': return 'This key is not allowed to do that (its scope is too small).';
    default: return `${err.message} (${err.status} ${err.code})`;
  }
}

export function authHeaders(extra = {}) {
  return {Authorization: `Bearer ${session.key}`, ...extra};
}

/** fetch a JSON route; resolves to the parsed body (null for 204), throws ApiError. */
export async function api(path, {method = 'GET', body, key} = {}) {
  const headers = {Authorization: `Bearer ${key ?? session.key}`};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(path, {method, headers, cache: 'no-store', credentials: 'omit',
                              body: body === undefined ? undefined : JSON.stringify(body)});
  } catch (e) {
    throw new ApiError(0, 'network', e.message);
  }
  if (resp.status === 204) return null;
  let data = null;
  try { data = await resp.json(); } catch { /* not JSON */ }
  if (!resp.ok) {
    throw new ApiError(resp.status, data?.error ?? `http_${resp.status}`,
                       data?.message ?? resp.statusText);
  }
  return data;
}

export const can = {
  write: () => ['write', 'admin'].includes(session.who?.scope),
  admin: () => session.who?.scope === 'admin',
};
