/**
 * The controller: keeps every pod's plan annotation equal to what core resolves now, and
 * every Route's status and Events true. It runs only on the leader (webhook/controller/leader.ts);
 * `start()` begins a term, `stop()` ends it. The caches (shared with the webhook) and the
 * pod cache keep running on every replica, so a new leader starts from warm caches.
 *
 * - Every cache event is mapped to exactly the pods it can affect (controller-map.ts) and
 *   their keys go to a deduplicating work queue (controller-queue.ts).
 * - Reconciling a pod: desiredPlan() (the very function the webhook uses), then a guarded
 *   JSON Patch (controller-patch.ts) only when the annotation differs: a stale plan, one the
 *   system did not compute (forged), or one on a pod that must carry none. Patches are
 *   rate-limited (token bucket) with bounded concurrency; failures are retried with
 *   backoff; a pod deleted meanwhile (404) is simply done.
 * - Each reconcile updates the pod's record in the RouteIndex; Routes whose aggregate
 *   changed are marked, and their status is written at most every `statusDelayMs`, only when
 *   it differs (status.ts), with the Events it calls for (events.ts).
 * - A periodic resync re-queues every pod and Route, to heal anything a lost event missed.
 */
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { Operation } from 'fast-json-patch';
import { decodeInjectorStatus } from '../../core/injector-status.js';
import type { PlanKey } from '../../core/plan-codec.js';
import type { InjectMode } from '../../core/resolve.js';
import {
  API_GROUP,
  API_VERSION,
  PLAN_ANNOTATION,
  ROUTE_PLURAL,
  STATUS_ANNOTATION,
  type KubeObject,
  type Route,
  type Service,
} from '../../core/types.js';
import type { ClusterCaches } from '../caches/caches.js';
import {
  isPlanEcho,
  namespaceChanged,
  ownerChanged,
  podChanged,
  podsOwnedBy,
  podsSelectedBy,
  routesReferencing,
  routeVersionsOf,
  serviceChanged,
} from './map.js';
import type { ControllerMetrics } from './metrics.js';
import { apiClient, DEFAULT_API_TIMEOUT_MS, patchObject } from '../../platform/kube-client.js';
import { forPod, forRoute, silentLogger, type Logger } from '../../platform/log.js';
import { planPatch } from './patch.js';
import { classifyApiError } from '../../platform/api-errors.js';
import { backoffMs } from '../../platform/backoff.js';
import { realClock, TokenBucket, WorkQueue, type Clock, type WorkResult } from '../../platform/queue.js';
import { EventRecorder, type CreateEvent } from './events.js';
import { desiredPlan, isSystemSigned } from '../plan.js';
import { podIsDone, podKey, splitPodKey, type CachedPod } from '../caches/pods.js';
import { routeStatus, statusEqual, statusPatch } from './status.js';
import { podRecord, RouteIndex } from './status-index.js';
import type { ChangeEvent, ReadableStore } from '../caches/store.js';

/** The API writes the controller makes. */
export interface ControllerApi {
  patchPod(namespace: string, name: string, ops: Operation[]): Promise<unknown>;
  patchRouteStatus(name: string, ops: Operation[]): Promise<unknown>;
  createEvent: CreateEvent;
}

/** The field manager our writes are recorded under (managedFields). */
export const FIELD_MANAGER = 'ovnkube-route-controller';

/** ControllerApi against `kc`'s API server (JSON Patch for pods and routes/status). */
export function controllerApi(kc: KubeConfig, timeoutMs: number = DEFAULT_API_TIMEOUT_MS): ControllerApi {
  const core = apiClient(kc, CoreV1Api, timeoutMs);
  const custom = apiClient(kc, CustomObjectsApi, timeoutMs);
  return {
    // Raw: the patched Pod that comes back is not needed, and client-node's parsing of it
    // into its models cost more CPU than the rest of the reconcile (docs/webhook.md).
    patchPod: (namespace, name, body) =>
      patchObject(kc, `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`, body, {
        query: { fieldManager: FIELD_MANAGER },
        timeoutMs,
      }),
    patchRouteStatus: (name, body) =>
      custom.patchClusterCustomObjectStatus({
        group: API_GROUP,
        version: API_VERSION,
        plural: ROUTE_PLURAL,
        name,
        body,
        fieldManager: FIELD_MANAGER,
      }),
    createEvent: (namespace, body) => core.createNamespacedEvent({ namespace, body: body as never }),
  };
}

