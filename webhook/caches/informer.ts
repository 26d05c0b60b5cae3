/**
 * Informer: client-node's ListWatch (list, then watch from the list's resourceVersion,
 * relist on 410 Gone) feeding an ObjectStore, with what ListWatch leaves to its caller:
 *
 * - Restart with backoff. ListWatch stops for good on any error other than 410 (a failed
 *   list, a refused or broken watch): it only calls its `error` callbacks. We restart it
 *   after an exponential, jittered delay, reset by the next successful list or watch event.
 * - No hot loop. When the server closes a watch at once without sending anything,
 *   ListWatch re-watches immediately; we delay such re-watches with the same backoff.
 * - Bounded watches: `timeoutSeconds` (randomised, as client-go does) makes the server end
 *   each watch, so a connection that died silently is noticed; bookmarks are requested so
 *   a quiet resource keeps a fresh resourceVersion and a re-watch rarely needs a relist.
 * - A transform applied to every listed and watched object before anything stores it,
 *   to drop what we never read (managedFields, pod templates) and keep memory small.
 * - `synced`: ListWatch calls watch() right after it applied a full list, so that call is
 *   where the store is marked synced.
 * - Progress for liveness: every list, watch event or bookmark, watch (re)start and retry
 *   is recorded; `stalledMs()` is the time since the last one. With the deadlines of
 *   kube-client.ts (every list and watch is bounded) a live loop always progresses, so a
 *   stall past the bound means a dead loop, and /healthz reports it.
 */
import { ListWatch, type KubernetesObject, type Watch } from '@kubernetes/client-node';
import type { KubeObject } from '../../core/types.js';
import { Progress, type InFlight, type WatchFn } from '../../platform/kube-client.js';
import type { ObjectStore } from './store.js';

/** The one method of client-node's Watch that ListWatch calls (DeadlineWatch in production). */
export type WatchLike = WatchFn;

/** A list call's answer, as the typed and custom-object APIs of client-node return it. */
export interface ListResult {
  items: unknown[];
  metadata?: { resourceVersion?: string };
}

/** Hooks for metrics and logs; all optional. */
export interface InformerObserver {
  /** A full list was received (initial sync or relist). */
  onList?(resource: string, count: number): void;
  /** The list/watch failed; it is retried in `retryInMs`. */
  onError?(resource: string, err: unknown, retryInMs: number): void;
}

export interface InformerOptions<T extends KubeObject> {
  store: ObjectStore<T>;
  /** API path to watch, e.g. /api/v1/services or /apis/k8s.ovn.org/v1/routes. */
  path: string;
  list: () => Promise<ListResult>;
  /** `new DeadlineWatch(kubeConfig)` in production. */
  watch: WatchLike;
  /** Applied to every object before it is stored; must keep metadata.name/namespace/resourceVersion. */
  transform?: (obj: T) => T;
  /** Restart delays: doubles from initialMs up to maxMs, +-20% jitter. Default 500 ms .. 30 s. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Server-side watch timeout; each watch uses a random value between this and twice it. Default 300 s. */
  watchTimeoutSeconds?: number;
  observer?: InformerObserver;
  /** Source of randomness for jitter (tests make it deterministic). */
  random?: () => number;
  /** Clock for progress (tests). */
  now?: () => number;
  /** The list requests in flight (of the client `list` uses), aborted by stop(). */
  inflight?: InFlight;
}

/** Counters of one informer, for metrics and the controller's diagnostics. */
export interface InformerStats {
  /** Successful full lists (the initial sync and every relist). */
  lists: number;
  /** Failed lists and watches (each retried). */
  errors: number;
  lastError: string | undefined;
}

const QUICK_END_MS = 1000;

/** Runs one resource's list+watch into its store until stopped. */
export class Informer<T extends KubeObject> {
  private readonly lw: ListWatch<KubernetesObject>;
  private readonly opts: InformerOptions<T>;
  private stopped = true;
  private failures = 0;
  private quickEnds = 0;
  private timer: NodeJS.Timeout | undefined;
  private pause: { timer: NodeJS.Timeout; resolve: () => void } | undefined;
  private readonly counters: InformerStats = { lists: 0, errors: 0, lastError: undefined };
  private readonly progress: Progress;

