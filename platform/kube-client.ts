/**
 * Deadlines for every Kubernetes API call, and a watch with a progress watchdog.
 *
 * @kubernetes/client-node 1.4 sets no timeout on its API calls, and its Watch has none
 * either (watch.js overwrites its own timeout signal, and sets TCP keepalive only once a
 * response has arrived): against an API endpoint that accepts connections and never
 * answers, a list or a watch waits forever and the informer built on it never retries.
 *
 * - apiClient(kc, Api, timeoutMs): a client-node API client whose every request (headers
 *   AND body) must complete within timeoutMs; past it the request is aborted and the call
 *   rejects with ApiTimeoutError naming the method, the path and the deadline.
 * - DeadlineWatch: the WatchLike that ListWatch calls, on node:http(s) directly. It
 *   returns its AbortController at once (so stop() can always abort it, even before the
 *   server answered), turns on TCP keepalive as soon as the socket exists, must see the
 *   response headers within `connectMs`, and ends the watch with ApiTimeoutError when no
 *   byte (event or bookmark) arrived for `idleMs`. Its caller (the informer) treats that
 *   as any failed watch: a log line, back-off, restart. It asks for bookmarks
 *   (allowWatchBookmarks=true) unless told not to: kube-apiserver sends a BOOKMARK about
 *   every 60 s on a quiet watch (a fixed frequency of its watch cache, no flag changes it),
 *   and each one is progress, so `idleMs` must stay well above 60 s in production.
 *
 * In platform/, the layer both processes build on (test/core/layering.test.ts).
 */
import * as http from 'node:http';
import * as https from 'node:https';
import {
  createConfiguration,
  IsomorphicFetchHttpLibrary,
  ResponseContext,
  ServerConfiguration,
  wrapHttpLibrary,
  type Configuration,
  type KubeConfig,
  type RequestContext,
} from '@kubernetes/client-node';

/** A request or a watch that got no (complete) answer in time. */
export class ApiTimeoutError extends Error {
  override name = 'ApiTimeoutError';
}

/** Default deadline of one API request, body included (the API server's own is 60 s). */
export const DEFAULT_API_TIMEOUT_MS = 60_000;
/** Default time a watch may take to answer with its response headers. */
export const DEFAULT_WATCH_CONNECT_MS = 30_000;
/**
 * Default time a watch may stay silent. Watches ask for bookmarks, which the API server
 * sends about once a minute, so a healthy quiet watch is never idle this long.
 */
export const DEFAULT_WATCH_IDLE_MS = 300_000;

const seconds = (ms: number): string => `${Math.round(ms / 100) / 10} s`;

/**
 * The requests in flight of the clients it is given to, so that a stop can abort them at
 * once (a list waiting on a silent API server would otherwise keep its socket and timer,
 * and so the process, alive until its deadline).
 */
export class InFlight {
  private readonly live = new Set<AbortController>();

  /** Abort every request in flight now; later requests are not affected. */
  abortAll(): void {
    for (const ac of this.live) ac.abort();
    this.live.clear();
  }

  /** @internal */
  track(ac: AbortController): () => void {
    this.live.add(ac);
    return () => this.live.delete(ac);
  }

  get size(): number {
    return this.live.size;
  }
}

/** The path and query of a URL, for messages (no host: it is the kubeconfig's). */
const pathOf = (url: string): string => {
  try {
    const u = new URL(url);
    return u.pathname + u.search;
  } catch {
    return url;
  }
};

/** client-node's fetch library, with a deadline covering the request and its whole body. */
function deadlineLibrary(timeoutMs: number, inflight?: InFlight) {
  const inner = new IsomorphicFetchHttpLibrary();
  return wrapHttpLibrary({
    async send(req: RequestContext): Promise<ResponseContext> {
      const ac = new AbortController();
      const outer = req.getSignal();
      const onOuter = (): void => ac.abort();
      outer?.addEventListener('abort', onOuter, { once: true });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        ac.abort();
      }, timeoutMs);
      const untrack = inflight?.track(ac);
      req.setSignal(ac.signal);
      try {
        const res = await inner.send(req).toPromise();
        // Read the body here, under the same deadline, instead of leaving it to the caller.
        const body = await res.body.binary();
        return new ResponseContext(res.httpStatusCode, res.headers, {
          text: () => Promise.resolve(body.toString('utf8')),
          binary: () => Promise.resolve(body),
        });
      } catch (e) {
        if (timedOut) {
          throw new ApiTimeoutError(
            `${req.getHttpMethod()} ${pathOf(req.getUrl())}: no complete answer from the API server within ${seconds(timeoutMs)}`,
          );
        }
        if (ac.signal.aborted && !outer?.aborted) throw new Error(`${req.getHttpMethod()} ${pathOf(req.getUrl())}: aborted (stopping)`);
        throw e;
      } finally {
        untrack?.();
        clearTimeout(timer);
        outer?.removeEventListener('abort', onOuter);
      }
    },
  });
}

