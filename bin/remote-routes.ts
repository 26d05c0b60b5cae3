/**
 * A pod's routing table read from a laptop, through the API server: `ip route` (iproute2 or
 * busybox) run in the pod's container with exec, else /proc/net/route and
 * /proc/net/ipv6_route read with `cat`, else (exec refused, or neither tool in the image)
 * the routes the node agent reports in force (the pod's plan, minus what its report says
 * was skipped). Parsed into the node's KernelRoute form so `routes` prints one `route -n`
 * table whichever way it was read (injector/routes/table.ts).
 */
import { parseCIDR, parseIP, formatCIDR, formatIP } from '../core/ip.js';
import { decodeInjectorStatus } from '../core/injector-status.js';
import { peekPlan, planHash } from '../core/plan-codec.js';
import { PLAN_ANNOTATION, STATUS_ANNOTATION, type Pod } from '../core/types.js';
import type { KernelRoute } from '../injector/kernel/netlink-codec.js';
import { RTPROT_OVNKUBE_ROUTE } from '../injector/routes/engine.js';
import { ApiError, podExec, type Cluster } from './kube.js';

/** Protocol unknown (read from /proc, which does not say who installed a route). */
export const PROTO_UNKNOWN = -1;

const PROTO_BY_NAME: Record<string, number> = {
  unspec: 0,
  redirect: 1,
  kernel: 2,
  boot: 3,
  static: 4,
  gated: 8,
  ra: 9,
  mrt: 10,
  zebra: 11,
  bird: 12,
  dnrouted: 13,
  xorp: 14,
  ntk: 15,
  dhcp: 16,
  mrouted: 17,
  keepalived: 18,
  babel: 42,
  openr: 99,
  bgp: 186,
  isis: 187,
  ospf: 188,
  rip: 189,
  eigrp: 192,
  'ovnkube-route': RTPROT_OVNKUBE_ROUTE,
};
const TYPES = new Set(['unicast', 'local', 'broadcast', 'multicast', 'blackhole', 'unreachable', 'prohibit', 'throw', 'nat', 'anycast']);
const SCOPES: Record<string, number> = { global: 0, universe: 0, site: 200, link: 253, host: 254, nowhere: 255 };

/**
 * Parse `ip [-4|-6] route show` output (iproute2 or busybox) of one family. Lines it cannot
 * read, and multicast routes, are skipped. iproute2 leaves out "proto boot" (so a route
 * without "proto" is boot's); busybox prints no protocol at all: give `busybox: true` and
 * every route's protocol is PROTO_UNKNOWN.
 */
export function parseIpRoute(text: string, family: 4 | 6, opts: { busybox?: boolean } = {}): KernelRoute[] {
  const out: KernelRoute[] = [];
  for (const raw of text.split('\n')) {
    const w = raw.trim().split(/\s+/).filter(Boolean);
    if (w.length === 0 || raw.startsWith(' ') || raw.startsWith('\t')) continue; // nexthop lines of multipath routes
    let type = 'UNICAST';
    if (TYPES.has(w[0]!)) type = w.shift()!.toUpperCase();
    if (type === 'MULTICAST' || type === 'LOCAL' || type === 'BROADCAST') continue;
    const dstWord = w.shift();
    if (!dstWord) continue;
    let dst: string;
    if (dstWord === 'default') dst = family === 4 ? '0.0.0.0/0' : '::/0';
    else {
      const c = parseCIDR(dstWord.includes('/') ? dstWord : `${dstWord}/${dstWord.includes(':') ? 128 : 32}`);
      if (!c.ok || c.value.family !== family) continue;
      dst = formatCIDR(c.value);
    }
    const r: KernelRoute = { family, dst, table: 254, protocol: opts.busybox ? PROTO_UNKNOWN : 3, scope: 0, type, priority: 0, tos: 0 };
    for (let i = 0; i < w.length; i++) {
      const k = w[i]!;
      const v = w[i + 1];
      if (v === undefined) break;
      if (k === 'via') {
        const ip = parseIP(v.replace(/^inet6?\s*/, ''));
        if (ip.ok) r.via = formatIP(ip.value);
        i++;
      } else if (k === 'dev') {
        r.dev = v;
        i++;
      } else if (k === 'proto' && !opts.busybox) {
        r.protocol = /^\d+$/.test(v) ? Number(v) : (PROTO_BY_NAME[v] ?? PROTO_UNKNOWN);
        i++;
      } else if (k === 'metric') {
        r.priority = Number(v) || 0;
        i++;
      } else if (k === 'scope') {
        r.scope = SCOPES[v] ?? (Number(v) || 0);
        i++;
      } else if (k === 'src') {
        r.prefsrc = v;
        i++;
      } else if (k === 'table' || k === 'pref' || k === 'mtu' || k === 'onlink') {
        if (k !== 'onlink') i++;
      }
    }
    out.push(r);
  }
  return out;
}

const hexIPv4 = (h: string): string => [6, 4, 2, 0].map((i) => parseInt(h.slice(i, i + 2), 16)).join('.');