export type { Logger };

export interface ControllerOptions {
  caches: ClusterCaches;
  pods: ReadableStore<CachedPod>;
  api: ControllerApi;
  mode: InjectMode;
  /** keys[0] signs; every key verifies. */
  keys: readonly PlanKey[];
  /** This replica's identity (Events' reportingInstance). */
  identity: string;
  patchQps: number;
  patchBurst: number;
  concurrency: number;
  /** Re-queue every pod this often (0: never). */
  resyncPeriodMs: number;
  /** Route status is written at most this often per batch of changes. */
  statusDelayMs?: number;
  metrics?: ControllerMetrics;
  log?: Logger;
  /** Time of the token bucket and the work queue (tests inject a manual one). */
  clock?: Clock;
}

/** One leader term's worth of reconciling; start() and stop() may alternate. */
export class Controller {
  readonly queue: WorkQueue;
  readonly index = new RouteIndex();
  private readonly limiter: TokenBucket;
  private readonly events: EventRecorder;
  private readonly log: Logger;
  private readonly dirtyRoutes = new Set<string>();
  private unsubscribe: (() => void)[] = [];
  private running = false;
  /** Bumped by every start() and stop(), so a start() still waiting for sync knows it is stale. */
  private term = 0;
  private statusTimer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private statusFailures = 0;
  private readonly clock: Clock;
  /**
   * The API server failing as a whole (5xx, no answer, a 429 without Retry-After): how many
   * times in a row the controller paused all its writes for it, and when it last did. Reset
   * by any patch that succeeds (see serverTrouble).
   */
  private troubleLevel = 0;
  private troubleSince = Number.NEGATIVE_INFINITY;
  /**
   * Bumped by every cache event that can change a pod's desired plan (Routes, Services,
   * namespaces, owners): a plan written at an older world may be stale by its echo.
   */
  private world = 0;
  /** Plans we patched, by pod key, until the watch echoes them (see onPod). */
  private readonly written = new Map<string, { value: string | undefined; world: number }>();
  /** When the last Route change that queued pods arrived, until its first patch is sent (debug log). */
  private routeChangedAt: number | undefined;
  /** Echoes of our own patches recognised and not reconciled again (tests, diagnostics). */
  echoesSkipped = 0;

  constructor(private readonly opts: ControllerOptions) {
    this.log = opts.log ?? silentLogger;
    this.clock = opts.clock ?? realClock;
    this.limiter = new TokenBucket(opts.patchQps, opts.patchBurst, this.clock);
    this.queue = new WorkQueue({
      ...(opts.clock ? { clock: opts.clock } : {}),
      concurrency: opts.concurrency,
      handler: (key) => this.reconcile(key),
      retry: {},
      onError: (key, err, dropped) =>
        forPod(this.log, key).error({ err: (err as Error)?.message ?? String(err), dropped }, 'pod reconcile failed'),
    });
    this.events = new EventRecorder({
      create: opts.api.createEvent,
      instance: opts.identity,
      onRecorded: (reason) => opts.metrics?.observeEvent(reason),
      onError: (err, route, reason) =>
        forRoute(this.log, route).warn({ reason, err: classifyApiError(err).message }, 'could not record an Event on a Route'),
    });
  }

  /** Whether a term is running. */
  isRunning(): boolean {
    return this.running;
  }

