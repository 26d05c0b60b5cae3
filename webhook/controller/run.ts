/**
 * Runs the controller half of the webhook process: the pod cache (on every replica, so a
 * new leader starts warm), the leader election, and the Controller for each term won.
 * webhook/main.ts calls `startController()` with the caches it already runs.
 */
import { CoordinationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Registry } from 'prom-client';
import type { PlanKey } from '../../core/plan-codec.js';
import type { InjectMode } from '../../core/resolve.js';
import type { ClusterCaches } from '../caches/caches.js';
import { Controller, controllerApi, type Logger } from './controller.js';
import type { ControllerConfig } from './config.js';
import { createControllerMetrics } from './metrics.js';
import type { InformerObserver } from '../caches/informer.js';
import { apiClient, type WatchDeadlines } from '../../platform/kube-client.js';
import { LeaderElector } from './leader.js';
import { podsFromApi } from '../caches/pods.js';

export interface StartControllerOptions {
  kc: KubeConfig;
  config: ControllerConfig;
  caches: ClusterCaches;
  mode: InjectMode;
  keys: readonly PlanKey[];
  registry: Registry;
  log: Logger;
  /** Hooks of the pod informer (the webhook's cache metrics and logs). */
  observer?: InformerObserver;
  /** Deadline of every API request (pod list, patches, Events). Default 60 s. */
  apiTimeoutMs?: number;
  /** Connect and idle deadlines of the pod watch. */
  watchDeadlines?: WatchDeadlines;
}

export interface RunningController {
  identity: string;
  elector: LeaderElector;
  controller: Controller;
  /** Stop leading (releasing the Lease), stop the controller and the pod cache. */
  stop(): Promise<void>;
  /** Milliseconds since the pod cache's list+watch loop last progressed (undefined: stopped). */
  podsStalled(): { ms: number; last: string } | undefined;
}

/** This replica's default identity: host name (the pod name in a cluster) and a random suffix. */
export function defaultIdentity(): string {
  return `${hostname()}_${randomBytes(4).toString('hex')}`;
}

/** Start the pod cache and the leader election; the controller runs while this replica leads. */
export function startController(opts: StartControllerOptions): RunningController {
  const { kc, config, log } = opts;
  const identity = config.leaderId ?? defaultIdentity();
  const pods = podsFromApi(kc, {
    ...(opts.observer ? { observer: opts.observer } : {}),
    report: (err, ev) => log.error({ err, resource: ev.resource, type: ev.type }, 'pod cache subscriber failed'),
    ...(opts.apiTimeoutMs ? { apiTimeoutMs: opts.apiTimeoutMs } : {}),
    ...(opts.watchDeadlines ? { watchDeadlines: opts.watchDeadlines } : {}),
  });
  // The gauges read the controller and the elector when scraped (both exist by then).
  const metrics = createControllerMetrics(opts.registry, {
    queueDepth: () => controller.queue.depth,
    queueRetrying: () => controller.queue.retrying,
    podsCached: () => pods.store.size,
    isLeader: () => elector.isLeader(),
  });
  const controller = new Controller({
    caches: opts.caches,
    pods: pods.store,
    api: controllerApi(kc, opts.apiTimeoutMs),
    mode: opts.mode,
    keys: opts.keys,
    identity,
    patchQps: config.patchQps,
    patchBurst: config.patchBurst,
    concurrency: config.patchConcurrency,
    resyncPeriodMs: config.resyncPeriodMs,
    log,
    metrics,
  });
  const elector = new LeaderElector({
    // A Lease call may not outlast the renew deadline (client-go bounds it the same way).
    api: apiClient(kc, CoordinationV1Api, Math.min(config.renewDeadlineMs, opts.apiTimeoutMs ?? config.renewDeadlineMs)),
    namespace: config.leaseNamespace,
    name: config.leaseName,
    identity,
    leaseDurationMs: config.leaseDurationMs,
    renewDeadlineMs: config.renewDeadlineMs,
    retryPeriodMs: config.retryPeriodMs,
    onStartedLeading: () => {
      metrics.observeLeadership(true);
      log.info({ identity, lease: `${config.leaseNamespace}/${config.leaseName}` }, 'became the leader: controller starting');
      controller.start().catch((e) => log.error({ err: (e as Error).message }, 'controller failed to start'));
    },
    onStoppedLeading: async () => {
      metrics.observeLeadership(false);
      log.info({ identity }, 'no longer the leader: controller stopping');
      // Also right while start() still waits for the caches to sync (it then never begins).
      await controller.stop();
    },
    onNewLeader: (id) => {
      if (id !== identity) log.info({ leader: id }, 'another replica leads');
    },
    onError: (err) => log.warn({ err: (err as Error)?.message ?? String(err) }, 'leader election: Lease read/write failed; retrying'),
  });
  pods.informer.start();
  const ac = new AbortController();
  const running = elector.run(ac.signal);
  return {
    identity,
    elector,
    controller,
    podsStalled: () => pods.informer.stalled(),
    async stop() {
      ac.abort();
      // run() ends once the term's controller has stopped and the Lease is released.
      await running;
      await pods.informer.stop();
    },
  };
}
