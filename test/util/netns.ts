/**
 * Test helpers for real network namespaces: throwaway netns made with `ip netns add`
 * (named ovrt-<pid>-<n>, so leftovers of a dead test process can be recognized and swept),
 * veth pairs whose both ends live in namespaces we created (never in the host's), and a
 * pod laid out like the target table in shared/docs/mission.md:
 *
 *   eth0 (Calico-like): 10.244.1.5/32, 169.254.1.1 dev eth0 scope link, default via 169.254.1.1
 *   eth1 (OVN-like):    10.124.2.5/24 (connected route 10.124.2.0/24), gateway 10.124.2.1
 *
 * Every namespace is deleted in t.teardown.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import type { Test } from 'tap';
import type { Plan } from '../../core/types.js';
import { RtnlClient } from '../../injector/kernel/netlink.js';
import { RTPROT_OVNKUBE_ROUTE as P } from '../../injector/routes/engine.js';

/** The design document's demo Route as a plan, its Services resolved to the target table's IPs. */
export const MISSION_PLAN: Plan = {
  v: 1,
  routes: [
    { dst: '10.86.69.17/32', dev: 'eth0' },
    { dst: '10.86.205.109/32', dev: 'eth1' },
    { dst: '10.124.0.0/16', dev: 'eth1', via: '10.124.2.1' },
    { dst: '172.16.10.0/24', dev: 'eth1' },
    { dst: '192.168.2.0/24', dev: 'eth0' },
  ],
};

/** The mission's target table as routeLines() prints it for a makePod() pod with MISSION_PLAN applied. */
export const MISSION_TABLE = [
  `10.124.0.0/16 via 10.124.2.1 dev eth1 proto ${P}`,
  '10.124.2.0/24 dev eth1 proto kernel',
  `10.86.205.109 dev eth1 proto ${P}`,
  `10.86.69.17 dev eth0 proto ${P}`,
  '169.254.1.1 dev eth0',
  `172.16.10.0/24 dev eth1 proto ${P}`,
  `192.168.2.0/24 dev eth0 proto ${P}`,
  'default via 169.254.1.1 dev eth0',
];

let counter = 0;
let swept = false;

/**
 * Run `ip` with args; throws with stderr on failure. Our protocol always reads `proto 111`:
 * where the host names it (/etc/iproute2/rt_protos.d/ovnkube-route.conf, which the agent
 * DaemonSet installs) iproute2 prints `proto ovnkube-route`, and tests compare the number.
 */
export function ip(...args: string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
      .replace(/\bproto ovnkube-route\b/g, 'proto 111')
      .replace(/"protocol":"ovnkube-route"/g, '"protocol":"111"');
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')} failed: ${err.stderr?.trim() || err.message}`);
  }
}

/** A throwaway network namespace. */
export interface TestNetns {
  name: string;
  /** /var/run/netns/<name> */
  path: string;
  /** `ip -n <name> ...` */
  ip(...args: string[]): string;
  /** `ip -n <name> -j ...` parsed. */
  json<T = unknown>(...args: string[]): T;
  /** Delete it now (idempotent). */
  del(): void;
}

/** One route of `ip -j route`. */
export interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  metric?: number;
  type?: string;
}

function sweepDead(): void {
  if (swept) return;
  swept = true;
  if (!existsSync('/var/run/netns')) return;
  for (const n of readdirSync('/var/run/netns')) {
    const m = /^ovrt-(\d+)-/.exec(n);
    if (m && !existsSync(`/proc/${m[1]}`)) {
      try {
        ip('netns', 'del', n);
      } catch {
        /* raced with another sweeper */
      }
    }
  }
}

/** Create a netns (lo up) that is deleted when `t` ends. */
export function makeNetns(t: Test, label = 'ns'): TestNetns {
  sweepDead();
  const name = `ovrt-${process.pid}-${++counter}-${label}`.slice(0, 60);
  ip('netns', 'add', name);
  let gone = false;
  const ns: TestNetns = {
    name,
    path: `/var/run/netns/${name}`,
    ip: (...args) => ip('-n', name, ...args),
    json: <T>(...args: string[]) => JSON.parse(ip('-n', name, '-j', ...args) || '[]') as T,
    del: () => {
      if (gone) return;
      gone = true;
      try {
        ip('netns', 'del', name);
      } catch {
        /* already deleted by the test */
      }
    },
  };
  t.teardown(() => ns.del());
  ns.ip('link', 'set', 'lo', 'up');
  return ns;
}

