/**
 * The CNI result cache (default /var/lib/cni/results): libcni writes one JSON file per
 * (network, container, interface), e.g. `cni-loopback-<containerId>-lo`, holding the
 * runtime's `cniArgs` (K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_UID, ...) and the plugin
 * result, whose `interfaces[].sandbox` is the pod's netns path. A full example is in the
 * design document (shared/seeds/000_*.txt).
 *
 * parseCniCacheFile is pure (one bad file is an error value, never an exception);
 * scanCniCacheDir reads a directory; findPodNetns picks a pod's netns among the entries.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { withCause } from '../../platform/errors.js';

/** Default CNI result cache dir of libcni. */
export const DEFAULT_CNI_CACHE_DIR = '/var/lib/cni/results';

/** What the injector needs from one cache file. */
export interface CniCacheEntry {
  /** File name within the cache dir. */
  file: string;
  podNamespace: string;
  podName: string;
  podUid?: string;
  containerId?: string;
  networkName?: string;
  ifName?: string;
  /** The pod's netns path (the top-level netns key when present, else result.interfaces[].sandbox). */
  sandbox: string;
  /** File modification time (scan only; 0 from the pure parser). */
  mtimeMs: number;
}

export type ParseResult = { ok: true; entry: CniCacheEntry } | { ok: false; error: string };

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/**
 * Parse one cache file's text. Fails (with the file and field named) when it is not JSON,
 * has no K8S_POD_NAMESPACE/K8S_POD_NAME in cniArgs, or names no netns (neither the top-level
 * `netns` key nor an interface's sandbox), or names different ones.
 */
export function parseCniCacheFile(file: string, text: string): ParseResult {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return { ok: false, error: `CNI cache file ${file}: not JSON: ${(e as Error).message}` };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    return { ok: false, error: `CNI cache file ${file}: expected a JSON object` };
  const o = doc as Record<string, unknown>;
  const args = new Map<string, string>();
  if (Array.isArray(o.cniArgs)) {
    for (const pair of o.cniArgs) {
      if (Array.isArray(pair) && typeof pair[0] === 'string' && typeof pair[1] === 'string') args.set(pair[0], pair[1]);
    }
  }
  const podNamespace = args.get('K8S_POD_NAMESPACE');
  const podName = args.get('K8S_POD_NAME');
  if (!podNamespace || !podName) {
    return { ok: false, error: `CNI cache file ${file}: cniArgs has no K8S_POD_NAMESPACE/K8S_POD_NAME (not a pod's sandbox)` };
  }
  const result = o.result as { interfaces?: unknown } | undefined;
  const ifaces = Array.isArray(result?.interfaces) ? (result.interfaces as unknown[]) : [];
  const sandboxes = new Set<string>();
  for (const i of ifaces) {
    const s = str((i as { sandbox?: unknown } | null)?.sandbox);
    if (s) sandboxes.add(s);
  }
  // Current libcni also writes the netns it was given as a top-level key: it names the
  // netns even when the result lists no interface in it (loopback results do, but not all).
  const top = str(o.netns);
  if (sandboxes.size > 1)
    return { ok: false, error: `CNI cache file ${file}: result.interfaces[] name different sandboxes: ${[...sandboxes].join(', ')}` };
  if (top && sandboxes.size === 1 && !sandboxes.has(top)) {
    return { ok: false, error: `CNI cache file ${file}: netns ${top} and result.interfaces[].sandbox ${[...sandboxes][0]} differ` };
  }
  const sandbox = top ?? [...sandboxes][0];
  if (!sandbox) return { ok: false, error: `CNI cache file ${file}: no netns key and result.interfaces[] has no sandbox (netns path)` };
  const entry: CniCacheEntry = { file, podNamespace, podName, sandbox, mtimeMs: 0 };
  const uid = args.get('K8S_POD_UID');
  if (uid) entry.podUid = uid;
  const cid = str(o.containerId) ?? args.get('K8S_POD_INFRA_CONTAINER_ID');
  if (cid) entry.containerId = cid;
  const net = str(o.networkName);
  if (net) entry.networkName = net;
  const ifn = str(o.ifName);
  if (ifn) entry.ifName = ifn;
  return { ok: true, entry };
}

/** Result of a directory scan: parsed entries, and one error line per file that did not parse. */
export interface CniCacheScan {
  entries: CniCacheEntry[];
  errors: string[];
}

/**
 * Read every regular file of `dir` (not recursive). A missing dir is an empty scan; a file
 * that vanishes or fails to parse is reported in `errors` and never stops the others.
 */
export async function scanCniCacheDir(dir: string): Promise<CniCacheScan> {
  const out: CniCacheScan = { entries: [], errors: [] };
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return out;
    throw new Error(withCause(`cannot read the CNI cache dir ${dir}`, e), { cause: e });
  }
  for (const name of names.sort()) {
    const p = join(dir, name);
    try {
      const st = await stat(p);
      if (!st.isFile()) continue;
      const r = parseCniCacheFile(name, await readFile(p, 'utf8'));
      if (r.ok) out.entries.push({ ...r.entry, mtimeMs: st.mtimeMs });
      else out.errors.push(r.error);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') out.errors.push(`CNI cache file ${name}: ${(e as Error).message}`);
    }
  }
  return out;
}

/**
 * The netns of pod namespace/name among `entries` (optionally pinned to a pod UID). A pod
 * has one file per network, all naming the same sandbox; after a sandbox restart old files
 * may linger, so the newest file wins. Returns null when no entry matches.
 */
export function findPodNetns(
  entries: CniCacheEntry[],
  namespace: string,
  name: string,
  uid?: string,
): { sandbox: string; entries: CniCacheEntry[] } | null {
  const mine = entries.filter(
    (e) => e.podNamespace === namespace && e.podName === name && (uid === undefined || e.podUid === undefined || e.podUid === uid),
  );
  if (!mine.length) return null;
  const newest = [...mine].sort((a, b) => b.mtimeMs - a.mtimeMs)[0]!;
  return { sandbox: newest.sandbox, entries: mine.filter((e) => e.sandbox === newest.sandbox) };
}
