/**
 * IPv4/IPv6 address and CIDR parsing with the same acceptance rules as Kubernetes' CEL
 * `isIP` / `isCIDR` (Go netip): no IPv4 leading zeros, no zones, no IPv4-mapped IPv6,
 * no leading zeros in a prefix length. Surrounding whitespace is trimmed (config files
 * carry strays such as "172.16.0.0/16 "); host bits set in a CIDR are an error, never masked.
 */

export type Family = 4 | 6;

export interface IP {
  family: Family;
  value: bigint;
}
export interface CIDR {
  family: Family;
  value: bigint;
  bits: number;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** Dotted quad to a 32-bit number, or null. Hand-rolled: this is the hot path of resolution. */
function parseV4Number(s: string): number | null {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 46; // treat the end as a final '.'
    if (c === 46) {
      if (digits === 0 || octet > 255) return null;
      value = value * 256 + octet;
      if (i < s.length && ++dots > 3) return null;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return null; // leading zero ("01")
      octet = octet * 10 + (c - 48);
      if (++digits > 3) return null;
    } else return null;
  }
  return dots === 3 ? value : null;
}

function parseV4(s: string): bigint | null {
  const n = parseV4Number(s);
  return n === null ? null : BigInt(n);
}

function parseV6(s: string): bigint | null {
  if (s.includes('%')) return null; // zones are not accepted (Kubernetes CEL rule)
  let head = s;
  let tailV4: bigint | null = null;
  if (s.includes('.')) {
    const lastColon = s.lastIndexOf(':');
    tailV4 = parseV4(s.slice(lastColon + 1));
    if (tailV4 === null) return null;
    head = s.slice(0, lastColon + 1); // "1:2:3:4:5:6:" or "64:ff9b::" or "::"
    if (!head.endsWith('::')) head = head.slice(0, -1);
  }
  const groupsWanted = tailV4 === null ? 8 : 6;
  const dbl = head.indexOf('::');
  if (dbl !== head.lastIndexOf('::')) return null;
  const splitGroups = (x: string): string[] | null => (x === '' ? [] : x.split(':'));
  let groups: string[];
  if (dbl >= 0) {
    const left = splitGroups(head.slice(0, dbl));
    const right = splitGroups(head.slice(dbl + 2));
    if (!left || !right) return null;
    const missing = groupsWanted - left.length - right.length;
    if (missing < 1) return null;
    groups = [...left, ...Array<string>(missing).fill('0'), ...right];
  } else {
    groups = head.split(':');
  }
  if (groups.length !== groupsWanted) return null;
  let v = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  if (tailV4 !== null) v = (v << 32n) | tailV4;
  return v;
}

/** Parse an IP address (trimmed). */
export function parseIP(input: string): Parsed<IP> {
  return parseAddr(input.trim());
}

/** Parse an IP address exactly as written, as Kubernetes' CEL `ip()` does. */
export function parseAddr(s: string): Parsed<IP> {
  if (s === '') return { ok: false, error: 'empty IP address' };
  if (s.includes(':')) {
    const v = parseV6(s);
    if (v === null) return { ok: false, error: `"${s}" is not a valid IPv6 address` };
    if (v >> 32n === 0xffffn) return { ok: false, error: `"${s}" is an IPv4-mapped IPv6 address; write the IPv4 address instead` };
    return { ok: true, value: { family: 6, value: v } };
  }
  const v = parseV4(s);
  if (v === null) return { ok: false, error: `"${s}" is not a valid IPv4 address (four decimal octets 0-255, no leading zeros)` };
  return { ok: true, value: { family: 4, value: v } };
}

/**
 * Parse ADDRESS/PREFIX exactly as written (no trimming) with host bits allowed, as
 * Kubernetes' CEL `cidr()` does. Use parseCIDR for user input.
 */
