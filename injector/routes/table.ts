/**
 * Print a netns's main table the way operators know it from `route -n` (IPv4) and
 * `route -n -A inet6` (IPv6), with two more columns: the protocol that installed each
 * route and an Owner column marking the routes ovnkube-route owns. Pure.
 */
import { parseCIDR } from '../../core/ip.js';
import type { KernelRoute } from '../kernel/netlink-codec.js';

/** Names of well-known rtnetlink protocols (iproute2's rt_protos). */
const PROTO_NAMES: Record<number, string> = {
  0: 'unspec',
  1: 'redirect',
  2: 'kernel',
  3: 'boot',
  4: 'static',
  8: 'gated',
  9: 'ra',
  10: 'mrt',
  11: 'zebra',
  12: 'bird',
  13: 'dnrouted',
  14: 'xorp',
  15: 'ntk',
  16: 'dhcp',
  17: 'mrouted',
  18: 'keepalived',
  42: 'babel',
  99: 'openr',
  186: 'bgp',
  187: 'isis',
  188: 'ospf',
  189: 'rip',
  192: 'eigrp',
};

/** iproute2's name of a protocol number, or the number. */
export function protocolName(p: number): string {
  if (p < 0) return '?'; // not known (a table read from /proc/net/route)
  return PROTO_NAMES[p] ?? String(p);
}

function maskOf(bits: number): string {
  const m = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return [24, 16, 8, 0].map((s) => (m >>> s) & 0xff).join('.');
}

function flagsOf(r: KernelRoute, hostBits: number): string {
  if (r.type !== 'UNICAST') return '!'; // reject routes (blackhole, unreachable, prohibit)
  let f = 'U';
  if (r.via) f += 'G';
  if (Number(r.dst.split('/')[1]) === hostBits) f += 'H';
  return f;
}

function sortKey(r: KernelRoute): [bigint, number] {
  const c = parseCIDR(r.dst);
  return c.ok ? [c.value.value, c.value.bits] : [0n, 0];
}

function byDst(a: KernelRoute, b: KernelRoute): number {
  const [av, ab] = sortKey(a);
  const [bv, bb] = sortKey(b);
  return av < bv ? -1 : av > bv ? 1 : ab - bb || a.priority - b.priority;
}

/** Columns padded like route(8) does (%-15s for addresses), wider when a value needs it. */
function table(header: string[], minWidths: number[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(minWidths[i] ?? 0, h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cols: string[]): string =>
    cols
      .map((c, i) => (i === cols.length - 1 ? c : c.padEnd(widths[i]! + 1)))
      .join('')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** A route's attributes as `ip route` writes them: "src 10.124.2.5 mtu 1400 advmss 1360"; '' when none. */
export function attributesOf(r: KernelRoute): string {
  return [
    r.prefsrc !== undefined ? `src ${r.prefsrc}` : '',
    r.mtu !== undefined ? `mtu ${r.mtu}` : '',
    r.advmss !== undefined ? `advmss ${r.advmss}` : '',
  ]
    .filter(Boolean)
    .join(' ');
}

/**
 * Add the Attributes column (src, mtu, advmss) after Owner when a route shown has an mtu or
 * advmss, or one of ours has a src, so a table without them prints exactly as route(8) users
 * know it (the kernel's connected routes all carry a src, which alone does not add it).
 */
function withAttributes(routes: KernelRoute[], header: string[], rows: string[][], ours: number): [string[], string[][]] {
  const attrs = routes.map(attributesOf);
  if (!routes.some((r) => r.mtu !== undefined || r.advmss !== undefined || (r.protocol === ours && r.prefsrc !== undefined)))
    return [header, rows];
  return [[...header, 'Attributes'], rows.map((r, i) => [...r, attrs[i]!])];
}

/** The IPv4 routes as `route -n` prints them (Destination Gateway Genmask Flags Metric Iface), plus Proto, Owner and Attributes. */
export function formatRouteTable4(routes: KernelRoute[], ours: number): string {
  const shown = routes.filter((r) => r.family === 4).sort(byDst);
  const rows = shown.map((r) => {
    const [addr, bits] = r.dst.split('/') as [string, string];
    return [
      addr,
      r.via ?? '0.0.0.0',
      maskOf(Number(bits)),
      flagsOf(r, 32),
      String(r.priority),
      r.dev ?? (r.oif ? `if${r.oif}` : '*'),
      protocolName(r.protocol),
      r.protocol === ours ? 'ovnkube-route' : '',
    ];
  });
  const [h, rs] = withAttributes(shown, ['Destination', 'Gateway', 'Genmask', 'Flags', 'Metric', 'Iface', 'Proto', 'Owner'], rows, ours);
  return 'Kernel IP routing table\n' + table(h, [15, 15, 15, 5, 6, 6, 6, 13], rs);
}

/** The IPv6 routes as `route -n -A inet6` prints them (Destination Next Hop Flag Met If), plus Proto, Owner and Attributes. */
export function formatRouteTable6(routes: KernelRoute[], ours: number): string {
  const shown = routes.filter((r) => r.family === 6).sort(byDst);
  const rows = shown.map((r) => [
    r.dst,
    r.via ?? '::',
    flagsOf(r, 128),
    String(r.priority),
    r.dev ?? (r.oif ? `if${r.oif}` : '*'),
    protocolName(r.protocol),
    r.protocol === ours ? 'ovnkube-route' : '',
  ]);
  const [h, rs] = withAttributes(shown, ['Destination', 'Next Hop', 'Flags', 'Metric', 'Iface', 'Proto', 'Owner'], rows, ours);
  return 'Kernel IPv6 routing table\n' + table(h, [23, 23, 5, 6, 6, 6, 13], rs);
}