/** Parse /proc/net/route (IPv4 main table; protocol not known). */
export function parseProcRoute(text: string): KernelRoute[] {
  const out: KernelRoute[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || !/^[0-9A-Fa-f]{8}$/.test(f[1]!)) continue;
    const flags = parseInt(f[3]!, 16);
    if (!(flags & 0x1)) continue; // RTF_UP
    const mask = parseInt(f[7]!.match(/../g)!.reverse().join(''), 16) >>> 0;
    const prefix = countBits(mask);
    const c = parseCIDR(`${hexIPv4(f[1]!)}/${prefix}`);
    if (!c.ok) continue;
    const gw = hexIPv4(f[2]!);
    out.push({
      family: 4,
      dst: formatCIDR(c.value),
      table: 254,
      protocol: PROTO_UNKNOWN,
      scope: 0,
      type: flags & 0x200 ? 'UNREACHABLE' : 'UNICAST',
      priority: Number(f[6]) || 0,
      tos: 0,
      ...(f[0] !== '*' ? { dev: f[0]! } : {}),
      ...(flags & 0x2 && gw !== '0.0.0.0' ? { via: gw } : {}),
    });
  }
  return out;
}

function countBits(n: number): number {
  let c = 0;
  for (let x = n >>> 0; x; x = (x << 1) >>> 0) c++;
  return c;
}

const hexIPv6 = (h: string): string => h.match(/.{4}/g)!.join(':');

/** Parse /proc/net/ipv6_route (every table; local and multicast routes are left out). */
export function parseProcIPv6Route(text: string): KernelRoute[] {
  const out: KernelRoute[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !/^[0-9a-f]{32}$/i.test(f[0]!)) continue;
    const flags = parseInt(f[8]!, 16);
    if (!(flags & 0x1) || flags & 0x80000000) continue; // not up, or RTF_LOCAL
    const c = parseCIDR(`${hexIPv6(f[0]!)}/${parseInt(f[1]!, 16)}`);
    if (!c.ok) continue;
    const dst = formatCIDR(c.value);
    if (dst.startsWith('ff00::/8')) continue;
    const gw = parseIP(hexIPv6(f[4]!));
    out.push({
      family: 6,
      dst,
      table: 254,
      protocol: PROTO_UNKNOWN,
      scope: 0,
      type: flags & 0x200 ? 'UNREACHABLE' : 'UNICAST',
      priority: parseInt(f[5]!, 16) || 0,
      tos: 0,
      dev: f[9]!,
      ...(flags & 0x2 && gw.ok ? { via: formatIP(gw.value) } : {}),
    });
  }
  return out;
}

/** The routes of ovnkube-route the agent reports in force: the plan, less what it skipped. */
export function reportedRoutes(pod: Pod): { routes: KernelRoute[]; note: string } {
  const ann = pod.metadata?.annotations ?? {};
  const st = decodeInjectorStatus(ann[STATUS_ANNOTATION]);
  if (!st) return { routes: [], note: `the pod carries no agent report (${STATUS_ANNOTATION})` };
  const value = ann[PLAN_ANNOTATION];
  const d = value === undefined ? undefined : peekPlan(value);
  const plan = d?.ok ? d.plan : undefined;
  if (!plan || st.plan !== planHash(plan)) {
    return {
      routes: [],
      note: st.plan
        ? `the agent reports plan ${st.plan} in force, which is not the pod's current annotation; its routes cannot be listed`
        : 'the agent reports no plan in force',
    };
  }
  // A `*` plan-rejected entry says the annotation's latest signature was refused, not that
  // the plan in force was taken away: the agent keeps its last verified plan (st.plan, the
  // same plan as the annotation's here, e.g. re-signed with a key the agent lacks) in place.
  const rejected = st.skipped.find((s) => s.dst === '*' && s.reason === 'plan-rejected');
  const skipped = new Set(st.skipped.filter((s) => s !== rejected).map((s) => s.dst));
  const routes: KernelRoute[] = [];
  const add = (dst: string, dev: string, via?: string): void => {
    if (skipped.has(dst) || skipped.has('*')) return;
    const fam = dst.includes(':') ? 6 : 4;
    routes.push({
      family: fam,
      dst,
      table: 254,
      protocol: RTPROT_OVNKUBE_ROUTE,
      scope: via ? 0 : 253,
      type: 'UNICAST',
      priority: 0,
      tos: 0,
      dev,
      ...(via ? { via } : {}),
    });
  };
  for (const r of plan.routes) add(r.dst, r.dev, r.via);
  if (plan.default) add(plan.default.via?.includes(':') ? '::/0' : '0.0.0.0/0', plan.default.dev, plan.default.via);
  const skips = st.skipped.length - (rejected ? 1 : 0);
  return {
    routes,
    note:
      `node ${st.node} reported at ${st.time}: ${st.applied} applied, ${skips} skipped` +
      (rejected ? `; the annotation's signature was refused (${rejected.detail ?? 'plan-rejected'}), the same plan stays in force` : ''),
  };
}

