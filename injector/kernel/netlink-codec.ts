/**
 * Pure conversions between the `netlink` package's rtnetlink messages and our normalized
 * shapes (CIDR/IP strings, numeric protocol/scope). No I/O; table-tested.
 */
import { endianness } from 'node:os';
import type * as netlink from 'netlink';
import { rt } from './netlink-lite.js';
import { formatCIDR, formatIP, parseCIDR, parseIP, type Family } from '../../core/ip.js';

export type { Family };

/** rtnetlink table id of the main table (`ip route` shows it by default). */
export const RT_TABLE_MAIN = 254;
/** The kernel's `local` table (local and broadcast addresses), looked up first. */
export const RT_TABLE_LOCAL = 255;
/** The kernel's `default` table, looked up after main. */
export const RT_TABLE_DEFAULT = 253;
/** Route scopes we use (linux/rtnetlink.h). */
export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;
export const RT_SCOPE_HOST = 254;
/** Wildcard scope for deletes: matches a route of any scope. */
export const RT_SCOPE_NOWHERE = 255;
/** AF_INET / AF_INET6. */
export const AF_INET = 2;
export const AF_INET6 = 10;

/** A route as read from the kernel, normalized. */
export interface KernelRoute {
  family: Family;
  /** Canonical CIDR; the default route is 0.0.0.0/0 or ::/0. */
  dst: string;
  table: number;
  /** rtnetlink protocol number (RTPROT_*): who installed it. */
  protocol: number;
  scope: number;
  /** Route type name, e.g. UNICAST, LOCAL, BROADCAST, BLACKHOLE. */
  type: string;
  /** Metric (RTA_PRIORITY); 0 when absent. IPv6 user routes default to 1024. */
  priority: number;
  tos: number;
  /** Output interface index; absent for multipath and reject routes. */
  oif?: number;
  /** Interface name (filled in by listRoutes from the link table). */
  dev?: string;
  /** Gateway (RTA_GATEWAY). */
  via?: string;
  /** Preferred source (RTA_PREFSRC). */
  prefsrc?: string;
  /** Path MTU (RTA_METRICS RTAX_MTU), when set on the route. */
  mtu?: number;
  /** Advertised TCP MSS (RTA_METRICS RTAX_ADVMSS), when set on the route. */
  advmss?: number;
  /** True for multipath routes (several nexthops), which we never manage. */
  multipath?: boolean;
}

/** A network interface of a netns. */
export interface LinkInfo {
  index: number;
  name: string;
  up: boolean;
}

/** What to write: one unicast route in a table (default main). */
export interface RouteWrite {
  dst: string;
  oif: number;
  via?: string;
  /** RT_SCOPE_LINK for a route on a link (no via), RT_SCOPE_UNIVERSE for a gateway route. */
  scope: number;
  protocol: number;
  priority?: number;
  table?: number;
  /** Preferred source address (RTA_PREFSRC). */
  prefsrc?: string;
  /** RTA_METRICS RTAX_MTU. */
  mtu?: number;
  /** RTA_METRICS RTAX_ADVMSS. */
  advmss?: number;
}

/** What identifies a route for deletion (the kernel matches the fields that are given). */
export interface RouteKey {
  dst: string;
  table?: number;
  protocol?: number;
  /** Scope to match; RT_SCOPE_NOWHERE (the default) matches any. */
  scope?: number;
  priority?: number;
  oif?: number;
  via?: string;
  tos?: number;
}

function bytesToBigint(b: Buffer): bigint {
  return b.length === 0 ? 0n : BigInt('0x' + b.toString('hex'));
}

function bigintToBytes(v: bigint, len: number): Buffer {
  return Buffer.from(v.toString(16).padStart(len * 2, '0'), 'hex');
}

/** Address buffer (4 or 16 bytes) to canonical text. */
export function ipFromBytes(b: Buffer, family: Family): string {
  return formatIP({ family, value: bytesToBigint(b) });
}

/** Canonical IP text to an address buffer; throws on bad input (caller validated it). */
export function ipToBytes(ip: string): { family: Family; bytes: Buffer } {
  const p = parseIP(ip);
  if (!p.ok) throw new Error(`invalid IP "${ip}": ${p.error}`);
  return { family: p.value.family, bytes: bigintToBytes(p.value.value, p.value.family === 4 ? 4 : 16) };
}

