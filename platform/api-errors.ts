/**
 * The one API-error classifier of both processes: the HTTP status of an error from
 * client-node (ApiException: `code` and `body`), a raw response (`statusCode`) or the
 * network (none), and what a writer should do about it.
 */

/** The HTTP status of an API error, or undefined for a network error (no answer). */
export function statusCodeOf(err: unknown): number | undefined {
  const x = err as { statusCode?: unknown; code?: unknown; response?: { statusCode?: unknown } };
  for (const c of [x?.code, x?.statusCode, x?.response?.statusCode]) if (typeof c === 'number') return c;
  return undefined;
}

/** What to do after a failed API write, and the label it is counted under. */
export interface ApiFailure {
  /** gone: the object no longer exists (not an error); retry: try again later (with backoff). */
  action: 'gone' | 'retry';
  reason: 'not-found' | 'conflict' | 'throttled' | 'forbidden' | 'invalid' | 'server' | 'network';
  status: number;
  message: string;
}

/** The message of an API error's body (a JSON Status, as text or parsed). */
function bodyMessage(body: unknown): string {
  if (typeof body === 'string') {
    try {
      return String((JSON.parse(body) as { message?: unknown }).message ?? body);
    } catch {
      return body;
    }
  }
  if (body && typeof body === 'object' && 'message' in body) return String((body as { message: unknown }).message);
  return '';
}

/**
 * The message of the API server's 422 for a JSON Patch that does not apply (a failed `test`,
 * or a path the object no longer has), with no details (checked against kube-apiserver
 * 1.36). Our patches are computed from the cached object, so either means the object
 * changed meanwhile. Schema validation failures carry their own message instead.
 */
const PATCH_NOT_APPLICABLE = 'the server rejected our request due to an error in our request';

/**
 * Classify an error from client-node (ApiException: `code` and `body`) or the network.
 * A patch that no longer applies (422, see above) and a 409 both mean "changed
 * meanwhile", i.e. a conflict.
 */
export function classifyApiError(err: unknown): ApiFailure {
  const e = err as { body?: unknown; message?: unknown };
  const status = statusCodeOf(err) ?? 0;
  const message = (bodyMessage(e?.body) || String(e?.message ?? err)).slice(0, 500);
  if (status === 404) return { action: 'gone', reason: 'not-found', status, message };
  if (status === 409 || (status === 422 && message === PATCH_NOT_APPLICABLE))
    return { action: 'retry', reason: 'conflict', status, message };
  if (status === 429) return { action: 'retry', reason: 'throttled', status, message };
  if (status === 401 || status === 403) return { action: 'retry', reason: 'forbidden', status, message };
  if (status >= 400 && status < 500) return { action: 'retry', reason: 'invalid', status, message };
  if (status >= 500) return { action: 'retry', reason: 'server', status, message };
  return { action: 'retry', reason: 'network', status, message };
}
