/**
 * Informer: the shared retrying list+watch (platform/listwatch.ts) feeding an ObjectStore.
 * What the loop does, for the webhook's caches:
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
import type { KubernetesObject } from '@kubernetes/client-node';
import type { KubeObject } from '../../core/types.js';
import type { InFlight, WatchFn } from '../../platform/kube-client.js';
import { ListWatchLoop, type ListResult as LoopListResult, type ListWatchStats } from '../../platform/listwatch.js';
import type { ObjectStore } from './store.js';

/** The one method of client-node's Watch that ListWatch calls (DeadlineWatch in production). */
export type WatchLike = WatchFn;

/** A list call's answer, as the typed and custom-object APIs of client-node return it. */
export type ListResult = LoopListResult;

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
export type InformerStats = ListWatchStats;

/** Runs one resource's list+watch into its store until stopped. */
export class Informer<T extends KubeObject> {
  private readonly loop: ListWatchLoop<KubernetesObject>;

  constructor(opts: InformerOptions<T>) {
    const { store, observer } = opts;
    this.loop = new ListWatchLoop<KubernetesObject>({
      path: opts.path,
      list: opts.list as () => Promise<LoopListResult<KubernetesObject>>,
      watch: opts.watch,
      ...(opts.transform ? { transform: opts.transform as unknown as (o: KubernetesObject) => KubernetesObject } : {}),
      handler: {
        added: (o) => store.upsert(o as unknown as T),
        updated: (o) => store.upsert(o as unknown as T),
        deleted: (o) => store.remove(o as unknown as T),
        // ListWatch calls watch() only after a full list is in its cache (or to resume
        // from a known resourceVersion): either way the store is now complete.
        synced: () => store.markSynced(),
        listed: (count) => observer?.onList?.(store.resource, count),
        failed: (err, retryInMs) => observer?.onError?.(store.resource, err, retryInMs),
      },
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
      ...(opts.watchTimeoutSeconds !== undefined ? { watchTimeoutSeconds: opts.watchTimeoutSeconds } : {}),
      ...(opts.random ? { random: opts.random } : {}),
      ...(opts.now ? { now: opts.now } : {}),
      ...(opts.inflight ? { inflight: opts.inflight } : {}),
    });
  }

  /** Start listing and watching (idempotent). Progress shows in the store's `synced`. */
  start(): void {
    this.loop.start();
  }

  /** Stop watching; pending restarts are cancelled. The store keeps its content. */
  stop(): Promise<void> {
    return this.loop.stop();
  }

  stats(): InformerStats {
    return this.loop.stats();
  }

  /**
   * Milliseconds since the loop last made progress (a list, a watch event or bookmark, a
   * watch start, a retry), with what that was; undefined while stopped.
   */
  stalled(): { ms: number; last: string } | undefined {
    return this.loop.stalled();
  }
}