/** CIDR text to family/prefix/bytes; throws on bad input (caller validated it). */
export function cidrToBytes(cidr: string): { family: Family; bits: number; bytes: Buffer } {
  const p = parseCIDR(cidr);
  if (!p.ok) throw new Error(`invalid CIDR "${cidr}": ${p.error}`);
  const len = p.value.family === 4 ? 4 : 16;
  return { family: p.value.family, bits: p.value.bits, bytes: bigintToBytes(p.value.value, len) };
}

/** Family of a CIDR or IP string (4 or 6). */
export function familyOf(addr: string): Family {
  return addr.includes(':') ? 6 : 4;
}

/** Kernel address family number of 4/6. */
export function afOf(family: Family): number {
  return family === 4 ? AF_INET : AF_INET6;
}

function enumNumber(value: unknown, table: Record<string, string | number>): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && typeof table[value] === 'number') return table[value] as number;
  return 0;
}

function enumName(value: unknown, table: Record<string, string | number>): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && typeof table[value] === 'string') return table[value] as string;
  return String(value ?? 'UNSPEC');
}

const HOST_LE = endianness() === 'LE';

/** Netlink integers are in the host's byte order. */
const readU16 = (b: Buffer, off: number): number => (HOST_LE ? b.readUInt16LE(off) : b.readUInt16BE(off));
const readU32 = (b: Buffer, off: number): number => (HOST_LE ? b.readUInt32LE(off) : b.readUInt32BE(off));

/** A u32 metric value (host byte order, as the kernel writes RTA_METRICS entries). */
function u32Of(b: Buffer | undefined): number | undefined {
  if (!b || b.length < 4) return undefined;
  return readU32(b, 0);
}

function u32Bytes(v: number): Buffer {
  const b = Buffer.alloc(4);
  if (HOST_LE) b.writeUInt32LE(v >>> 0, 0);
  else b.writeUInt32BE(v >>> 0, 0);
  return b;
}

/** Normalize a parsed RTM_NEWROUTE/DELROUTE message; null for families other than IPv4/IPv6. */
export function routeFromMessage(m: netlink.rt.RouteMessage): KernelRoute | null {
  const family: Family | null = m.data.family === AF_INET ? 4 : m.data.family === AF_INET6 ? 6 : null;
  if (family === null) return null;
  const len = family === 4 ? 4 : 16;
  const dstBytes = m.attrs.dst ?? Buffer.alloc(len);
  const bits = m.data.dstLen ?? 0;
  const route: KernelRoute = {
    family,
    dst: formatCIDR({ family, value: bytesToBigint(dstBytes), bits }),
    table: m.attrs.table ?? m.data.table ?? 0,
    protocol: enumNumber(m.data.protocol, rt.RouteProtocol as unknown as Record<string, number>),
    scope: enumNumber(m.data.scope, rt.RouteScope as unknown as Record<string, number>),
    type: enumName(m.data.type, rt.RouteType as unknown as Record<string, string>),
    priority: m.attrs.priority ?? 0,
    tos: m.data.tos ?? 0,
  };
  if (m.attrs.oif !== undefined) route.oif = m.attrs.oif;
  if (m.attrs.gateway) route.via = ipFromBytes(m.attrs.gateway, family);
  if (m.attrs.prefsrc) route.prefsrc = ipFromBytes(m.attrs.prefsrc, family);
  if (m.attrs.multipath) route.multipath = true;
  const mtu = u32Of(m.attrs.metrics?.mtu);
  if (mtu !== undefined) route.mtu = mtu;
  const advmss = u32Of(m.attrs.metrics?.advmss);
  if (advmss !== undefined) route.advmss = advmss;
  return route;
}

/** RTM_NEWLINK: the type of each message of a link dump. */
export const RTM_NEWLINK = 16;
/** RTM_GETLINK: asks for links (with NLM_F_DUMP: every link). */
export const RTM_GETLINK = 18;
const IFLA_IFNAME = 3;
const IFF_UP = 0x1;
/** nla_type bits that are flags, not the type (NLA_F_NESTED, NLA_F_NET_BYTEORDER). */
const NLA_TYPE_MASK = 0x3fff;

/**
 * Each attribute (struct nlattr) in b[start, end): its type (flag bits masked), where its
 * value starts and how long it is. Stops at a malformed one, or when `each` returns true.
 */
