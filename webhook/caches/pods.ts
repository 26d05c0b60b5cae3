/**
 * The controller's Pod cache: every pod of the cluster, cut down to what plan resolution,
 * patching and Route status read. Pods are the largest and most numerous objects the
 * process holds, so the transform keeps only:
 *   metadata: name, generateName, namespace, uid, resourceVersion, labels, ownerReferences
 *             (kind/name/controller), deletionTimestamp, and of the annotations only the plan
 *             and the injector's report (an empty map when the pod has only others);
 *   spec:     hostNetwork, nodeName;  status: phase.
 * Same style as webhook/caches/caches.ts: an ObjectStore fed by an Informer (list+watch, relist on
 * 410 Gone, restart with backoff); `podStoreFromObjects()` fills the same store for tests.
 */
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { PLAN_ANNOTATION, STATUS_ANNOTATION, type Pod } from '../../core/types.js';
import { Informer, type InformerObserver, type ListResult, type WatchLike } from './informer.js';
import { apiClient, DeadlineWatch, DEFAULT_API_TIMEOUT_MS, InFlight, type WatchDeadlines } from '../../platform/kube-client.js';
import { ObjectStore, type HandlerErrorReporter } from './store.js';

/** A pod as the controller caches it (see the module comment for what is kept). */
export interface CachedPod extends Pod {
  metadata: NonNullable<Pod['metadata']> & { deletionTimestamp?: string };
}

const KEPT_ANNOTATIONS = [PLAN_ANNOTATION, STATUS_ANNOTATION];

/** Keep only what the controller reads; see the module comment. */
export function slimPod(pod: Pod): CachedPod {
  const m = (pod.metadata ?? {}) as CachedPod['metadata'];
  const annotations: Record<string, string> = {};
  for (const k of KEPT_ANNOTATIONS) {
    const v = m.annotations?.[k];
    if (typeof v === 'string') annotations[k] = v;
  }
  const meta: CachedPod['metadata'] = { name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion };
  if (m.generateName) meta.generateName = m.generateName;
  if (m.labels) meta.labels = m.labels;
  // An empty map still says "this pod has annotations": a patch must then add our key to
  // the map, never replace the map (webhook/controller/patch.ts).
  if (m.annotations && Object.keys(m.annotations).length) meta.annotations = annotations;
  if (m.ownerReferences?.length) {
    meta.ownerReferences = m.ownerReferences.map((r) => ({ kind: r.kind, name: r.name, ...(r.controller ? { controller: true } : {}) }));
  }
  // client-node hands Dates for timestamps; keep a string either way.
  const deletion = (m as { deletionTimestamp?: unknown }).deletionTimestamp;
  if (deletion) meta.deletionTimestamp = deletion instanceof Date ? deletion.toISOString() : String(deletion);
  const spec: NonNullable<Pod['spec']> = {};
  if (pod.spec?.hostNetwork) spec.hostNetwork = true;
  if (pod.spec?.nodeName) spec.nodeName = pod.spec.nodeName;
  return { apiVersion: 'v1', kind: 'Pod', metadata: meta, spec, ...(pod.status?.phase ? { status: { phase: pod.status.phase } } : {}) };
}

/** `namespace/name`, the work-queue key of a pod. */
export function podKey(pod: Pod): string {
  return `${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`;
}

/** Split a pod key back into namespace and name. */
export function splitPodKey(key: string): { namespace: string; name: string } {
  const i = key.indexOf('/');
  return { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

/**
 * Whether the controller leaves the pod alone: it is being deleted, or it has finished
 * (Succeeded/Failed pods have no network namespace left to route).
 */
export function podIsDone(pod: CachedPod): boolean {
  const phase = pod.status?.phase;
  return !!pod.metadata.deletionTimestamp || phase === 'Succeeded' || phase === 'Failed';
}

/** A pod store filled from plain objects (slimmed like the informer does) and synced. */
export function podStoreFromObjects(pods: Pod[] = [], report?: HandlerErrorReporter): ObjectStore<CachedPod> {
  const store = new ObjectStore<CachedPod>('pods', report);
  store.replace(pods.map(slimPod));
  return store;
}

export interface PodInformerOptions {
  observer?: InformerObserver;
  report?: HandlerErrorReporter;
  backoff?: { initialMs?: number; maxMs?: number };
  watchTimeoutSeconds?: number;
  /** Deadline of every list request. Default 60 s. */
  apiTimeoutMs?: number;
  watchDeadlines?: WatchDeadlines;
  watch?: WatchLike;
}

/**
 * The pods of every namespace, list+watch against `kc`'s API server into a slim store.
 * Needs get/list/watch on pods cluster-wide. Call `informer.start()`, then await `store.synced`.
 */
export function podsFromApi(
  kc: KubeConfig,
  opts: PodInformerOptions = {},
): { store: ObjectStore<CachedPod>; informer: Informer<CachedPod> } {
  const inflight = new InFlight();
  const core = apiClient(kc, CoreV1Api, opts.apiTimeoutMs ?? DEFAULT_API_TIMEOUT_MS, inflight);
  const store = new ObjectStore<CachedPod>('pods', opts.report);
  const informer = new Informer<CachedPod>({
    store,
    path: '/api/v1/pods',
    inflight,
    list: () => core.listPodForAllNamespaces() as Promise<ListResult>,
    watch: opts.watch ?? new DeadlineWatch(kc, opts.watchDeadlines),
    transform: slimPod as (p: CachedPod) => CachedPod,
    ...(opts.observer ? { observer: opts.observer } : {}),
    ...(opts.backoff ? { backoff: opts.backoff } : {}),
    ...(opts.watchTimeoutSeconds ? { watchTimeoutSeconds: opts.watchTimeoutSeconds } : {}),
  });
  return { store, informer };
}
