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
  /**
   * How long the server asked us to wait before trying again (its Retry-After header, in ms):
   * API Priority and Fairness answers 429 with one when our flow's queue is full, and a
   * server shutting down answers 503 with one. Undefined when it named none.
   */
  retryAfterMs?: number;
}

/** The longest Retry-After honoured as given (a larger one, or a date far ahead, is capped). */
export const MAX_RETRY_AFTER_MS = 60_000;

/**
 * The Retry-After of an error's response headers (client-node's ApiException and
 * kube-client.ts's ApiStatusError both carry `headers`), in ms: delay-seconds or an
 * HTTP-date, capped at MAX_RETRY_AFTER_MS; undefined when absent or unreadable.
 */
export function retryAfterMsOf(err: unknown, now: number = Date.now()): number | undefined {
  const headers = (err as { headers?: unknown })?.headers;
  if (!headers || typeof headers !== 'object') return undefined;
  let raw: unknown;
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === 'retry-after') raw = v;
  if (typeof raw !== 'string' || !raw.trim()) return undefined;
  const text = raw.trim();
  let ms: number;
  if (/^\d+$/.test(text)) ms = Number(text) * 1000;
  else {
    const at = Date.parse(text);
    if (Number.isNaN(at)) return undefined;
    ms = Math.max(0, at - now);
  }
  return Math.min(ms, MAX_RETRY_AFTER_MS);
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
  if (status === 429) return withRetryAfter({ action: 'retry', reason: 'throttled', status, message }, err);
  if (status === 401 || status === 403) return { action: 'retry', reason: 'forbidden', status, message };
  if (status >= 400 && status < 500) return { action: 'retry', reason: 'invalid', status, message };
  if (status >= 500) return withRetryAfter({ action: 'retry', reason: 'server', status, message }, err);
  return { action: 'retry', reason: 'network', status, message };
}

function withRetryAfter(f: ApiFailure, err: unknown): ApiFailure {
  const ms = retryAfterMsOf(err);
  return ms === undefined ? f : { ...f, retryAfterMs: ms };
}