export function walkAttrs(b: Buffer, start: number, end: number, each: (type: number, value: number, len: number) => boolean | void): void {
  for (let off = start; off + 4 <= end;) {
    const len = readU16(b, off);
    if (len < 4 || off + len > end) return;
    if (each(readU16(b, off + 2) & NLA_TYPE_MASK, off + 4, len - 4) === true) return;
    off += (len + 3) & ~3;
  }
}

/** Length of a netlink message header (struct nlmsghdr). */
export const NLMSG_HEADER = 16;

/**
 * Each netlink message of `buf` (several concatenated, as one read or one exchange gives
 * them): its type, flags, sequence number and payload (after the header). Stops when `each`
 * returns true. Returns the offset of a malformed header that ended the walk early (the rest
 * is not read), else -1.
 */
export function walkMessages(buf: Buffer, each: (type: number, flags: number, seq: number, payload: Buffer) => boolean | void): number {
  for (let off = 0; off + NLMSG_HEADER <= buf.length;) {
    const len = readU32(buf, off);
    if (len < NLMSG_HEADER || off + len > buf.length) return off;
    if (each(readU16(buf, off + 4), readU16(buf, off + 6), readU32(buf, off + 8), buf.subarray(off + NLMSG_HEADER, off + len)) === true)
      return -1;
    off += (len + 3) & ~3;
  }
  return -1;
}

/**
 * A link from the payload of an RTM_NEWLINK message (struct ifinfomsg, then attributes):
 * index, name (IFLA_IFNAME) and IFF_UP, and nothing else. The package's parser decodes
 * every attribute of every link (statistics, queues, XDP, ...) to give the same three
 * fields: the largest single cost of an apply. null when the payload is too short.
 */
export function linkFromIfinfo(data: Buffer): LinkInfo | null {
  if (data.length < 16) return null;
  const index = HOST_LE ? data.readInt32LE(4) : data.readInt32BE(4);
  const flags = readU32(data, 8);
  let name: string | undefined;
  walkAttrs(data, 16, data.length, (type, v, n) => {
    if (type !== IFLA_IFNAME) return false;
    const nul = data.indexOf(0, v);
    name = data.toString('utf8', v, nul >= 0 && nul < v + n ? nul : v + n);
    return true;
  });
  return { index, name: name ?? `if${index}`, up: (flags & IFF_UP) !== 0 };
}

/** The link index of an RTM_NEWADDR/DELADDR payload (struct ifaddrmsg: family, prefixlen, flags, scope, u32 index); null when short. */
export function addrIndexFromIfaddr(data: Buffer): number | null {
  return data.length < 8 ? null : readU32(data, 4);
}

/** RTM_NEWROUTE: the type of each message of a route dump. */
export const RTM_NEWROUTE = 24;
/** RTM_GETROUTE: asks for routes (with NLM_F_DUMP: every route of the family asked). */
export const RTM_GETROUTE = 26;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;
const RTA_PREFSRC = 7;
const RTA_METRICS = 8;
const RTA_MULTIPATH = 9;
const RTA_TABLE = 15;
const RTAX_MTU = 2;
const RTAX_ADVMSS = 8;

/** Address bytes to canonical text: IPv4 directly, IPv6 through the core formatter. */
function addrText(b: Buffer, off: number, family: Family): string {
  if (family === 4) return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
  return ipFromBytes(b.subarray(off, off + 16), 6);
}

/**
 * A route from the payload of an RTM_NEWROUTE message (struct rtmsg, then attributes),
 * giving exactly what routeFromMessage gives from the package's parse of the same message
 * (a test reads one dump both ways), without decoding what we never use. null for a family
 * other than IPv4/IPv6 or a short payload.
 */