  /**
   * Begin a term: subscribe to the caches, wait until they (and the pod cache) have synced,
   * then queue every pod and Route. Resolves once the initial work is queued.
   */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const term = ++this.term;
    const { caches, pods } = this.opts;
    this.unsubscribe = [
      caches.onRouteChange((ev) => this.onRoute(ev)),
      caches.onServiceChange((ev) => this.onService(ev)),
      caches.onNamespaceChange((ev) => {
        if (namespaceChanged(ev)) {
          this.world++;
          this.addAll(pods.list(ev.object.metadata?.name ?? '').map(podKey));
        }
      }),
      caches.onReplicaSetChange((ev) => this.onOwner('ReplicaSet', ev)),
      caches.onJobChange((ev) => this.onOwner('Job', ev)),
      pods.onChange((ev) => this.onPod(ev)),
    ];
    await Promise.all([caches.synced, pods.synced]);
    if (term !== this.term) return;
    this.queue.start();
    this.resync();
    if (this.opts.resyncPeriodMs > 0) {
      this.resyncTimer = setInterval(() => this.resync(), this.opts.resyncPeriodMs);
      this.resyncTimer.unref();
    }
    this.log.info({ pods: pods.size, routes: caches.routes.size }, 'controller started: every pod queued');
  }

  /** End the term: stop taking work, wait for patches in flight, forget all state. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.term++;
    for (const u of this.unsubscribe) u();
    this.unsubscribe = [];
    clearInterval(this.resyncTimer);
    clearTimeout(this.statusTimer);
    this.statusTimer = undefined;
    await this.queue.stop();
    await this.flushing;
    this.written.clear();
    this.dirtyRoutes.clear();
    this.index.clear();
    this.log.info({}, 'controller stopped');
  }

  /** Re-queue every pod and mark every Route. */
  resync(): void {
    this.addAll(this.opts.pods.list().map(podKey));
    this.markRoutes(this.opts.caches.routes.list().map((r) => r.metadata?.name ?? ''));
  }

  private addAll(keys: Iterable<string>): void {
    for (const k of keys) this.queue.add(k);
  }

  private onRoute(ev: ChangeEvent<Route>): void {
    const { caches, pods } = this.opts;
    const versions = routeVersionsOf(ev);
    // A status-only update (our own status writes, every second while pods converge) changes
    // no plan: it must not make the echoes of the patches in flight look stale.
    if (versions.length) {
      this.world++;
      const t0 = performance.now();
      const keys = podsSelectedBy(versions, pods, caches);
      if (keys.length) this.routeChangedAt = t0;
      this.addAll(keys);
      forRoute(this.log, ev.object.metadata?.name ?? '').debug(
        { event: ev.type, pods: keys.length, selectMs: Math.round((performance.now() - t0) * 10) / 10 },
        'Route changed: pods queued',
      );
    }
    // Also for status-only updates: a status someone else wrote is put right.
    if (ev.type !== 'delete') this.markRoutes([ev.object.metadata?.name ?? '']);
  }

  private onService(ev: ChangeEvent<Service>): void {
    if (!serviceChanged(ev)) return;
    this.world++;
    const refs = routesReferencing(this.opts.caches.routes.list(), ev.object.metadata?.namespace ?? '', ev.object.metadata?.name ?? '');
    this.addAll(podsSelectedBy(refs, this.opts.pods, this.opts.caches));
    this.markRoutes(refs.map((r) => r.metadata?.name ?? ''));
  }

  private onOwner(kind: string, ev: ChangeEvent<KubeObject>): void {
    if (!ownerChanged(ev)) return;
    this.world++;
    this.addAll(podsOwnedBy(this.opts.pods, kind, ev.object.metadata?.namespace ?? '', ev.object.metadata?.name ?? ''));
  }

  private onPod(ev: ChangeEvent<CachedPod>): void {
    const key = podKey(ev.object);
    const written = this.written.get(key);
    if (written) this.written.delete(key);
    if (ev.type === 'delete') this.markRoutes(this.index.set(key, undefined));
    else if (written && written.world === this.world && isPlanEcho(ev, written.value)) {
      // The watch echoing our own patch, with nothing else changed (pod or world): the pod
      // already carries the plan its reconcile decided, and its record is up to date.
      this.echoesSkipped++;
    } else if (podChanged(ev)) this.queue.add(key);
  }

  /** Bring one pod's plan annotation to what it must be now. */
  async reconcile(key: string): Promise<WorkResult> {
    const started = performance.now();
    const done = (result: Parameters<ControllerMetrics['observeReconcile']>[0], r: WorkResult): WorkResult => {
      this.opts.metrics?.observeReconcile(result, (performance.now() - started) / 1000);
      return r;
    };
    const { namespace, name } = splitPodKey(key);
    const pod = this.opts.pods.get(name, namespace);
    if (!pod || podIsDone(pod)) {
      this.markRoutes(this.index.set(key, undefined));
      return done(pod ? 'skipped' : 'gone', 'done');
    }
    const worldAtDecision = this.world;
    const decision = desiredPlan(pod, this.opts.caches, { mode: this.opts.mode, keys: this.opts.keys });
    const desired = decision.action === 'set' ? decision.value : undefined;
    this.markRoutes(this.index.set(key, podRecord(decision, decodeInjectorStatus(pod.metadata.annotations?.[STATUS_ANNOTATION]))));
    const ops = planPatch(pod, desired);
    if (!ops) return done('unchanged', 'done');
    const previous = this.previousPlan(pod.metadata.annotations?.[PLAN_ANNOTATION], namespace);
    await this.limiter.take();
    if (!this.running) return done('skipped', 'done');
    let stored: unknown;
    // Recorded before the patch is sent: the watch may deliver its echo before the patch's
    // own answer has been read. Unless the world moves meanwhile, that echo needs no reconcile.
    this.written.set(key, { value: desired, world: worldAtDecision });
    const sentAt = this.clock.now();
    if (this.routeChangedAt !== undefined) {
      this.log.debug({ ms: Math.round((performance.now() - this.routeChangedAt) * 10) / 10 }, 'first pod patch after a Route change sent');
      this.routeChangedAt = undefined;
    }
    try {
      stored = await this.opts.api.patchPod(namespace, name, ops);
      this.troubleLevel = 0;
    } catch (e) {
      this.forgetWritten(key, desired);
      const retry = this.patchFailed(key, e, sentAt);
      return retry === 'gone' ? done('gone', 'done') : done('error', retry);
    }
    if (this.rewrittenByAdmission(key, stored, desired)) {
      this.forgetWritten(key, desired);
      return done('error', 'retry');
    }
    const action = desired === undefined ? 'remove' : 'set';
    this.opts.metrics?.observePatched(action, previous);
    forPod(this.log, key)[previous === 'foreign' ? 'warn' : 'debug'](
      { action, previous, reason: decision.action === 'remove' ? decision.reason : undefined },
      previous === 'foreign' ? 'replaced a plan annotation the system did not compute' : 'pod plan annotation updated',
    );
    return done('patched', 'done');
  }

  /** Count and log a failed patch; when to retry it ('gone': the pod no longer exists). */
  private patchFailed(key: string, e: unknown, sentAt: number): WorkResult | 'gone' {
    const f = classifyApiError(e);
    if (f.action === 'gone') return 'gone';
    this.opts.metrics?.observePatchFailure(f.reason);
    const level = f.reason === 'conflict' ? 'debug' : 'warn';
    forPod(this.log, key)[level](
      { status: f.status, reason: f.reason, err: f.message, retryAfterMs: f.retryAfterMs },
      'pod patch failed; retrying',
    );
    if (f.retryAfterMs === undefined) {
      if (f.reason === 'server' || f.reason === 'network' || f.reason === 'throttled') this.serverTrouble(sentAt);
      return 'retry';
    }
    // The server said when (API Priority and Fairness: our flow's queue is full): no patch
    // of ours goes before then, not only this pod's; the workers wait at the bucket instead
    // of each drawing its own 429. This pod comes back after Retry-After (plus 0-20 %).
    this.limiter.pause(f.retryAfterMs);
    return { retryAfterMs: f.retryAfterMs };
  }

  /**
   * A patch failed the way the whole API server fails (5xx, no answer, 429 without
   * Retry-After): hold every write of ours for a back-off (200 ms doubling to 5 s, +-20 %),
   * instead of letting the workers run through the whole queue, each key failing and coming
   * back on its own back-off (a 3000-pod edit during an outage would otherwise be attempts
   * at the token bucket's full rate). A failure of a patch sent before the last pause began
   * is the same trouble, seen by another worker: it does not lengthen the pause. The first
   * patch that succeeds ends it.
   */
  private serverTrouble(sentAt: number): void {
    if (sentAt <= this.troubleSince) return;
    this.troubleSince = this.clock.now();
    this.limiter.pause(backoffMs(this.troubleLevel++, { initialMs: 200, maxMs: 5000 }));
  }

  /** What the pod carried before our patch: no plan, a plan we signed, or someone else's. */
  private previousPlan(current: string | undefined, namespace: string): 'none' | 'ours' | 'foreign' {
    if (current === undefined) return 'none';
    return isSystemSigned(current, namespace, this.opts.keys) ? 'ours' : 'foreign';
  }

  /**
   * What the API server stored can differ from what we sent: admission runs on our UPDATE
   * too, and a replica that does not know our signing key (one of the previous ReplicaSet
   * while a key rotation rolls out) re-signs the plan with its own. When that is the pod's
   * value already, the server stores no change and sends no watch event: nothing would bring
   * the pod back. True (retry with back-off, until a replica keeps our plan) in that case.
   */
  private rewrittenByAdmission(key: string, stored: unknown, desired: string | undefined): boolean {
    const kept = storedPlan(stored);
    if (kept === NOT_A_POD || kept === desired) return false;
    this.opts.metrics?.observePatchFailure('rewritten');
    forPod(this.log, key).info(
      { stored: kept === undefined ? 'none' : 'other' },
      'admission stored another plan than the patch wrote (a replica with other keys?); retrying',
    );
    return true;
  }

  /** A patch that failed has no echo: forget what it would have written (unless a newer patch replaced it). */
  private forgetWritten(key: string, value: string | undefined): void {
    if (this.written.get(key)?.value === value) this.written.delete(key);
  }

  private markRoutes(names: Iterable<string>): void {
    for (const n of names) if (n) this.dirtyRoutes.add(n);
    if (this.dirtyRoutes.size && this.running && !this.statusTimer && !this.flushing) {
      // Back off while writes fail; otherwise at most one batch every statusDelayMs.
      const base = this.opts.statusDelayMs ?? 1000;
      const delay = this.statusFailures ? backoffMs(this.statusFailures, { initialMs: base, maxMs: Math.min(60_000, base * 64) }) : base;
      this.statusTimer = setTimeout(() => {
        this.statusTimer = undefined;
        this.flushing = this.flushStatus().finally(() => {
          this.flushing = undefined;
          this.markRoutes([]);
        });
      }, delay);
      this.statusTimer.unref();
    }
  }

  /** Write the status (and Events) of every marked Route whose status changed. */
  private async flushStatus(): Promise<void> {
    const names = [...this.dirtyRoutes].sort();
    this.dirtyRoutes.clear();
    let failed = false;
    for (const name of names) {
      if (!this.running) return;
      const route = this.opts.caches.routes.get(name);
      if (!route) continue;
      const { status, events } = routeStatus({
        route,
        aggregate: this.index.aggregate(name),
        service: this.opts.caches.service,
        now: new Date(),
      });
      await this.events.record(route, events);
      if (statusEqual(route.status, status)) continue;
      await this.limiter.take();
      try {
        await this.opts.api.patchRouteStatus(name, statusPatch(route, status));
        this.opts.metrics?.observeStatusWrite('success');
        forRoute(this.log, name).debug(
          { status: status.status, matchedPods: status.matchedPods, appliedPods: status.appliedPods },
          'Route status written',
        );
      } catch (e) {
        const f = classifyApiError(e);
        if (f.action === 'gone') continue;
        // A conflict means the cache lags our last write or a spec edit: look again once it caught up.
        this.opts.metrics?.observeStatusWrite(f.reason === 'conflict' ? 'conflict' : 'error');
        if (f.retryAfterMs !== undefined) this.limiter.pause(f.retryAfterMs);
        if (f.reason !== 'conflict') {
          failed = true;
          forRoute(this.log, name).warn({ status: f.status, err: f.message }, 'Route status write failed; retrying');
        }
        this.dirtyRoutes.add(name);
      }
    }
    this.statusFailures = failed ? this.statusFailures + 1 : 0;
  }
}

const NOT_A_POD = Symbol('not a pod');

/** The plan annotation of a patch's answer (the pod as stored), or NOT_A_POD when it is not a pod. */
function storedPlan(stored: unknown): string | undefined | typeof NOT_A_POD {
  if (typeof stored !== 'object' || stored === null) return NOT_A_POD;
  const meta = (stored as { metadata?: { annotations?: Record<string, string> } }).metadata;
  if (typeof meta !== 'object' || meta === null) return NOT_A_POD;
  return meta.annotations?.[PLAN_ANNOTATION];
}
