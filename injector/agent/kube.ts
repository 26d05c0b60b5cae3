/**
 * The agent's Kubernetes I/O, with @kubernetes/client-node 1.4 (list/watch through
 * RetryingListWatch, agent-listwatch.ts: restarts with back-off, bounded watches with
 * bookmarks, 410 Gone -> relist, `synced` after the first full list):
 *
 * - PodSource: the pods of one node (fieldSelector spec.nodeName=<node>), turned into
 *   add/update/delete calls, plus `podsSynced` once the first full list is in.
 * - NamespaceSource: every namespace of the cluster, kept as name and labels only (the
 *   agent reads nothing else: the routes.k8s.ovn.org/inject opt-out label), plus
 *   `namespacesSynced` once the first full list is in.
 * - kubeSink: the KubeSink of report.ts: a JSON merge patch of the status annotation, a
 *   strategic merge patch of the ready condition on the status subresource (both carry
 *   metadata.uid: for a same-named successor pod the API refuses the write with 422, since
 *   the UID is immutable, so it is never written), and core/v1 Events.
 */
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1Namespace, type V1Pod } from '@kubernetes/client-node';
import type { Namespace, Pod } from '../../core/types.js';
import type { Logger } from '../../platform/log.js';
import { eventObject } from '../../platform/events.js';
import { RetryingListWatch } from './listwatch.js';
import { apiClient, DEFAULT_API_TIMEOUT_MS, InFlight, type WatchDeadlines, type WatchFn } from '../../platform/kube-client.js';
import type { KubeSink } from '../report/report.js';

/** How a source talks to the API server: deadlines, back-off, and hooks (all optional). */
export interface SourceOptions {
  random?: () => number;
  /** Deadline of the list request. Default 60 s. */
  apiTimeoutMs?: number;
  watchDeadlines?: WatchDeadlines;
  maxBackoffMs?: number;
  /** Watch implementation (default: DeadlineWatch). */
  watch?: WatchFn;
  /** Called on every failed list or watch (metrics). */
  onFailure?: (err: unknown) => void;
  /** Clock for progress (tests). */
  now?: () => number;
}

/**
 * Liveness of list+watch loops: not alive when one made no progress (list, event, bookmark,
 * watch start, retry) for more than `boundMs`. Every request and watch has a deadline, so a
 * live loop always progresses; this catches one that waits on something without one.
 */
export function listWatchLiveness(
  sources: readonly { what: string; stalled(): { ms: number; last: string } | undefined }[],
  boundMs: number,
): { alive: boolean; detail: string } {
  const stuck: string[] = [];
  for (const src of sources) {
    const s = src.stalled();
    if (s && s.ms > boundMs) stuck.push(`${src.what} (no progress for ${Math.round(s.ms / 1000)} s; last: ${s.last})`);
  }
  return stuck.length ? { alive: false, detail: `list/watch loop stalled: ${stuck.join(', ')}` } : { alive: true, detail: 'ok' };
}

const lwOptions = (o: SourceOptions) => ({
  ...(o.random ? { random: o.random } : {}),
  ...(o.watchDeadlines ? { watchDeadlines: o.watchDeadlines } : {}),
  ...(o.maxBackoffMs ? { maxBackoffMs: o.maxBackoffMs } : {}),
  ...(o.watch ? { watch: o.watch } : {}),
  ...(o.onFailure ? { onFailure: o.onFailure } : {}),
  ...(o.now ? { now: o.now } : {}),
});

/** What the pod source calls; the Agent implements it. */
export interface PodHandler {
  podAdded(pod: Pod): void;
  podUpdated(pod: Pod): void;
  podDeleted(pod: Pod): void;
  /** The first full list of the node's pods has been delivered. */
  podsSynced(): void;
}

/** What the namespace source calls; the Agent implements it. */
export interface NamespaceHandler {
  namespaceAdded(ns: Namespace): void;
  namespaceUpdated(ns: Namespace): void;
  namespaceDeleted(ns: Namespace): void;
  /** The first full list of namespaces has been delivered. */
  namespacesSynced(): void;
}

/** What both sources are: one retrying list+watch loop, started, stopped and watched for stalls. */
abstract class ListWatchSource<T extends V1Pod | V1Namespace> {
  protected abstract readonly lw: RetryingListWatch<T>;

  start(): void {
    this.lw.start();
  }

