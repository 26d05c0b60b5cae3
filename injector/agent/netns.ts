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
 * netns dir, a namespace, and not the host's netns (inode compare).
 *
 * Two pods' cache files naming one netns (a stale file whose CNI DEL was missed, a path
 * reused): the first pod processed must not simply win, or a stale file seen first after a
 * restart would get its plan written into the other pod's netns. The evidence decides:
 *   - a rival whose pod is not on this node (once the pod list is in), whose pod has another
 *     UID than its file names, or whose newest file names another netns, is stale: ignored;
 *   - between live contenders, the pod IPs (status.podIPs, written by the kubelet) held by
 *     the netns: a pod whose IPs it does not hold is refused; a pod whose IPs it holds wins,
 *     unless a rival's are there too (ambiguous: refused, reported, counted as
 *     netns-ambiguous); a pod with no IP reported yet waits.
 */
import { parseIP, hostCIDR } from '../../core/ip.js';
import type { Pod } from '../../core/types.js';
import { podIPs } from '../pod.js';
import type { CniCacheIndex } from '../discovery/discovery.js';
import { RtnlClient } from '../kernel/netlink.js';
import { checkNetnsPath, isNetnsError, type NetnsId, type NetnsPolicy } from '../kernel/netns.js';

export type NetnsSource = 'cni-cache' | 'annotation' | 'cni-add';

export type Located =
  | { ok: true; path: string; realPath: string; id: NetnsId; source: NetnsSource; seenAt?: number; file?: string; containerId?: string }
  | { ok: false; kind: 'wait'; reason: string }
  | { ok: false; kind: 'refused'; reason: string; ambiguous?: boolean; rivals?: string[] };