export function routeFromRtmsg(data: Buffer): KernelRoute | null {
  if (data.length < 12) return null;
  const af = data[0]!;
  const family: Family | null = af === AF_INET ? 4 : af === AF_INET6 ? 6 : null;
  if (family === null) return null;
  const alen = family === 4 ? 4 : 16;
  const bits = data[1]!;
  let dst: string | undefined;
  let table = data[4]!;
  let priority = 0;
  let oif: number | undefined;
  let via: string | undefined;
  let prefsrc: string | undefined;
  let multipath = false;
  let mtu: number | undefined;
  let advmss: number | undefined;
  const u32 = (off: number): number => readU32(data, off);
  walkAttrs(data, 12, data.length, (type, v, n) => {
    switch (type) {
      case RTA_DST:
        if (n >= alen) dst = addrText(data, v, family);
        break;
      case RTA_OIF:
        if (n >= 4) oif = u32(v);
        break;
      case RTA_GATEWAY:
        if (n >= alen) via = addrText(data, v, family);
        break;
      case RTA_PRIORITY:
        if (n >= 4) priority = u32(v);
        break;
      case RTA_PREFSRC:
        if (n >= alen) prefsrc = addrText(data, v, family);
        break;
      case RTA_TABLE:
        if (n >= 4) table = u32(v);
        break;
      case RTA_MULTIPATH:
        multipath = true;
        break;
      case RTA_METRICS:
        walkAttrs(data, v, v + n, (mt, mv, mn) => {
          if (mn >= 4 && mt === RTAX_MTU) mtu = u32(mv);
          if (mn >= 4 && mt === RTAX_ADVMSS) advmss = u32(mv);
        });
        break;
    }
  });
  // The same keys in the same order as routeFromMessage (JSON output stays as it was).
  const route: KernelRoute = {
    family,
    dst: `${dst ?? (family === 4 ? '0.0.0.0' : '::')}/${bits}`,
    table,
    protocol: data[5]!,
    scope: data[6]!,
    type: enumName(data[7]!, rt.RouteType as unknown as Record<string, string>),
    priority,
    tos: data[3]!,
  };
  if (oif !== undefined) route.oif = oif;
  if (via !== undefined) route.via = via;
  if (prefsrc !== undefined) route.prefsrc = prefsrc;
  if (multipath) route.multipath = true;
  if (mtu !== undefined) route.mtu = mtu;
  if (advmss !== undefined) route.advmss = advmss;
  return route;
}

/** Header + attributes of an RTM_NEWROUTE for `w`. */
export function routeWriteToMessage(w: RouteWrite): { data: netlink.rt.Route; attrs: netlink.rt.RouteAttrs } {
  const d = cidrToBytes(w.dst);
  const table = w.table ?? RT_TABLE_MAIN;
  const data: netlink.rt.Route = {
    family: afOf(d.family),
    dstLen: d.bits,
    srcLen: 0,
    tos: 0,
    table: table < 256 ? table : 252 /* RT_TABLE_COMPAT; the real id goes in RTA_TABLE */,
    protocol: w.protocol,
    scope: w.scope,
    type: rt.RouteType.UNICAST,
  };
  const attrs: netlink.rt.RouteAttrs = { dst: d.bytes, oif: w.oif, table };
  if (w.via !== undefined) {
    const g = ipToBytes(w.via);
    if (g.family !== d.family) throw new Error(`route ${w.dst}: gateway ${w.via} is IPv${g.family}, destination is IPv${d.family}`);
    attrs.gateway = g.bytes;
  }
  if (w.priority !== undefined) attrs.priority = w.priority;
  if (w.prefsrc !== undefined) {
    const p = ipToBytes(w.prefsrc);
    if (p.family !== d.family) throw new Error(`route ${w.dst}: src ${w.prefsrc} is IPv${p.family}, destination is IPv${d.family}`);
    attrs.prefsrc = p.bytes;
  }
  if (w.mtu !== undefined || w.advmss !== undefined) {
    attrs.metrics = {
      ...(w.mtu !== undefined ? { mtu: u32Bytes(w.mtu) } : {}),
      ...(w.advmss !== undefined ? { advmss: u32Bytes(w.advmss) } : {}),
    };
  }
  return { data, attrs };
}

/** Attribute numbers of a route message (linux/rtnetlink.h), in the order the package knows them. */
const ROUTE_ATTR: Record<string, number> = { dst: 1, oif: 4, gateway: 5, priority: 6, prefsrc: 7, metrics: 8, table: 15 };
const METRIC_ATTR: Record<string, number> = { mtu: 2, advmss: 8 };

/**
 * The payload of a route message (struct rtmsg, then the attributes) made by routeWriteToMessage
 * or routeKeyToMessage, written into one buffer after `headroom` free bytes (for the netlink
 * header). Byte for byte what the `netlink` package's formatter (rt.formatRouteMessage) writes
 * for the same objects (test/injector/route-encode.test.ts), without its buffer per attribute
 * and closures: an agent start writes thousands of these. Only the fields those two functions
 * set are known; anything else throws.
 */