/**
 * `kc.makeApiClient(Api)`, with a deadline of `timeoutMs` on every request; with `inflight`,
 * its requests can be aborted at once (on stop).
 */
export function apiClient<T>(
  kc: KubeConfig,
  Api: new (config: Configuration) => T,
  timeoutMs: number = DEFAULT_API_TIMEOUT_MS,
  inflight?: InFlight,
): T {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  return new Api(
    createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: kc },
      httpApi: deadlineLibrary(timeoutMs, inflight),
    }),
  );
}

/**
 * A non-2xx answer of `patchObject`: the HTTP status, the body (a Status, as text) and the
 * response headers (a 429's Retry-After), as api-errors.ts reads them (client-node's
 * ApiException has the same `headers`).
 */
export class ApiStatusError extends Error {
  override name = 'ApiStatusError';
  constructor(
    readonly statusCode: number,
    readonly body: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** How long patchObject reuses a KubeConfig's connection options before asking it again. */
const OPTIONS_TTL_MS = 10_000;
const appliedOptions = new WeakMap<KubeConfig, { at: number; opts: Promise<https.RequestOptions> }>();

/**
 * `kc.applyToHTTPSOptions()` (TLS material, the Authorization header, the agent), at most once
 * per OPTIONS_TTL_MS: it goes through every authenticator and re-reads CA and key files on each
 * call, which was a tenth of the controller's CPU per patch. A rotated token or certificate is
 * picked up within that time (client-node itself re-reads a token file once a minute). The
 * promise is what is kept, so the 32 patches a Route edit starts at once after a quiet spell
 * wait for one such call instead of making 32; a call that fails is not kept.
 */
function connectionOptions(kc: KubeConfig): Promise<https.RequestOptions> {
  const cached = appliedOptions.get(kc);
  if (cached && Date.now() - cached.at < OPTIONS_TTL_MS) return cached.opts;
  const entry = {
    at: Date.now(),
    opts: (async () => {
      const opts: https.RequestOptions = {};
      await kc.applyToHTTPSOptions(opts);
      return opts;
    })(),
  };
  appliedOptions.set(kc, entry);
  entry.opts.catch(() => {
    if (appliedOptions.get(kc) === entry) appliedOptions.delete(kc);
  });
  return entry.opts;
}

/**
 * One JSON Patch of the object at `path` (with `query`), on `kc`'s connections (shared
 * keep-alive ones once platform/kube-connections.ts is installed), within `timeoutMs` for the
 * whole answer. Resolves with the stored object as plain JSON (the controller checks which plan
 * admission kept), never put through client-node's deserialisation into its models, which cost
 * more CPU than the rest of a controller's reconcile. A non-2xx answer rejects with ApiStatusError.
 */
export async function patchObject(
  kc: KubeConfig,
  path: string,
  ops: readonly unknown[],
  opts: { query?: Record<string, string>; timeoutMs?: number } = {},
): Promise<unknown> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const url = new URL(cluster.server.replace(/\/$/, '') + path);
  for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, v);
  const body = JSON.stringify(ops);
  const base = await connectionOptions(kc);
  const reqOpts: https.RequestOptions = {
    ...base,
    method: 'PATCH',
    headers: {
      ...base.headers,
      Accept: 'application/json',
      'Content-Type': 'application/json-patch+json',
      'Content-Length': Buffer.byteLength(body),
    },
  };
  const timeoutMs = opts.timeoutMs ?? DEFAULT_API_TIMEOUT_MS;
  const where = `PATCH ${url.pathname}`;
  return new Promise<unknown>((resolve, reject) => {
    const lib = url.protocol === 'http:' ? http : https;
    const req = lib.request(url, reqOpts, (res) => {
      const code = res.statusCode ?? 0;
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (code < 200 || code >= 300) {
          const retryAfter = res.headers['retry-after'];
          return reject(
            new ApiStatusError(code, text, `${where}: HTTP ${code}`, typeof retryAfter === 'string' ? { 'retry-after': retryAfter } : {}),
          );
        }
        // The object as stored, as plain JSON (undefined when the body is not JSON): a
        // caller may check what admission kept, without client-node's model parsing.
        try {
          resolve(JSON.parse(text) as unknown);
        } catch {
          resolve(undefined);
        }
      });
    });
    const timer = setTimeout(
      () => req.destroy(new ApiTimeoutError(`${where}: no complete answer from the API server within ${seconds(timeoutMs)}`)),
      timeoutMs,
    );
    req.on('close', () => clearTimeout(timer));
    req.on('error', reject);
    req.end(body);
  });
}

/** The one method of client-node's Watch that ListWatch calls. */
export interface WatchFn {
  watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController>;
}