export function parsePrefix(s: string): Parsed<CIDR> {
  const slash = s.indexOf('/');
  if (slash < 0) return { ok: false, error: `"${s}" is not a CIDR: expected ADDRESS/PREFIX, e.g. 172.16.10.0/24` };
  const addr = s.slice(0, slash);
  if (addr !== addr.trim()) return { ok: false, error: `"${s}" is not a valid CIDR: stray whitespace` };
  const ip = parseIP(addr);
  if (!ip.ok) return { ok: false, error: `"${s}" is not a valid CIDR: ${ip.error}` };
  const bitsStr = s.slice(slash + 1);
  const max = ip.value.family === 4 ? 32 : 128;
  if (!/^(0|[1-9][0-9]{0,2})$/.test(bitsStr) || Number(bitsStr) > max) {
    return { ok: false, error: `"${s}" is not a valid CIDR: prefix length must be 0-${max}` };
  }
  return { ok: true, value: { family: ip.value.family, value: ip.value.value, bits: Number(bitsStr) } };
}

/** The network of a prefix (host bits cleared). */
export function maskCIDR(c: CIDR): CIDR {
  const width = BigInt(c.family === 4 ? 32 : 128);
  const hostMask = (1n << (width - BigInt(c.bits))) - 1n;
  return { family: c.family, value: c.value & ~hostMask, bits: c.bits };
}

/**
 * Whether every address of `inner` is in `outer` (same family, `inner` at least as long a
 * prefix, and inside it). A CIDR is within itself.
 */
export function cidrWithin(inner: CIDR, outer: CIDR): boolean {
  if (inner.family !== outer.family || inner.bits < outer.bits) return false;
  // Equal in the outer prefix's leading bits.
  return networkAt(inner, outer.bits) === networkAt(outer, outer.bits);
}

/**
 * The leading `bits` bits of `c`'s first address: a number for IPv4 (nothing allocated, as
 * BigInt arithmetic would), a bigint for IPv6. Equal values, same network of that length.
 */
export function networkAt(c: CIDR | IP, bits: number): number | bigint {
  if (c.family === 4) return Math.floor(Number(c.value) / 2 ** (32 - bits));
  return c.value >> BigInt(128 - bits);
}

/** Parse a CIDR (trimmed); host bits set is an error naming the network it should be. */
export function parseCIDR(input: string): Parsed<CIDR> {
  const p = parsePrefix(input.trim());
  if (!p.ok) return p;
  const net = maskCIDR(p.value);
  if (net.value !== p.value.value) {
    return { ok: false, error: `"${input.trim()}" has host bits set: did you mean ${formatCIDR(net)}?` };
  }
  return p;
}

/** Format an address canonically (IPv6 per RFC 5952: lowercase, longest zero run compressed). */
export function formatIP(ip: IP): string {
  if (ip.family === 4) {
    const v = Number(ip.value);
    return `${Math.floor(v / 16777216)}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((ip.value >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export function formatCIDR(c: CIDR): string {
  return `${formatIP(c)}/${c.bits}`;
}

/** Canonical text of a CIDR, or throws with the parse error. */
export function canonicalCIDR(input: string): string {
  const r = parseCIDR(input);
  if (!r.ok) throw new Error(r.error);
  return formatCIDR(r.value);
}

/** Canonical text of an IP, or throws with the parse error. */
export function canonicalIP(input: string): string {
  const r = parseIP(input);
  if (!r.ok) throw new Error(r.error);
  return formatIP(r.value);
}

/** The host route (/32 or /128) for an address. */
export function hostCIDR(ip: IP): string {
  return `${formatIP(ip)}/${ip.family === 4 ? 32 : 128}`;
}

/** Order CIDRs: IPv4 before IPv6, then by address, then by prefix length. */
export function compareCIDR(a: CIDR, b: CIDR): number {
  if (a.family !== b.family) return a.family - b.family;
  if (a.value !== b.value) return a.value < b.value ? -1 : 1;
  return a.bits - b.bits;
}