  constructor(opts: InformerOptions<T>) {
    this.opts = opts;
    this.progress = new Progress(opts.now);
    const transform = opts.transform ?? ((o: T) => o);
    const list = async () => {
      const res = await opts.list();
      this.counters.lists++;
      this.failures = 0;
      this.progress.mark('listed');
      opts.observer?.onList?.(opts.store.resource, res.items.length);
      return { ...res, items: res.items.map((o) => transform(o as T)) };
    };
    // ListWatch's constructor is typed with client-node's Watch class, but it only ever
    // calls watch() on it; WatchLike is that method.
    this.lw = new ListWatch<KubernetesObject>(opts.path, this.wrapWatch(opts.watch, transform) as unknown as Watch,
      list as unknown as () => Promise<never>, false);
    const upsert = (o: KubernetesObject) => opts.store.upsert(o as unknown as T);
    this.lw.on('add', upsert);
    this.lw.on('update', upsert);
    this.lw.on('delete', (o) => opts.store.remove(o as unknown as T));
    this.lw.on('error', (err) => this.restartLater(err));
  }

  /** Start listing and watching (idempotent). Progress shows in the store's `synced`. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.progress.mark('started');
    this.lw.start().catch((err) => this.restartLater(err));
  }

  /** Stop watching; pending restarts are cancelled. The store keeps its content. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pause) {
      clearTimeout(this.pause.timer);
      this.pause.resolve();
    }
    this.opts.inflight?.abortAll();
    await this.lw.stop();
  }

  stats(): InformerStats {
    return { ...this.counters };
  }

  /**
   * Milliseconds since the loop last made progress (a list, a watch event or bookmark, a
   * watch start, a retry), with what that was; undefined while stopped.
   */
  stalled(): { ms: number; last: string } | undefined {
    return this.stopped ? undefined : { ms: this.progress.sinceMs(), last: this.progress.last() };
  }

  private delay(n: number): number {
    const initial = this.opts.backoff?.initialMs ?? 500;
    const max = this.opts.backoff?.maxMs ?? 30_000;
    const base = Math.min(max, initial * 2 ** Math.min(n, 30));
    return Math.round(base * (0.8 + 0.4 * (this.opts.random ?? Math.random)()));
  }

  private restartLater(err: unknown): void {
    if (this.stopped || this.timer) return;
    const wait = this.delay(this.failures++);
    this.counters.errors++;
    this.counters.lastError = err instanceof Error ? err.message : String(err);
    this.opts.observer?.onError?.(this.opts.store.resource, err, wait);
    this.progress.mark('retry scheduled');
    // Not unref'd: a running informer keeps the process alive until stop(), which clears it.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.stopped) return;
      this.progress.mark('retry');
      this.lw.start().catch((e) => this.restartLater(e));
    }, wait);
  }

  /** Wait before a re-watch; stop() cuts the wait short. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.pause = undefined; resolve(); }, ms);
      this.pause = { timer, resolve: () => { this.pause = undefined; resolve(); } };
    });
  }

  private wrapWatch(inner: WatchLike, transform: (o: T) => T): WatchLike {
    return {
      watch: async (path, params, callback, done) => {
        // ListWatch calls watch() only after a full list is in its cache (or to resume
        // from a known resourceVersion): either way the store is now complete.
        this.opts.store.markSynced();
        if (this.quickEnds > 0) await this.sleep(this.delay(this.quickEnds - 1));
        if (this.stopped) return new AbortController();
        this.progress.mark('watch started');
        const started = Date.now();
        let events = 0;
        const timeout = this.opts.watchTimeoutSeconds ?? 300;
        const query = {
          ...params,
          allowWatchBookmarks: true,
          timeoutSeconds: Math.round(timeout * (1 + (this.opts.random ?? Math.random)())),
        };
        return inner.watch(path, query, (phase, obj, raw) => {
          this.progress.mark(phase === 'BOOKMARK' ? 'bookmark' : 'event');
          if (phase === 'ERROR') {
            // 410 Gone is the normal end of an expired watch (ListWatch relists next);
            // any other error event does not count as progress, so a server that keeps
            // answering with one is retried with backoff rather than in a tight loop.
            if ((obj as { code?: number } | undefined)?.code === 410) events++;
            return callback(phase, obj, raw);
          }
          events++;
          this.failures = 0;
          callback(phase, phase === 'BOOKMARK' ? obj : transform(obj as T), raw);
        }, (err) => {
          this.quickEnds = events === 0 && Date.now() - started < QUICK_END_MS ? this.quickEnds + 1 : 0;
          done(err);
        });
      },
    };
  }
}
