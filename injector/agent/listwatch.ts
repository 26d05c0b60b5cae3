/**
 * RetryingListWatch: the shared retrying list+watch (platform/listwatch.ts) bound to the
 * agent's pod and namespace sources (kube.ts): its failures are logged, its first complete
 * list is announced once. What the loop does, for the agent:
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
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../../platform/log.js';
import { DeadlineWatch, type InFlight, type WatchDeadlines, type WatchFn } from '../../platform/kube-client.js';
import { ListWatchLoop, type ListResult } from '../../platform/listwatch.js';

/** What a list call returns (client-node's typed lists). */
export type ListBody<T> = ListResult<T>;

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

/** A list+watch that restarts itself. start() then stop(). */
export class RetryingListWatch<T extends KubernetesObject> {
  private readonly loop: ListWatchLoop<T>;

  constructor(kc: KubeConfig, o: RetryingListWatchOptions<T>) {
    let syncedOnce = false;
    this.loop = new ListWatchLoop<T>({
      path: o.path,
      list: o.list,
      watch: o.watch ?? new DeadlineWatch(kc, o.watchDeadlines),
      ...(o.fieldSelector ? { fieldSelector: o.fieldSelector } : {}),
      ...(o.transform ? { transform: o.transform } : {}),
      handler: {
        added: (x) => o.handler.added(x),
        updated: (x) => o.handler.updated(x),
        deleted: (x) => o.handler.deleted(x),
        synced: () => {
          if (syncedOnce) return;
          syncedOnce = true;
          o.handler.synced();
        },
        listed: (count) => o.log.debug({ what: o.what, count }, 'listed'),
        failed: (err, retryInMs) => {
          o.log.warn({ what: o.what, error: (err as Error)?.message ?? String(err), retryInMs }, 'list/watch failed; retrying');
          o.onFailure?.(err);
        },
      },
      backoff: { maxMs: o.maxBackoffMs ?? 30_000 },
      ...(o.random ? { random: o.random } : {}),
      ...(o.now ? { now: o.now } : {}),
      ...(o.inflight ? { inflight: o.inflight } : {}),
    });
  }

  start(): void {
    this.loop.start();
  }

  /** Stop: the watch is aborted, a pending retry or back-off sleep is cut short. */
  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** Milliseconds since the loop last progressed and what that was; undefined while stopped. */
  stalled(): { ms: number; last: string } | undefined {
    return this.loop.stalled();
  }
}