/**
 * Where the protocol could not be read (busybox ip, /proc), mark the routes that are exactly
 * a route the agent reports in force (same dst, dev, gateway) as ours; returns how many.
 */
export function inferOwners(routes: KernelRoute[], pod: Pod): number {
  const key = (r: { dst: string; dev?: string | undefined; via?: string | undefined }) => `${r.dst}|${r.dev ?? ''}|${r.via ?? ''}`;
  const ours = new Set(reportedRoutes(pod).routes.map(key));
  let n = 0;
  for (const r of routes)
    if (r.protocol === PROTO_UNKNOWN && ours.has(key(r))) {
      r.protocol = RTPROT_OVNKUBE_ROUTE;
      n++;
    }
  return n;
}

export interface RemoteTable {
  source: 'exec ip route' | 'exec /proc/net/route' | 'agent report';
  routes: KernelRoute[];
  note: string;
}

const notFound = (r: { status: string; message?: string; stderr: string }): boolean =>
  r.status !== 'Success' &&
  /not found|no such file|executable file|applet not found|exit code 127|exit code 126/i.test(`${r.message ?? ''} ${r.stderr}`);

/** Read the pod's table as `from` says (auto: exec, then the report). */
export async function remoteTable(
  c: Cluster,
  pod: Pod,
  opts: { container?: string | undefined; from: 'auto' | 'exec' | 'report'; family: 'all' | '4' | '6' },
): Promise<RemoteTable> {
  const ns = pod.metadata?.namespace ?? '';
  const name = pod.metadata?.name ?? '';
  const why: string[] = [];
  if (opts.from !== 'report') {
    const containers = ((pod.spec?.containers as { name: string }[] | undefined) ?? []).map((x) => x.name);
    const container = opts.container ?? containers[0];
    if (!container) throw new ApiError(0, `pod ${ns}/${name}`, 'has no containers');
    if (opts.container && !containers.includes(opts.container))
      throw new ApiError(0, `pod ${ns}/${name}`, `has no container "${opts.container}" (containers: ${containers.join(', ')})`);
    if (pod.status?.phase !== 'Running') why.push(`pod is ${pod.status?.phase ?? 'not running'}: cannot exec`);
    else {
      try {
        const fams: (4 | 6)[] = opts.family === 'all' ? [4, 6] : [Number(opts.family) as 4 | 6];
        const routes: KernelRoute[] = [];
        // iproute2 says "iproute2" here; busybox prints its usage (and prints no protocols).
        const v = await podExec(c, ns, name, container, ['ip', '-V']);
        let ok = !notFound(v);
        const busybox = !/iproute2/.test(v.stdout + v.stderr);
        for (const f of ok ? fams : []) {
          const r = await podExec(c, ns, name, container, ['ip', `-${f}`, 'route', 'show', 'table', 'main']);
          if (r.status !== 'Success') {
            ok = false;
            if (!notFound(r)) why.push(`ip route: ${r.message ?? r.stderr.trim()}`);
            break;
          }
          routes.push(...parseIpRoute(r.stdout, f, { busybox }));
        }
        if (ok) {
          const inferred = busybox ? inferOwners(routes, pod) : 0;
          return {
            source: 'exec ip route',
            routes,
            note: `read in container ${container} with ${busybox ? 'busybox ip, which prints no protocols (Proto "?"); ' + `${inferred} route(s) marked ovnkube-route because they are exactly routes the agent reports in force` : 'iproute2 ip'}`,
          };
        }
        const procRoutes: KernelRoute[] = [];
        let procOk = true;
        for (const [f, file] of [
          [4, '/proc/net/route'],
          [6, '/proc/net/ipv6_route'],
        ] as const) {
          if (opts.family !== 'all' && opts.family !== String(f)) continue;
          const r = await podExec(c, ns, name, container, ['cat', file]);
          if (r.status !== 'Success') {
            procOk = false;
            why.push(`cat ${file}: ${r.message ?? r.stderr.trim()}`);
            break;
          }
          procRoutes.push(...(f === 4 ? parseProcRoute(r.stdout) : parseProcIPv6Route(r.stdout)));
        }
        if (procOk) {
          const inferred = inferOwners(procRoutes, pod);
          return {
            source: 'exec /proc/net/route',
            routes: procRoutes,
            note: `read in container ${container} from /proc (no ip command there; /proc does not say who installed a route: Proto "?"; ${inferred} route(s) marked ovnkube-route because they are exactly routes the agent reports in force)`,
          };
        }
        if (!why.length) why.push(`neither ip nor cat can run in container ${container}`);
      } catch (e) {
        if (opts.from === 'exec') throw e;
        why.push((e as Error).message);
      }
    }
    if (opts.from === 'exec') throw new ApiError(0, `pod ${ns}/${name}`, `cannot read its routing table with exec: ${why.join('; ')}`);
  }
  const rep = reportedRoutes(pod);
  return {
    source: 'agent report',
    routes: rep.routes,
    note: `${why.length ? `not read from the pod (${why.join('; ')}); ` : ''}only the routes of ovnkube-route the agent reports in force: ${rep.note}`,
  };
}