export interface WatchDeadlines {
  /** Until the response headers. Default DEFAULT_WATCH_CONNECT_MS. */
  connectMs?: number;
  /** Longest silence (no byte) on an open watch. Default DEFAULT_WATCH_IDLE_MS. */
  idleMs?: number;
}

/** An HTTP status other than 200 answering a watch (410 Gone makes ListWatch relist). */
class WatchStatusError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** A watch with deadlines; see the file comment. */
export class DeadlineWatch implements WatchFn {
  readonly connectMs: number;
  readonly idleMs: number;

  constructor(
    private readonly kc: KubeConfig,
    d: WatchDeadlines = {},
  ) {
    this.connectMs = d.connectMs ?? DEFAULT_WATCH_CONNECT_MS;
    this.idleMs = d.idleMs ?? DEFAULT_WATCH_IDLE_MS;
  }

  async watch(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    const url = new URL(cluster.server + path);
    url.searchParams.set('watch', 'true');
    // Bookmarks unless the caller says otherwise: the API server then sends one about once a
    // minute on a quiet watch (its watch cache's fixed frequency), which re-arms the idle
    // watchdog, so a healthy quiet watch is not ended and restarted every idleMs.
    url.searchParams.set('allowWatchBookmarks', 'true');
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    const ac = new AbortController();
    // Start after the caller has the controller: `done` must never run before it does.
    setImmediate(() => {
      void this.run(url, ac, callback, done);
    });
    return ac;
  }

  private async run(
    url: URL,
    ac: AbortController,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<void> {
    if (ac.signal.aborted) return;
    const where = `watch ${url.pathname}${url.search}`;
    let finished = false;
    let timer: NodeJS.Timeout | undefined;
    let req: http.ClientRequest | undefined;
    const finish = (err: unknown): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      ac.signal.removeEventListener('abort', onAbort);
      req?.destroy();
      done(err);
    };
    // Aborted by the caller (stop, or ListWatch replacing the watch): end quietly.
    const onAbort = (): void => {
      finished = true;
      clearTimeout(timer);
      req?.destroy();
    };
    ac.signal.addEventListener('abort', onAbort, { once: true });
    const arm = (ms: number, what: string): void => {
      clearTimeout(timer);
      timer = setTimeout(() => finish(new ApiTimeoutError(`${where}: ${what} within ${seconds(ms)}`)), ms);
    };
    arm(this.connectMs, 'no answer from the API server');
    let opts: https.RequestOptions;
    try {
      opts = {};
      await this.kc.applyToHTTPSOptions(opts);
    } catch (e) {
      finish(e);
      return;
    }
    if (finished) return;
    const lib = url.protocol === 'http:' ? http : https;
    req = lib.request(url, { method: 'GET', agent: opts.agent, headers: opts.headers, ...(opts.auth ? { auth: opts.auth } : {}) });
    // Keepalive from the start, not only once a response arrived.
    req.on('socket', (s) => s.setKeepAlive(true, 30_000));
    req.on('error', (e) => finish(e));
    req.on('response', (res) => {
      if (res.statusCode !== 200) {
        const code = res.statusCode ?? 0;
        res.resume();
        finish(new WatchStatusError(code, `${where}: HTTP ${code} ${http.STATUS_CODES[code] ?? ''}`.trim()));
        return;
      }
      arm(this.idleMs, 'no event or bookmark');
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (finished) return;
        arm(this.idleMs, 'no event or bookmark');
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0 && !finished) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          let data: { type?: string; object?: unknown };
          try {
            data = JSON.parse(line) as { type?: string; object?: unknown };
          } catch {
            finish(new Error(`${where}: unparsable event line (${line.length} bytes)`));
            return;
          }
          callback(String(data.type), data.object, data);
        }
      });
      res.on('end', () => finish(null));
      res.on('error', (e) => finish(e));
      res.on('close', () => finish(null));
    });
    req.end();
  }
}

/**
 * Progress of one list+watch loop, for liveness: every list, watch event, bookmark and
 * retry attempt is progress. A loop with no progress for longer than its bound is dead
 * (something waits without a deadline), and /healthz says so.
 */
export class Progress {
  private at: number;
  private what = 'started';

  constructor(private readonly now: () => number = Date.now) {
    this.at = now();
  }

  mark(what: string): void {
    this.at = this.now();
    this.what = what;
  }

  /** Milliseconds since the last progress. */
  sinceMs(): number {
    return this.now() - this.at;
  }

  /** What the last progress was ("listed", "event", "retry", ...). */
  last(): string {
    return this.what;
  }
}

/**
 * The longest a live list+watch loop can go without progress, given its deadlines and its
 * largest back-off: a request or a watch connect, an idle watch, a back-off, plus slack.
 */
export function progressBoundMs(d: { apiTimeoutMs: number; connectMs: number; idleMs: number; maxBackoffMs: number }): number {
  return Math.max(d.apiTimeoutMs, d.connectMs + d.idleMs) + d.maxBackoffMs + 30_000;
}