export interface LocateDeps {
  index: Pick<CniCacheIndex, 'lookup' | 'entriesNaming'>;
  /** The node's pod of that name, undefined when none, 'unknown' before the pod list is in. */
  podByName?: (namespace: string, name: string) => Pod | undefined | 'unknown';
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

type IpMatch = 'yes' | 'no' | 'unknown';

/**
 * When other pods' cache files name the same netns: null if this pod is its owner by the
 * evidence (or there is no rival), else why not (see the file comment).
 */
async function decideContested(pod: Pod, sandbox: string, realPath: string, file: string, deps: LocateDeps): Promise<Located | null> {
  const ns = pod.metadata?.namespace ?? '';
  const name = pod.metadata?.name ?? '';
  const others = (): ReturnType<LocateDeps['index']['entriesNaming']> =>
    deps.index.entriesNaming(sandbox).filter((e) => !(e.podNamespace === ns && e.podName === name));
  if (!others().length) return null;
  // Read the addresses first: this also lets pods delivered in the same batch (a full pod
  // list after a restart) be known before the rivals are judged.
  let addrs: Set<string>;
  try {
    addrs = await localAddresses(realPath, deps.policy);
  } catch (e) {
    if (isNetnsError(e, 'gone'))
      return { ok: false, kind: 'wait', reason: `netns ${sandbox} (from the CNI cache) does not exist (any more)` };
    if (isNetnsError(e)) return { ok: false, kind: 'refused', reason: e.message };
    throw e;
  }
  const rivals: { key: string; file: string; pod: Pod | 'unknown' }[] = [];
  for (const e of others()) {
    const key = `${e.podNamespace}/${e.podName}`;
    const rp = deps.podByName ? deps.podByName(e.podNamespace, e.podName) : 'unknown';
    if (rp === undefined) continue; // no such pod on this node: a stale file
    if (rp !== 'unknown') {
      const ruid = rp.metadata?.uid;
      if (e.podUid !== undefined && ruid !== undefined && e.podUid !== ruid) continue; // another pod of that name
      const own = deps.index.lookup(e.podNamespace, e.podName, ruid);
      if (own && own.sandbox !== sandbox) continue; // its newest file names another netns
    }
    rivals.push({ key, file: e.file, pod: rp });
  }
  if (!rivals.length) return null;
  const match = (p: Pod | 'unknown'): IpMatch => {
    if (p === 'unknown') return 'unknown';
    const ips = podIPs(p);
    if (!ips.length) return 'unknown';
    return ips.some((ip) => {
      const x = parseIP(ip);
      return x.ok && addrs.has(hostCIDR(x.value));
    })
      ? 'yes'
      : 'no';
  };
  const named = rivals.map((r) => `${r.key} (file ${r.file})`).join(', ');
  const mine = match(pod);
  const what = `netns ${sandbox} is named by this pod's CNI cache file ${file} and by that of ${named}`;
  if (mine === 'unknown') return { ok: false, kind: 'wait', reason: `${what}; waiting for the pod's IP to decide whose it is` };
  const ips = podIPs(pod).join(', ');
  if (mine === 'no')
    return { ok: false, kind: 'refused', reason: `${what}; it holds none of this pod's IPs (${ips}): not this pod's netns, refusing it` };
  const alsoYes = rivals.filter((r) => match(r.pod) === 'yes');
  if (alsoYes.length) {
    return {
      ok: false,
      kind: 'refused',
      ambiguous: true,
      rivals: alsoYes.map((r) => (r.pod === 'unknown' ? '' : (r.pod.metadata?.uid ?? ''))).filter((u) => u !== ''),
      reason: `${what}; it holds the IPs of this pod and of ${alsoYes.map((r) => r.key).join(', ')}: ambiguous, refusing it for all of them`,
    };
  }
  return null;
}

/** Where the pod's netns is, or why not (yet). */
export async function locateNetns(pod: Pod, deps: LocateDeps): Promise<Located> {
  const ns = pod.metadata?.namespace ?? '';
  const name = pod.metadata?.name ?? '';
  const uid = pod.metadata?.uid ?? '';
  const hit = deps.index.lookup(ns, name, uid);
  if (hit) {
    const r = check(hit.sandbox, deps.policy, 'cni-cache');
    if (!r.ok) return r;
    const contested = await decideContested(pod, hit.sandbox, r.realPath, hit.file, deps);
    return contested ?? { ...r, seenAt: hit.seenAt, file: hit.file, ...(hit.containerId ? { containerId: hit.containerId } : {}) };
  }
  const key = deps.netnsAnnotation;
  const path = key ? pod.metadata?.annotations?.[key] : undefined;
  if (!key || path === undefined) {
    return { ok: false, kind: 'wait', reason: `no CNI cache file names the pod${key ? ` and it has no ${key} annotation` : ''}` };
  }
  if (!path.startsWith('/'))
    return { ok: false, kind: 'refused', reason: `annotation ${key}: expected an absolute netns path, got "${path.slice(0, 200)}"` };
  const r = check(path, deps.policy, 'annotation');
  if (!r.ok) return r;
  const proof = `${uid} ${r.realPath} ${r.id.dev}:${r.id.ino}`;
  if (deps.verified.has(proof)) return r;
  const ips = podIPs(pod);
  if (!ips.length)
    return { ok: false, kind: 'wait', reason: `annotation ${key} names ${path}, but the pod has no IP reported yet to check it against` };
  let addrs: Set<string>;
  try {
    addrs = await localAddresses(r.realPath, deps.policy);
  } catch (e) {
    if (isNetnsError(e, 'gone'))
      return { ok: false, kind: 'wait', reason: `netns ${path} (from the netns annotation) does not exist (any more)` };
    if (isNetnsError(e)) return { ok: false, kind: 'refused', reason: e.message };
    throw e;
  }
  const match = ips.some((ip) => {
    const p = parseIP(ip);
    return p.ok && addrs.has(hostCIDR(p.value));
  });
  if (!match) {
    return {
      ok: false,
      kind: 'refused',
      reason: `annotation ${key} names netns ${path}, which holds none of the pod's IPs (${ips.join(', ')}); refusing it`,
    };
  }
  deps.verified.add(proof);
  return r;
}
