/**
 * The shared informer caches of the control-plane process. The admission webhook reads
 * them on every request (no API calls on the request path); the controller subscribes to
 * their change hooks to re-stamp pods when Routes, Services or namespace labels change.
 *
 * One ClusterCaches holds one ObjectStore per resource. `cachesFromApi()` backs each store
 * with an Informer (list+watch against the API server); `cachesFromObjects()` fills the
 * same stores from plain object lists, for tests and offline use. Everything downstream
 * (admission, the controller) sees the same API either way.
 *
 * Memory: ReplicaSets and Jobs are kept as metadata only (owner chains need nothing
 * else, and their pod templates are large); managedFields are dropped everywhere.
 */
import { AppsV1Api, BatchV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, ROUTE_PLURAL, type KubeObject, type Namespace, type Route, type Service } from '../../core/types.js';
import { Informer, type InformerObserver, type InformerStats, type ListResult, type WatchLike } from './informer.js';
import { apiClient, DeadlineWatch, DEFAULT_API_TIMEOUT_MS, InFlight, type WatchDeadlines } from '../../platform/kube-client.js';
import { ObjectStore, type ChangeHandler, type HandlerErrorReporter, type ReadableStore } from './store.js';

/** The resources the caches hold, by the name used in metrics and `sizes()`. */
export const CACHED_RESOURCES = ['routes', 'namespaces', 'services', 'replicasets', 'jobs'] as const;
export type CachedResource = (typeof CACHED_RESOURCES)[number];

/** Owner kinds whose objects the caches hold, for ownerChain(). */
const OWNER_STORE: Record<string, 'replicaSets' | 'jobs'> = { ReplicaSet: 'replicaSets', Job: 'jobs' };

/** Plain objects to build caches from (tests, offline tools). */
export interface CacheObjects {
  routes?: Route[];
  namespaces?: Namespace[];
  services?: Service[];
  replicaSets?: KubeObject[];
  jobs?: KubeObject[];
}

/** Shared read-only caches of Routes, Namespaces, Services, ReplicaSets and Jobs. */
export class ClusterCaches {
  readonly routes: ReadableStore<Route>;
  readonly namespaces: ReadableStore<Namespace>;
  readonly services: ReadableStore<Service>;
  readonly replicaSets: ReadableStore<KubeObject>;
  readonly jobs: ReadableStore<KubeObject>;
  /** Resolves once every store has applied its first full list. */
  readonly synced: Promise<void>;
  private readonly stores: Record<CachedResource, ObjectStore<KubeObject>>;
  private readonly informers: Partial<Record<CachedResource, Informer<KubeObject>>>;
  private allSynced = false;

  /**
   * Prefer the factories (`cachesFromApi`, `cachesFromObjects`). `informers` feed the
   * stores once `start()` is called; without informers the stores are filled by the caller.
   */
  constructor(
    stores: Record<CachedResource, ObjectStore<KubeObject>>,
    informers: Partial<Record<CachedResource, Informer<KubeObject>>> = {},
  ) {
    this.stores = stores;
    this.informers = informers;
    this.routes = stores.routes as ObjectStore<Route>;
    this.namespaces = stores.namespaces;
    this.services = stores.services as ObjectStore<Service>;
    this.replicaSets = stores.replicasets;
    this.jobs = stores.jobs;
    this.synced = Promise.all(CACHED_RESOURCES.map((r) => stores[r].synced)).then(() => undefined);
  }

  /** Start every informer (no-op for caches built from objects). */
  start(): void {
    for (const i of Object.values(this.informers)) i.start();
  }

  /** Stop every informer; the stores keep their last content. */
  async stop(): Promise<void> {
    await Promise.all(Object.values(this.informers).map((i) => i.stop()));
  }

  /** True once every store has applied its first full list (what /readyz reports). */
  isSynced(): boolean {
    // Asked on every admission request; a store never becomes unsynced again.
    if (!this.allSynced) this.allSynced = CACHED_RESOURCES.every((r) => this.stores[r].isSynced());
    return this.allSynced;
  }

