/**
 * RetryingListWatch: client-node 1.4's ListWatch (list, then watch from the list's
 * resourceVersion; a 410 Gone, as an error or as a watch ERROR event, makes it relist) with
 * what ListWatch leaves to its caller. Shared by the agent's pod and namespace sources
 * (agent-kube.ts); the injector never imports webhook/, so this is its own, smaller informer.
 *
 * - ListWatch stops for good on any error but 410 Gone (a failed list, a refused or broken
 *   watch); here it is restarted with a jittered back-off (0.5 s doubling to 30 s), reset by
 *   the next successful list or watch event.
 * - Watches are bounded server-side (timeoutSeconds, randomised) and ask for bookmarks, so a
 *   quiet resource rarely relists; a watch that ends at once without any event is re-opened
 *   only after the back-off (no hot loop).
 * - `synced` once: ListWatch calls watch() right after it delivered a full list, so the
 *   first such call is where the first full list is known to be in.
 * - Every list has a deadline (the caller's apiClient, kube-client.ts) and every watch is a
 *   DeadlineWatch: no answer within its connect deadline, or no event or bookmark within its
 *   idle deadline, ends it with an error, logged and retried like any other.
 * - Progress (list, event, bookmark, watch start, retry) is recorded for liveness:
 *   `stalled()` is what /healthz checks; stop() cuts a pending back-off short.
 * - An optional `transform` shrinks every listed and watched object before ListWatch keeps
 *   it (and before the handler sees it), so a cache holds only what is read.
 */
import { ListWatch, type KubeConfig, type KubernetesObject, type Watch } from '@kubernetes/client-node';
import type { Logger } from '../../platform/log.js';
import { DeadlineWatch, Progress, type InFlight, type WatchDeadlines, type WatchFn } from '../../platform/kube-client.js';

/** What a list call returns (client-node's typed lists). */
export interface ListBody<T> {
  items: T[];
  metadata?: { resourceVersion?: string };
}

/** What the source calls: object events, and `synced` once after the first full list. */
export interface ListWatchHandler<T> {
  added(obj: T): void;
  updated(obj: T): void;
  deleted(obj: T): void;
  synced(): void;
}

export interface RetryingListWatchOptions<T extends KubernetesObject> {
  /** For logs, e.g. "pods of node node-1". */
  what: string;
  /** The watch path, e.g. /api/v1/pods. */
  path: string;
  list: () => Promise<ListBody<T>>;
  fieldSelector?: string;
  /** Applied to every object listed or watched; must keep metadata name, namespace and resourceVersion. */
  transform?: (obj: T) => T;
  handler: ListWatchHandler<T>;
  log: Logger;
  random?: () => number;
  /** Connect and idle deadlines of the watch. */
  watchDeadlines?: WatchDeadlines;
  /** Longest back-off between retries. Default 30 s. */
  maxBackoffMs?: number;
  /** The watch to use instead of a DeadlineWatch (tests). */
  watch?: WatchFn;
  /** Called on every failure before the retry (metrics). */
  onFailure?: (err: unknown) => void;
  /** Clock for progress (tests). */
  now?: () => number;
  /** The list requests in flight (of the client `list` uses), aborted by stop(). */
  inflight?: InFlight;
}

const QUICK_END_MS = 1000;
const OBJECT_EVENTS = new Set(['ADDED', 'MODIFIED', 'DELETED']);

/** A list+watch that restarts itself. start() then stop(). */
export class RetryingListWatch<T extends KubernetesObject> {
  private readonly lw: ListWatch<T>;
  private readonly random: () => number;
  private stopped = true;
  private failures = 0;
  private quickEnds = 0;
  private timer: NodeJS.Timeout | undefined;
  private pause: { timer: NodeJS.Timeout; resolve: () => void } | undefined;
  private syncedOnce = false;
  private readonly progress: Progress;

  constructor(kc: KubeConfig, private readonly o: RetryingListWatchOptions<T>) {
    this.random = o.random ?? Math.random;
    this.progress = new Progress(o.now);
    const shrink = o.transform ?? ((x: T) => x);
    const list = async (): Promise<ListBody<T>> => {
      const res = await o.list();
      this.failures = 0;
      this.progress.mark('listed');
      o.log.debug({ what: o.what, count: res.items.length }, 'listed');
      return { ...res, items: res.items.map(shrink) };
    };
    const inner = o.watch ?? new DeadlineWatch(kc, o.watchDeadlines);
    const watch = {
      watch: async (path: string, params: Record<string, string | number | boolean | undefined>,
        cb: (phase: string, obj: unknown, raw?: unknown) => void, done: (err: unknown) => void): Promise<AbortController> => {
        if (!this.syncedOnce) {
          this.syncedOnce = true;
          o.handler.synced();
        }
        if (this.quickEnds > 0) await this.sleep(this.delay(this.quickEnds - 1));
        if (this.stopped) return new AbortController();
        this.progress.mark('watch started');
        const started = Date.now();
        let events = 0;
        const query = { ...params, allowWatchBookmarks: true, timeoutSeconds: Math.round(300 * (1 + this.random())) };
        return inner.watch(path, query, (phase, obj, raw) => {
          this.progress.mark(phase === 'BOOKMARK' ? 'bookmark' : 'event');
          if (phase !== 'ERROR') {
            events++;
            this.failures = 0;
          }
          cb(phase, OBJECT_EVENTS.has(phase) ? shrink(obj as T) : obj, raw);
        }, (err) => {
          this.quickEnds = events === 0 && Date.now() - started < QUICK_END_MS ? this.quickEnds + 1 : 0;
          done(err);
        });
      },
    };
    this.lw = new ListWatch<T>(o.path, watch as unknown as Watch, list as () => Promise<never>, false, undefined, o.fieldSelector);
    this.lw.on('add', (x) => o.handler.added(x));
    this.lw.on('update', (x) => o.handler.updated(x));
    this.lw.on('delete', (x) => o.handler.deleted(x));
    this.lw.on('error', (err) => this.restartLater(err));
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.progress.mark('started');
    this.lw.start().catch((e: unknown) => this.restartLater(e));
  }

  /** Stop: the watch is aborted, a pending retry or back-off sleep is cut short. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pause) {
      clearTimeout(this.pause.timer);
      this.pause.resolve();
    }
    this.o.inflight?.abortAll();
    await this.lw.stop();
  }

  /** Milliseconds since the loop last progressed and what that was; undefined while stopped. */
  stalled(): { ms: number; last: string } | undefined {
    return this.stopped ? undefined : { ms: this.progress.sinceMs(), last: this.progress.last() };
  }

  private delay(n: number): number {
    return Math.round(Math.min(this.o.maxBackoffMs ?? 30_000, 500 * 2 ** Math.min(n, 16)) * (0.8 + 0.4 * this.random()));
  }

  /** A back-off before a re-watch that stop() cuts short. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.pause = undefined; resolve(); }, ms);
      this.pause = { timer, resolve: () => { this.pause = undefined; resolve(); } };
    });
  }

  private restartLater(err: unknown): void {
    if (this.stopped || this.timer) return;
    const wait = this.delay(this.failures++);
    this.o.log.warn({ what: this.o.what, error: (err as Error)?.message ?? String(err), retryInMs: wait }, 'list/watch failed; retrying');
    this.o.onFailure?.(err);
    this.progress.mark('retry scheduled');
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.progress.mark('retry');
      if (!this.stopped) this.lw.start().catch((e: unknown) => this.restartLater(e));
    }, wait);
  }
}
