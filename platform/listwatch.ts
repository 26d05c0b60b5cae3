/**
 * The one retrying list+watch of both processes: client-node's ListWatch (list, then watch
 * from the list's resourceVersion, relist on 410 Gone) with what ListWatch leaves to its
 * caller. The webhook's informers (webhook/caches/informer.ts) and the agent's pod and
 * namespace sources (injector/agent/listwatch.ts) are thin bindings of it.
 *
 * - Restart with back-off. ListWatch stops for good on any error other than 410 (a failed
 *   list, a refused or broken watch): it only calls its `error` callbacks. It is restarted
 *   after a jittered exponential delay (backoff.ts), reset by the next list or watch event.
 * - No hot loop. A watch the server ends at once without any event is re-opened only after
 *   the same back-off. stop() cuts that wait, and a pending restart, short.
 * - Bounded watches: `timeoutSeconds` (randomised, as client-go does) makes the server end
 *   each watch, so a connection that died silently is noticed; bookmarks are requested so a
 *   quiet resource keeps a fresh resourceVersion and a re-watch rarely needs a relist.
 * - A 410 Gone ERROR event is the normal end of an expired watch (ListWatch relists next):
 *   it counts as progress. Any other ERROR event does not, so a server that keeps answering
 *   with one is retried with back-off rather than in a tight loop.
 * - A transform applied to every listed and watched object before ListWatch keeps it.
 * - `onSynced`: ListWatch calls watch() right after it applied a full list (or to resume
 *   from a known resourceVersion), so every such call is where the cache is complete.
 * - Progress for liveness: every list, watch event or bookmark, watch (re)start and retry
 *   is recorded; `stalled()` is the time since the last one. With the deadlines of
 *   kube-client.ts a live loop always progresses, so a long stall means a dead loop.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ListWatch, type KubernetesObject, type Watch } from '@kubernetes/client-node';
import { backoffMs } from './backoff.js';
import { Progress, type InFlight, type WatchFn } from './kube-client.js';

/** A list call's answer, as the typed and custom-object APIs of client-node return it. */
export interface ListResult<T = unknown> {
  items: T[];
  metadata?: { resourceVersion?: string };
}

/** What the loop calls: object events, a complete cache, a list, a failure. */
export interface ListWatchHandler<T> {
  added(obj: T): void;
  updated(obj: T): void;
  deleted(obj: T): void;
  /** After every full list (and resume): the cache is complete. */
  synced(): void;
  /** A full list of `count` objects was received. */
  listed?(count: number): void;
  /** The list/watch failed; it is retried in `retryInMs`. */
  failed?(err: unknown, retryInMs: number): void;
}

export interface ListWatchLoopOptions<T extends KubernetesObject> {
  /** API path to watch, e.g. /api/v1/pods. */
  path: string;
  list: () => Promise<ListResult<T>>;
  /** A DeadlineWatch (kube-client.ts) in production. */
  watch: WatchFn;
  fieldSelector?: string;
  /** Applied to every object listed or watched; must keep metadata name, namespace and resourceVersion. */
  transform?: (obj: T) => T;
  handler: ListWatchHandler<T>;
  /** Restart delays: doubles from initialMs up to maxMs, +-20 % jitter. Default 500 ms .. 30 s. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Server-side watch timeout; each watch uses a random value between this and twice it. Default 300 s. */
  watchTimeoutSeconds?: number;
  /** Randomness of the jitter (tests make it deterministic). */
  random?: () => number;
  /** Clock of the progress record (tests). */
  now?: () => number;
  /** The list requests in flight (of the client `list` uses), aborted by stop(). */
  inflight?: InFlight;
}

/** Counters of one loop, for metrics and diagnostics. */
export interface ListWatchStats {
  /** Successful full lists (the initial sync and every relist). */
  lists: number;
  /** Failed lists and watches (each retried). */
  errors: number;
  lastError: string | undefined;
}

const QUICK_END_MS = 1000;
const OBJECT_EVENTS = new Set(['ADDED', 'MODIFIED', 'DELETED']);

/** Runs one resource's list+watch until stopped, restarting it after failures. */
export class ListWatchLoop<T extends KubernetesObject> {
  private readonly lw: ListWatch<T>;
  private readonly random: () => number;
  private stopped = true;
  private failures = 0;
  private quickEnds = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Aborts the back-off sleep before a re-watch (stop()). */
  private pause: AbortController | undefined;
  private readonly counters: ListWatchStats = { lists: 0, errors: 0, lastError: undefined };
  private readonly progress: Progress;