/**
 * Add a veth pair: `ifname` in `ns`, its peer in `peerNs` (named p<n>), both up.
 * `addrs` are added to `ifname` (CIDR notation; IPv6 without DAD so they are usable at once).
 */
export function addVeth(ns: TestNetns, ifname: string, peerNs: TestNetns, addrs: string[] = []): void {
  const peer = `p${++counter}`;
  ns.ip('link', 'add', ifname, 'type', 'veth', 'peer', 'name', peer, 'netns', peerNs.name);
  for (const a of addrs) {
    if (a.includes(':')) ns.ip('-6', 'addr', 'add', a, 'dev', ifname, 'nodad');
    else ns.ip('addr', 'add', a, 'dev', ifname);
  }
  peerNs.ip('link', 'set', peer, 'up');
  ns.ip('link', 'set', ifname, 'up');
}

/** A pod netns wired like the mission's target table, plus the "node" netns holding the peers. */
export interface TestPod {
  pod: TestNetns;
  node: TestNetns;
}

/**
 * Build a pod like the mission's: eth0 Calico-like (169.254.1.1 link-local gateway and the
 * default route), eth1 OVN-like on 10.124.2.0/24 (omit with `eth1: false`, to add it later
 * with addEth1). `ipv6: true` also gives eth0 fd00:10::5/64 and eth1 fd00:124::5/64.
 */
export function makePod(t: Test, opts: { eth1?: boolean; ipv6?: boolean } = {}): TestPod {
  const node = makeNetns(t, 'node');
  const pod = makeNetns(t, 'pod');
  addVeth(pod, 'eth0', node, ['10.244.1.5/32', ...(opts.ipv6 ? ['fd00:10::5/64'] : [])]);
  pod.ip('route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link');
  pod.ip('route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0');
  if (opts.eth1 !== false) addEth1({ pod, node }, opts.ipv6);
  return { pod, node };
}

/** Give the pod its eth1 (10.124.2.5/24; with ipv6 also fd00:124::5/64). */
export function addEth1(p: TestPod, ipv6 = false): void {
  addVeth(p.pod, 'eth1', p.node, ['10.124.2.5/24', ...(ipv6 ? ['fd00:124::5/64'] : [])]);
}

/** The pod's main table via `ip -j route` (family 4 or 6); our protocol reads 111 (see ip()). */
export function ipRoutes(ns: TestNetns, family: 4 | 6 = 4): IpRoute[] {
  return ns.json<IpRoute[]>(`-${family}`, 'route', 'show', 'table', 'main');
}

/** Routes of `ip -j route` as compact strings "dst [via gw] dev d [proto p]" for readable assertions. */
export function routeLines(ns: TestNetns, family: 4 | 6 = 4): string[] {
  return ipRoutes(ns, family)
    .map((r) => `${r.dst}${r.gateway ? ` via ${r.gateway}` : ''} dev ${r.dev}${r.protocol ? ` proto ${r.protocol}` : ''}`)
    .sort();
}

/** Number of open fds of this process. */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/**
 * The open fds of this process as "fd -> target" (socket:[inode], anon_inode:..., paths), for
 * failure messages that must show what kind of fd is left open.
 */
export function fdTable(): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      out.push(`${fd} -> ${readlinkSync(`/proc/self/fd/${fd}`)}`);
    } catch {
      // the listing's own directory fd, closed by now
    }
  }
  return out;
}

/**
 * Run `fn` at the next call of RtnlClient#`method` by anyone, right before that call (then the
 * method is as it was; also put back at the test's end). A way into an apply at a known point:
 * each exchange with the kernel is synchronous and an apply runs through promise reactions
 * alone, so no turn of the event loop sees one in flight.
 */
export function onFirstCall(t: Test, method: 'listLinks' | 'addRoute', fn: () => void): void {
  const proto = RtnlClient.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
  const original = proto[method]!;
  const restore = (): void => {
    proto[method] = original;
  };
  proto[method] = function (this: RtnlClient, ...a: unknown[]) {
    restore();
    fn();
    return original.apply(this, a);
  };
  t.teardown(restore);
}

/** fdTable() entries that are not in `before` (what was opened since, and is still open). */
export function fdsOpenedSince(before: string[]): string[] {
  const had = new Set(before);
  return fdTable().filter((x) => !had.has(x));
}
