/**
 * Which pods a change can affect: the controller maps every cache event to exactly the pods
 * whose plan may differ now, and re-resolves only those (then patches only the ones whose
 * annotation really differs). Pure functions over the caches; no I/O.
 *
 * - Route added / deleted / spec edited: the pods its include/exclude selected before or
 *   select now (core's routeSelects on the old and the new spec). A pod neither version
 *   selects cannot be affected. Status-only updates (our own status writes) affect no pod.
 * - Service created / deleted / ClusterIP(s) or type changed: the pods selected by the
 *   Routes that have a rule for that Service.
 * - Namespace created or its labels changed: the pods of that namespace (opt-out/opt-in
 *   labels and namespaceSelectors).
 * - ReplicaSet / Job created, deleted or re-owned: the pods it owns (their owner chain).
 * - Pod added, or changed in what resolution or status reads: that pod. A pod made with
 *   generateName thus gets resolved again, with its final name, as soon as it exists.
 */
import { routeSelects } from '../../core/filters.js';
import { ownerChain, type OwnerLookup } from '../../core/owners.js';
import { PLAN_ANNOTATION, type KubeObject, type Namespace, type Route, type Service } from '../../core/types.js';
import { podKey, type CachedPod } from '../caches/pods.js';
import type { ChangeEvent } from '../caches/store.js';

/** The cache reads this module needs (ClusterCaches provides them). */
export interface SelectionSources {
  namespaces: { get(name: string): Namespace | undefined };
  lookupOwner: OwnerLookup;
}

/** The pods store's read side. */
export interface PodSource {
  list(namespace?: string): readonly CachedPod[];
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/** Keys of the pods that any of `routes` selects (or may select: name not known yet). */
export function podsSelectedBy(routes: readonly Route[], pods: PodSource, sources: SelectionSources): string[] {
  if (routes.length === 0) return [];
  const out: string[] = [];
  for (const pod of pods.list()) {
    const ns = pod.metadata.namespace ?? '';
    const subject = { pod, namespace: sources.namespaces.get(ns), owners: ownerChain(pod, sources.lookupOwner) };
    if (routes.some((r) => routeSelects(r.spec?.include, r.spec?.exclude, subject).match !== 'no')) out.push(podKey(pod));
  }
  return out;
}

/** The Route versions whose selections a Route event touches (none for status-only updates). */
export function routeVersionsOf(ev: ChangeEvent<Route>): Route[] {
  if (ev.type === 'add') return [ev.object];
  if (ev.type === 'delete') return [ev.old ?? ev.object];
  return ev.old && same(ev.old.spec, ev.object.spec) ? [] : [ev.old, ev.object].filter((r): r is Route => !!r);
}

/** Whether a Service event changes what a Service rule resolves to. */
export function serviceChanged(ev: ChangeEvent<Service>): boolean {
  if (ev.type !== 'update' || !ev.old) return true;
  const pick = (s: Service) => [s.spec?.type, s.spec?.clusterIP, s.spec?.clusterIPs, s.spec?.externalName];
  return !same(pick(ev.old), pick(ev.object));
}

/** Routes with a Service rule naming `namespace/name`. */
export function routesReferencing(routes: readonly Route[], namespace: string, name: string): Route[] {
  return routes.filter((r) => (r.spec?.svc ?? []).some((s) => s.namespace === namespace && s.name === name));
}

/** Whether a Namespace event can change its pods' plans (created, or labels changed). */
export function namespaceChanged(ev: ChangeEvent<Namespace>): boolean {
  if (ev.type === 'delete') return false;
  return ev.type === 'add' || !same(ev.old?.metadata?.labels, ev.object.metadata?.labels);
}

/** Keys of the pods directly owned by `kind` `namespace/name`. */
export function podsOwnedBy(pods: PodSource, kind: string, namespace: string, name: string): string[] {
  return pods
    .list(namespace)
    .filter((p) => (p.metadata.ownerReferences ?? []).some((r) => r.kind === kind && r.name === name))
    .map(podKey);
}

/** Whether an owner (ReplicaSet/Job) event can change its pods' owner chains. */
export function ownerChanged(ev: ChangeEvent<KubeObject>): boolean {
  return ev.type !== 'update' || !same(ev.old?.metadata?.ownerReferences, ev.object.metadata?.ownerReferences);
}

/**
 * Whether a pod update matters to the controller: anything the slim pod keeps other than
 * its resourceVersion (labels, owners, our two annotations, hostNetwork, phase, deletion).
 */
/**
 * Whether an update is the echo of our own plan patch: the new pod's plan annotation is
 * `written` (undefined: removed) and nothing else the controller keeps changed.
 */
export function isPlanEcho(ev: ChangeEvent<CachedPod>, written: string | undefined): boolean {
  if (ev.type !== 'update' || !ev.old) return false;
  if (ev.object.metadata.annotations?.[PLAN_ANNOTATION] !== written) return false;
  const withPlan = (p: CachedPod, plan: string | undefined) => {
    const annotations = { ...p.metadata.annotations };
    if (plan === undefined) delete annotations[PLAN_ANNOTATION];
    else annotations[PLAN_ANNOTATION] = plan;
    return { ...p, metadata: { ...p.metadata, resourceVersion: undefined, annotations } };
  };
  return same(withPlan(ev.old, written), withPlan(ev.object, written));
}

export function podChanged(ev: ChangeEvent<CachedPod>): boolean {
  if (ev.type !== 'update' || !ev.old) return true;
  const strip = (p: CachedPod) => ({ ...p, metadata: { ...p.metadata, resourceVersion: undefined } });
  return !same(strip(ev.old), strip(ev.object));
}
