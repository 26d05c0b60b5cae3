/**
 * Owner chains: the workloads a pod belongs to, direct owner first, e.g.
 * Pod -> ReplicaSet -> Deployment or Pod -> Job -> CronJob. Pure: objects come from a
 * lookup the caller backs with an informer cache or a file of objects.
 */
import type { KubeObject, OwnerRef, Pod } from './types.js';

/** Looks up a namespaced object by kind; undefined when it is not known. */
export type OwnerLookup = (kind: string, namespace: string, name: string) => KubeObject | undefined;

const MAX_DEPTH = 8; // owner loops are impossible in a sane cluster, but never loop forever

function controllerRef(obj: KubeObject): { kind: string; name: string } | undefined {
  const refs = obj.metadata?.ownerReferences ?? [];
  return refs.find((r) => r.controller) ?? refs[0];
}

/**
 * Follow controller ownerReferences from the pod upwards. An owner that the lookup does
 * not know still appears in the chain (its name is in the reference); only its own
 * owners are then unknown.
 */
export function ownerChain(pod: Pod, lookup: OwnerLookup): OwnerRef[] {
  const namespace = pod.metadata?.namespace ?? '';
  const chain: OwnerRef[] = [];
  let ref = controllerRef(pod);
  while (ref && chain.length < MAX_DEPTH) {
    chain.push({ kind: ref.kind, namespace, name: ref.name });
    const obj = lookup(ref.kind, namespace, ref.name);
    ref = obj ? controllerRef(obj) : undefined;
  }
  return chain;
}
