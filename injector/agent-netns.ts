/**
 * Finding a pod's netns, and deciding whether to trust it.
 *
 * 1. The CNI result cache (CniCacheIndex): files written by the node's container runtime
 *    (root on the node) name the pod and its sandbox. Preferred whenever it has an entry.
 * 2. Fallback, when configured: a pod annotation naming the netns path (the design
 *    document's option 1). Anyone who can edit the pod can write that annotation, so it
 *    is trusted only if the netns it names holds one of the pod's IPs (status.podIPs,
 *    which only the kubelet writes). Until the kubelet reports an IP, the pod waits.
 *
 * Either way the path must pass the kernel layer's checkNetnsPath: its realpath inside the
 * netns dir, and not the host's netns (inode compare).
 */
import { parseIP, hostCIDR } from '../core/ip.js';
import type { Pod } from '../core/types.js';
import { podIPs } from './agent-pod.js';
import type { CniCacheIndex } from './discovery.js';
import { RtnlClient } from './netlink.js';
import { checkNetnsPath, isNetnsError, type NetnsId, type NetnsPolicy } from './netns.js';

export type NetnsSource = 'cni-cache' | 'annotation' | 'cni-add';

export type Located =
  | { ok: true; path: string; realPath: string; id: NetnsId; source: NetnsSource; seenAt?: number; file?: string; containerId?: string }
  | { ok: false; kind: 'wait'; reason: string }
  | { ok: false; kind: 'refused'; reason: string };

export interface LocateDeps {
  index: Pick<CniCacheIndex, 'lookup'>;
  policy: NetnsPolicy;
  /** Annotation key of the fallback; undefined: off. */
  netnsAnnotation?: string | undefined;
  /** Pod-IP checks already passed: "<uid> <realPath> <dev>:<ino>" (owned by the caller). */
  verified: Set<string>;
}

/** Check a path against the policy: located, or wait (gone), or refused (outside dir, host netns...). */
export function check(path: string, policy: NetnsPolicy, source: NetnsSource): Located {
  try {
    const { realPath, id } = checkNetnsPath(path, policy);
    return { ok: true, path, realPath, id, source };
  } catch (e) {
    const from = { 'cni-cache': 'CNI cache', annotation: 'netns annotation', 'cni-add': 'CNI ADD request' }[source];
    if (isNetnsError(e, 'gone')) return { ok: false, kind: 'wait', reason: `netns ${path} (from the ${from}) does not exist (any more)` };
    if (isNetnsError(e)) return { ok: false, kind: 'refused', reason: e.message };
    throw e;
  }
}

/** Addresses configured in a netns: the LOCAL routes of its local table, as host CIDRs. */
async function localAddresses(path: string, policy: NetnsPolicy): Promise<Set<string>> {
  const client = RtnlClient.open(path, { policy });
  try {
    const routes = await client.listRoutes({ table: 255 });
    return new Set(routes.filter((r) => r.type === 'LOCAL').map((r) => r.dst));
  } finally {
    client.close();
  }
}

/** Where the pod's netns is, or why not (yet). */
export async function locateNetns(pod: Pod, deps: LocateDeps): Promise<Located> {
  const ns = pod.metadata?.namespace ?? '';
  const name = pod.metadata?.name ?? '';
  const uid = pod.metadata?.uid ?? '';
  const hit = deps.index.lookup(ns, name, uid);
  if (hit) {
    const r = check(hit.sandbox, deps.policy, 'cni-cache');
    return r.ok ? { ...r, seenAt: hit.seenAt, file: hit.file, ...(hit.containerId ? { containerId: hit.containerId } : {}) } : r;
  }
  const key = deps.netnsAnnotation;
  const path = key ? pod.metadata?.annotations?.[key] : undefined;
  if (!key || path === undefined) {
    return { ok: false, kind: 'wait', reason: `no CNI cache file names the pod${key ? ` and it has no ${key} annotation` : ''}` };
  }
  if (!path.startsWith('/')) return { ok: false, kind: 'refused', reason: `annotation ${key}: expected an absolute netns path, got "${path.slice(0, 200)}"` };
  const r = check(path, deps.policy, 'annotation');
  if (!r.ok) return r;
  const proof = `${uid} ${r.realPath} ${r.id.dev}:${r.id.ino}`;
  if (deps.verified.has(proof)) return r;
  const ips = podIPs(pod);
  if (!ips.length) return { ok: false, kind: 'wait', reason: `annotation ${key} names ${path}, but the pod has no IP reported yet to check it against` };
  let addrs: Set<string>;
  try {
    addrs = await localAddresses(r.realPath, deps.policy);
  } catch (e) {
    if (isNetnsError(e, 'gone')) return { ok: false, kind: 'wait', reason: `netns ${path} (from the netns annotation) does not exist (any more)` };
    if (isNetnsError(e)) return { ok: false, kind: 'refused', reason: e.message };
    throw e;
  }
  const match = ips.some((ip) => {
    const p = parseIP(ip);
    return p.ok && addrs.has(hostCIDR(p.value));
  });
  if (!match) {
    return { ok: false, kind: 'refused', reason: `annotation ${key} names netns ${path}, which holds none of the pod's IPs (${ips.join(', ')}); refusing it` };
  }
  deps.verified.add(proof);
  return r;
}