export function encodeRouteMessage(data: netlink.rt.Route, attrs: netlink.rt.RouteAttrs, headroom = 0): Buffer {
  if (data.flags !== undefined) throw new Error('encodeRouteMessage: rtm_flags are not encoded here');
  const a = attrs as Record<string, unknown>;
  let len = headroom + 12;
  for (const k in a) {
    const v = a[k];
    if (v === undefined) continue;
    if (ROUTE_ATTR[k] === undefined) throw new Error(`encodeRouteMessage: unknown attribute "${k}"`);
    len = align4(len) + 4 + attrLength(k, v);
  }
  // (Pooled, as small buffers are, and zeroed: the padding and the fields not set stay 0.)
  const b = Buffer.allocUnsafe(len).fill(0);
  let off = headroom;
  b[off] = data.family ?? 0;
  b[off + 1] = data.dstLen ?? 0;
  b[off + 2] = data.srcLen ?? 0;
  b[off + 3] = data.tos ?? 0;
  b[off + 4] = data.table ?? 0;
  b[off + 5] = (data.protocol as number | undefined) ?? 0;
  b[off + 6] = (data.scope as number | undefined) ?? 0;
  b[off + 7] = (data.type as number | undefined) ?? 0;
  off += 12;
  for (const k in a) {
    const v = a[k];
    if (v === undefined) continue;
    off = align4(off);
    const start = off;
    b.writeUInt16LE(ROUTE_ATTR[k]!, off + 2);
    off += 4;
    if (k === 'metrics') {
      const m = v as Record<string, Uint8Array | undefined>;
      for (const mk in m) {
        const mv = m[mk];
        if (mv === undefined) continue;
        if (METRIC_ATTR[mk] === undefined) throw new Error(`encodeRouteMessage: unknown metric "${mk}"`);
        off = align4(off);
        b.writeUInt16LE(4 + mv.length, off);
        b.writeUInt16LE(METRIC_ATTR[mk]!, off + 2);
        b.set(mv, off + 4);
        off += 4 + mv.length;
      }
    } else if (typeof v === 'number') {
      writeU32Host(b, v, off);
      off += 4;
    } else {
      b.set(v as Uint8Array, off);
      off += (v as Uint8Array).length;
    }
    b.writeUInt16LE(off - start, start);
  }
  return b;
}

const align4 = (n: number): number => (n + 3) & ~3;

/** Length of an attribute's payload (without its header). */
function attrLength(k: string, v: unknown): number {
  if (k === 'metrics') {
    const m = v as Record<string, Uint8Array | undefined>;
    let n = 0;
    for (const mk in m) if (m[mk] !== undefined) n = align4(n) + 4 + m[mk].length;
    return n;
  }
  return typeof v === 'number' ? 4 : (v as Uint8Array).length;
}

function writeU32Host(b: Buffer, v: number, off: number): void {
  if (HOST_LE) b.writeUInt32LE(v >>> 0, off);
  else b.writeUInt32BE(v >>> 0, off);
}

/** Header + attributes of an RTM_DELROUTE for `k`. */
export function routeKeyToMessage(k: RouteKey): { data: netlink.rt.Route; attrs: netlink.rt.RouteAttrs } {
  const d = cidrToBytes(k.dst);
  const table = k.table ?? RT_TABLE_MAIN;
  const data: netlink.rt.Route = {
    family: afOf(d.family),
    dstLen: d.bits,
    srcLen: 0,
    tos: k.tos ?? 0,
    table: table < 256 ? table : 252,
    scope: k.scope ?? RT_SCOPE_NOWHERE,
  };
  if (k.protocol !== undefined) data.protocol = k.protocol;
  const attrs: netlink.rt.RouteAttrs = { dst: d.bytes, table };
  if (k.priority !== undefined) attrs.priority = k.priority;
  if (k.oif !== undefined) attrs.oif = k.oif;
  if (k.via !== undefined) attrs.gateway = ipToBytes(k.via).bytes;
  return { data, attrs };
}

/** FRA action "lookup a table" (FR_ACT_TO_TBL). */
export const FR_ACT_TO_TBL = 1;