  stop(): Promise<void> {
    return this.lw.stop();
  }

  /** Time since the list+watch loop last progressed (undefined: stopped). */
  stalled(): { ms: number; last: string } | undefined {
    return this.lw.stalled();
  }
}

/** List+watch of the pods of one node. start() then stop(). */
export class PodSource extends ListWatchSource<V1Pod> {
  readonly what: string;
  protected readonly lw: RetryingListWatch<V1Pod>;

  constructor(
    kc: KubeConfig,
    readonly nodeName: string,
    handler: PodHandler,
    log: Logger,
    o: SourceOptions = {},
  ) {
    super();
    const inflight = new InFlight();
    const core = apiClient(kc, CoreV1Api, o.apiTimeoutMs ?? DEFAULT_API_TIMEOUT_MS, inflight);
    const fieldSelector = `spec.nodeName=${nodeName}`;
    this.what = `pods of node ${nodeName}`;
    this.lw = new RetryingListWatch<V1Pod>(kc, {
      what: `pods of node ${nodeName}`,
      path: '/api/v1/pods',
      fieldSelector,
      log,
      inflight,
      ...lwOptions(o),
      list: () => core.listPodForAllNamespaces({ fieldSelector }),
      handler: {
        added: (p) => handler.podAdded(p as Pod),
        updated: (p) => handler.podUpdated(p as Pod),
        deleted: (p) => handler.podDeleted(p as Pod),
        synced: () => handler.podsSynced(),
      },
    });
  }
}

/** A namespace reduced to what the agent reads: name, resourceVersion (for the watch), labels. */
export function namespaceLabelsOnly(ns: V1Namespace): V1Namespace {
  const m = ns.metadata ?? {};
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: m.name, resourceVersion: m.resourceVersion, ...(m.labels ? { labels: m.labels } : {}) },
  };
}

/** List+watch of all namespaces (labels only). start() then stop(). */
export class NamespaceSource extends ListWatchSource<V1Namespace> {
  readonly what = 'namespaces';
  protected readonly lw: RetryingListWatch<V1Namespace>;

  constructor(kc: KubeConfig, handler: NamespaceHandler, log: Logger, o: SourceOptions = {}) {
    super();
    const inflight = new InFlight();
    const core = apiClient(kc, CoreV1Api, o.apiTimeoutMs ?? DEFAULT_API_TIMEOUT_MS, inflight);
    this.lw = new RetryingListWatch<V1Namespace>(kc, {
      what: 'namespaces',
      path: '/api/v1/namespaces',
      log,
      inflight,
      ...lwOptions(o),
      list: () => core.listNamespace({}),
      transform: namespaceLabelsOnly,
      handler: {
        added: (n) => handler.namespaceAdded(n as Namespace),
        updated: (n) => handler.namespaceUpdated(n as Namespace),
        deleted: (n) => handler.namespaceDeleted(n as Namespace),
        synced: () => handler.namespacesSynced(),
      },
    });
  }
}

/** The production KubeSink: writes through the API server as the agent's service account. */
export function kubeSink(
  kc: KubeConfig,
  nodeName: string,
  now: () => Date = () => new Date(),
  timeoutMs: number = DEFAULT_API_TIMEOUT_MS,
): KubeSink {
  const core = apiClient(kc, CoreV1Api, timeoutMs);
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  const strategic = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
  return {
    async patchPodAnnotations(pod, annotations) {
      await core.patchNamespacedPod({ name: pod.name, namespace: pod.namespace, body: { metadata: { uid: pod.uid, annotations } } }, merge);
    },
    async patchPodCondition(pod, condition) {
      await core.patchNamespacedPodStatus(
        {
          name: pod.name,
          namespace: pod.namespace,
          body: { metadata: { uid: pod.uid }, status: { conditions: [condition] } },
        },
        strategic,
      );
    },
    async createEvent(pod, ev) {
      await core.createNamespacedEvent({
        namespace: pod.namespace,
        body: eventObject({
          involved: { apiVersion: 'v1', kind: 'Pod', name: pod.name, namespace: pod.namespace, uid: pod.uid },
          namespace: pod.namespace,
          generateName: `${pod.name}.`,
          type: ev.type,
          reason: ev.reason,
          message: ev.message,
          component: 'ovnkube-route-injector',
          instance: nodeName,
          host: nodeName,
          now: now(),
        }) as never,
      });
    },
  };
}