  constructor(private readonly o: ListWatchLoopOptions<T>) {
    this.random = o.random ?? Math.random;
    this.progress = new Progress(o.now);
    const transform = o.transform ?? ((x: T) => x);
    const list = async (): Promise<ListResult<T>> => {
      const res = await o.list();
      this.counters.lists++;
      this.failures = 0;
      this.progress.mark('listed');
      o.handler.listed?.(res.items.length);
      return { ...res, items: res.items.map(transform) };
    };
    // ListWatch's constructor is typed with client-node's Watch class, but it only ever
    // calls watch() on it; WatchFn is that method.
    this.lw = new ListWatch<T>(
      o.path,
      this.wrapWatch(o.watch, transform) as unknown as Watch,
      list as unknown as () => Promise<never>,
      false,
      undefined,
      o.fieldSelector,
    );
    this.lw.on('add', (x) => o.handler.added(x));
    this.lw.on('update', (x) => o.handler.updated(x));
    this.lw.on('delete', (x) => o.handler.deleted(x));
    this.lw.on('error', (err) => this.restartLater(err));
  }

  /** Start listing and watching (idempotent). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.progress.mark('started');
    this.lw.start().catch((e: unknown) => this.restartLater(e));
  }

  /** Stop: the watch and the lists in flight are aborted, a pending retry or back-off is cut short. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pause?.abort();
    this.o.inflight?.abortAll();
    await this.lw.stop();
  }

  stats(): ListWatchStats {
    return { ...this.counters };
  }

  /** Milliseconds since the loop last progressed, and what that was; undefined while stopped. */
  stalled(): { ms: number; last: string } | undefined {
    return this.stopped ? undefined : { ms: this.progress.sinceMs(), last: this.progress.last() };
  }

  private delay(n: number): number {
    return backoffMs(n, { initialMs: this.o.backoff?.initialMs ?? 500, maxMs: this.o.backoff?.maxMs ?? 30_000 }, this.random);
  }

  private restartLater(err: unknown): void {
    if (this.stopped || this.timer) return;
    const wait = this.delay(this.failures++);
    this.counters.errors++;
    this.counters.lastError = err instanceof Error ? err.message : String(err);
    this.o.handler.failed?.(err, wait);
    this.progress.mark('retry scheduled');
    // Not unref'd: a running loop keeps the process alive until stop(), which clears it.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.stopped) return;
      this.progress.mark('retry');
      this.lw.start().catch((e: unknown) => this.restartLater(e));
    }, wait);
  }

  /** Wait before a re-watch; stop() cuts the wait short. */
  private async backOff(ms: number): Promise<void> {
    const ac = new AbortController();
    this.pause = ac;
    try {
      await sleep(ms, undefined, { signal: ac.signal });
    } catch {
      // stopped
    } finally {
      if (this.pause === ac) this.pause = undefined;
    }
  }

  private wrapWatch(inner: WatchFn, transform: (o: T) => T): WatchFn {
    return {
      watch: async (path, params, callback, done) => {
        this.o.handler.synced();
        if (this.quickEnds > 0) await this.backOff(this.delay(this.quickEnds - 1));
        if (this.stopped) return new AbortController();
        this.progress.mark('watch started');
        const started = Date.now();
        let events = 0;
        const query = {
          ...params,
          allowWatchBookmarks: true,
          timeoutSeconds: Math.round((this.o.watchTimeoutSeconds ?? 300) * (1 + this.random())),
        };
        return inner.watch(
          path,
          query,
          (phase, obj, raw) => {
            this.progress.mark(phase === 'BOOKMARK' ? 'bookmark' : 'event');
            if (phase === 'ERROR') {
              if ((obj as { code?: number } | undefined)?.code === 410) events++;
              return callback(phase, obj, raw);
            }
            events++;
            this.failures = 0;
            callback(phase, OBJECT_EVENTS.has(phase) ? transform(obj as T) : obj, raw);
          },
          (err) => {
            this.quickEnds = events === 0 && Date.now() - started < QUICK_END_MS ? this.quickEnds + 1 : 0;
            done(err);
          },
        );
      },
    };
  }
}