  /**
   * A number that changes whenever the content of any store changes (the sum of their change
   * counts, webhook/caches/store.ts): equal versions mean the same Routes, Namespaces,
   * Services, ReplicaSets and Jobs, so what was computed from them still holds (the plan memo
   * of webhook/plan.ts relies on it).
   */
  version(): number {
    let v = 0;
    for (const r of CACHED_RESOURCES) v += this.stores[r].changes;
    return v;
  }

  /** Per-resource synced flags, for metrics and /readyz's message. */
  syncedByResource(): Record<CachedResource, boolean> {
    return Object.fromEntries(CACHED_RESOURCES.map((r) => [r, this.stores[r].isSynced()])) as Record<CachedResource, boolean>;
  }

  /** Number of objects per resource. */
  sizes(): Record<CachedResource, number> {
    return Object.fromEntries(CACHED_RESOURCES.map((r) => [r, this.stores[r].size])) as Record<CachedResource, number>;
  }

  /**
   * The informers whose list+watch loop made no progress for more than `boundMs` (a dead
   * loop; /healthz reports them), with how long and what their last progress was.
   */
  stalled(boundMs: number): { resource: CachedResource; ms: number; last: string }[] {
    const out: { resource: CachedResource; ms: number; last: string }[] = [];
    for (const r of CACHED_RESOURCES) {
      const s = this.informers[r]?.stalled();
      if (s && s.ms > boundMs) out.push({ resource: r, ...s });
    }
    return out;
  }

  /** Informer counters per resource (empty for caches built from objects). */
  stats(): Partial<Record<CachedResource, InformerStats>> {
    const out: Partial<Record<CachedResource, InformerStats>> = {};
    for (const r of CACHED_RESOURCES) {
      const inf = this.informers[r];
      if (inf) out[r] = inf.stats();
    }
    return out;
  }

  /** The Service `namespace/name`, or undefined. Shaped for core's ResolveContext.service. */
  readonly service = (namespace: string, name: string): Service | undefined => this.services.get(name, namespace);

  /** Owner lookup for core's ownerChain(): ReplicaSets and Jobs; other kinds end the chain. */
  readonly lookupOwner = (kind: string, namespace: string, name: string): KubeObject | undefined => {
    const store = OWNER_STORE[kind];
    return store ? this[store].get(name, namespace) : undefined;
  };

  /** Subscribe to Route changes; returns the unsubscribe function. */
  onRouteChange(handler: ChangeHandler<Route>): () => void {
    return this.routes.onChange(handler);
  }

  /** Subscribe to Service changes (old and new, so a ClusterIP change is visible). */
  onServiceChange(handler: ChangeHandler<Service>): () => void {
    return this.services.onChange(handler);
  }

  /** Subscribe to Namespace changes (old and new, so a label change is visible). */
  onNamespaceChange(handler: ChangeHandler<Namespace>): () => void {
    return this.namespaces.onChange(handler);
  }

  /** Subscribe to ReplicaSet changes (metadata only). */
  onReplicaSetChange(handler: ChangeHandler<KubeObject>): () => void {
    return this.replicaSets.onChange(handler);
  }

  /** Subscribe to Job changes (metadata only). */
  onJobChange(handler: ChangeHandler<KubeObject>): () => void {
    return this.jobs.onChange(handler);
  }
}

function newStores(report?: HandlerErrorReporter): Record<CachedResource, ObjectStore<KubeObject>> {
  return Object.fromEntries(CACHED_RESOURCES.map((r) => [r, new ObjectStore<KubeObject>(r, report)])) as Record<
    CachedResource,
    ObjectStore<KubeObject>
  >;
}

/**
 * Caches filled from plain objects and already synced. The stores are real ObjectStores,
 * so a test can drive change events through `store(resource)`.
 */
export function cachesFromObjects(
  objects: CacheObjects = {},
  report?: HandlerErrorReporter,
): ClusterCaches & {
  store(resource: CachedResource): ObjectStore<KubeObject>;
} {
  const stores = newStores(report);
  stores.routes.replace(objects.routes ?? []);
  stores.namespaces.replace(objects.namespaces ?? []);
  stores.services.replace(objects.services ?? []);
  stores.replicasets.replace(objects.replicaSets ?? []);
  stores.jobs.replace(objects.jobs ?? []);
  return Object.assign(new ClusterCaches(stores), { store: (r: CachedResource) => stores[r] });
}