/** A policy routing rule as read from the kernel, normalized (the parts we compare). */
export interface KernelRule {
  family: Family;
  /** Rule preference (FRA_PRIORITY); 0 when absent (the `local` rule). */
  priority: number;
  /** Table looked up (FRA_TABLE, else the header's). */
  table: number;
  /** Who installed it (FRA_PROTOCOL); 0 when absent. */
  protocol: number;
  /** FR_ACT_* (1 = lookup). */
  action: number;
  /** `from` selector as a canonical CIDR; absent for `from all`. */
  src?: string;
  /** `to` selector as a canonical CIDR. */
  dst?: string;
  /** Anything else that makes the rule select less than "from src" (iif, oif, fwmark, tos, ...): we never own such a rule. */
  extra: boolean;
}

/** What to write (and, for deletes, match): `from src lookup table pref priority proto protocol`. */
export interface RuleWrite {
  src: string;
  table: number;
  priority: number;
  protocol: number;
}

function u8Table(table: number): number {
  return table < 256 ? table : 0; // RT_TABLE_UNSPEC; the real id goes in FRA_TABLE
}

/** A u32 rule attribute that is set: the kernel sends the suppress_* ones always, 0xffffffff (-1) meaning "not set". */
function setU32(b: Buffer | undefined): boolean {
  return !!b && b.length >= 4 && b.readUInt32LE(0) !== 0xffffffff;
}

/** Normalize a parsed RTM_NEWRULE/DELRULE message; null for families other than IPv4/IPv6. */
export function ruleFromMessage(m: netlink.rt.RuleMessage): KernelRule | null {
  const family: Family | null = m.data.family === AF_INET ? 4 : m.data.family === AF_INET6 ? 6 : null;
  if (family === null) return null;
  const len = family === 4 ? 4 : 16;
  const a = m.attrs;
  const rule: KernelRule = {
    family,
    priority: a.priority ?? 0,
    table: a.table ?? m.data.table ?? 0,
    protocol: a.protocol ?? 0,
    action: enumNumber(m.data.action, rt.RuleAction as unknown as Record<string, number>),
    extra: Boolean(
      a.iifname ||
      a.oifname ||
      a.fwmark ||
      a.goto ||
      a.l3Mdev ||
      a.uidRange ||
      a.ipProto ||
      a.sportRange ||
      a.dportRange ||
      m.data.tos ||
      setU32(a.suppressPrefixlen) ||
      setU32(a.suppressIfgroup) ||
      m.data.flags?.invert,
    ),
  };
  if ((m.data.srcLen ?? 0) > 0 || a.src)
    rule.src = formatCIDR({ family, value: bytesToBigint(a.src ?? Buffer.alloc(len)), bits: m.data.srcLen ?? 0 });
  if ((m.data.dstLen ?? 0) > 0 || a.dst)
    rule.dst = formatCIDR({ family, value: bytesToBigint(a.dst ?? Buffer.alloc(len)), bits: m.data.dstLen ?? 0 });
  return rule;
}

/** Header + attributes of an RTM_NEWRULE/RTM_DELRULE for `w` (a delete matches all these fields). */
export function ruleWriteToMessage(w: RuleWrite): { data: netlink.rt.Rule; attrs: netlink.rt.RuleAttrs } {
  const s = cidrToBytes(w.src);
  const data: netlink.rt.Rule = {
    family: afOf(s.family),
    srcLen: s.bits,
    dstLen: 0,
    tos: 0,
    table: u8Table(w.table),
    action: FR_ACT_TO_TBL,
  };
  const attrs: netlink.rt.RuleAttrs = { src: s.bytes, table: w.table, priority: w.priority, protocol: w.protocol };
  return { data, attrs };
}

/** An address of an interface (RTM_NEWADDR), normalized. */
export interface KernelAddr {
  index: number;
  family: Family;
  address: string;
  prefixLen: number;
  scope: number;
}

/** Normalize a parsed address message; null for other families or without an address. */
export function addrFromMessage(m: netlink.rt.AddressMessage): KernelAddr | null {
  const family: Family | null = m.data.family === AF_INET ? 4 : m.data.family === AF_INET6 ? 6 : null;
  if (family === null) return null;
  // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's on point-to-point links).
  const b = m.attrs.local ?? m.attrs.address;
  if (!b) return null;
  return { index: m.data.index ?? 0, family, address: ipFromBytes(b, family), prefixLen: m.data.prefixlen ?? 0, scope: m.data.scope ?? 0 };
}