/** Drop managedFields: often the largest part of an object, never read here. */
export function withoutManagedFields<T extends KubeObject>(obj: T): T {
  const m = obj.metadata as (KubeObject['metadata'] & { managedFields?: unknown }) | undefined;
  if (m && 'managedFields' in m) delete m.managedFields;
  return obj;
}

/** Keep only what ownerChain() reads (and the resourceVersion the informer needs). */
export function ownerMetadataOnly(kind: string, apiVersion: string): (obj: KubeObject) => KubeObject {
  return (obj) => {
    const m = obj.metadata ?? {};
    return {
      apiVersion,
      kind,
      metadata: {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resourceVersion: m.resourceVersion,
        ...(m.labels ? { labels: m.labels } : {}),
        ...(m.ownerReferences ? { ownerReferences: m.ownerReferences } : {}),
      },
    };
  };
}

export interface ApiCacheOptions {
  /** Informer hooks (metrics, logs). */
  observer?: InformerObserver;
  /** Where a throwing change subscriber's error goes. */
  report?: HandlerErrorReporter;
  backoff?: { initialMs?: number; maxMs?: number };
  watchTimeoutSeconds?: number;
  /** Deadline of every list request (kube-client.ts). Default 60 s. */
  apiTimeoutMs?: number;
  /** Connect and idle deadlines of every watch (kube-client.ts). */
  watchDeadlines?: WatchDeadlines;
  /** Overrides `new DeadlineWatch(kc)`, e.g. to watch through a different transport. */
  watch?: WatchLike;
}

/**
 * Informer-backed caches against the API server of `kc`. Call `start()`, then await
 * `synced` (or poll `isSynced()`). Needs get/list/watch on routes.k8s.ovn.org, namespaces,
 * services, replicasets.apps and jobs.batch, cluster-wide.
 */
export function cachesFromApi(kc: KubeConfig, opts: ApiCacheOptions = {}): ClusterCaches {
  const timeout = opts.apiTimeoutMs ?? DEFAULT_API_TIMEOUT_MS;
  const inflight = new InFlight();
  const core = apiClient(kc, CoreV1Api, timeout, inflight);
  const apps = apiClient(kc, AppsV1Api, timeout, inflight);
  const batch = apiClient(kc, BatchV1Api, timeout, inflight);
  const custom = apiClient(kc, CustomObjectsApi, timeout, inflight);
  const watch = opts.watch ?? new DeadlineWatch(kc, opts.watchDeadlines);
  const stores = newStores(opts.report);
  const lists: Record<CachedResource, { path: string; list: () => Promise<ListResult>; transform: (o: KubeObject) => KubeObject }> = {
    routes: {
      path: `/apis/${API_GROUP}/${API_VERSION}/${ROUTE_PLURAL}`,
      list: () => custom.listClusterCustomObject({ group: API_GROUP, version: API_VERSION, plural: ROUTE_PLURAL }) as Promise<ListResult>,
      transform: withoutManagedFields,
    },
    namespaces: { path: '/api/v1/namespaces', list: () => core.listNamespace() as Promise<ListResult>, transform: withoutManagedFields },
    services: {
      path: '/api/v1/services',
      list: () => core.listServiceForAllNamespaces() as Promise<ListResult>,
      transform: withoutManagedFields,
    },
    replicasets: {
      path: '/apis/apps/v1/replicasets',
      list: () => apps.listReplicaSetForAllNamespaces() as Promise<ListResult>,
      transform: ownerMetadataOnly('ReplicaSet', 'apps/v1'),
    },
    jobs: {
      path: '/apis/batch/v1/jobs',
      list: () => batch.listJobForAllNamespaces() as Promise<ListResult>,
      transform: ownerMetadataOnly('Job', 'batch/v1'),
    },
  };
  const informers = Object.fromEntries(
    CACHED_RESOURCES.map((r) => [
      r,
      new Informer<KubeObject>({
        store: stores[r],
        watch,
        inflight,
        ...lists[r],
        ...(opts.observer ? { observer: opts.observer } : {}),
        ...(opts.backoff ? { backoff: opts.backoff } : {}),
        ...(opts.watchTimeoutSeconds ? { watchTimeoutSeconds: opts.watchTimeoutSeconds } : {}),
      }),
    ]),
  );
  return new ClusterCaches(stores, informers);
}
