// lookupProof (injector/routes/diff.ts): whether the routes read before the writes prove that
// the kernel's lookup of a plan route's first address answers with that very route (so no
// RTM_GETROUTE is needed). Checked against a reference that states the rule directly, over
// hand-written cases and over random tables of both families.
import t from 'tap';
import { cidrWithin, parsePrefix, type CIDR } from '../../core/ip.js';
import type { PlanRoute } from '../../core/types.js';
import type { KernelRoute } from '../../injector/kernel/netlink-codec.js';
import { lookupProof } from '../../injector/routes/diff.js';

const OURS = 111;
const LOCAL = 255;
const MAIN = 254;

const route = (dst: string, o: Partial<KernelRoute> = {}): KernelRoute => ({
  family: dst.includes(':') ? 6 : 4,
  dst,
  table: MAIN,
  protocol: 4,
  scope: 0,
  type: 'UNICAST',
  priority: 0,
  tos: 0,
  ...o,
});

const prefix = (s: string): CIDR | null => {
  const p = parsePrefix(s);
  return p.ok ? p.value : null;
};

/**
 * The rule itself: the first address of want.dst is in no local-table prefix, and every main
 * route at least as specific as want.dst that holds that address is ours, to want.dst; an
 * unreadable destination in either table proves nothing.
 */
function reference(all: readonly KernelRoute[], want: PlanRoute): boolean {
  const outer = prefix(want.dst);
  if (!outer) return false;
  const first: CIDR = { ...outer, bits: outer.family === 4 ? 32 : 128 };
  for (const k of all) {
    if (k.family !== outer.family || (k.table !== LOCAL && k.table !== MAIN)) continue;
    const c = prefix(k.dst);
    if (!c) return false;
    if (!cidrWithin(first, c)) continue;
    if (k.table === LOCAL) return false;
    if (c.bits >= outer.bits && !(k.protocol === OURS && k.dst === want.dst)) return false;
  }
  return true;
}

const cases: { name: string; table: KernelRoute[]; want: string; proven: boolean }[] = [
  { name: 'ours alone', table: [route('172.16.10.0/24', { protocol: OURS })], want: '172.16.10.0/24', proven: true },
  {
    name: 'a foreign route of the same dst (prepend, another metric)',
    table: [route('172.16.10.0/24', { protocol: OURS }), route('172.16.10.0/24', { priority: 5 })],
    want: '172.16.10.0/24',
    proven: false,
  },
  {
    name: 'a more specific route at the first address',
    table: [route('172.16.10.0/24', { protocol: OURS }), route('172.16.10.0/25')],
    want: '172.16.10.0/24',
    proven: false,
  },
  {
    name: 'a more specific route elsewhere inside does not change the first address',
    table: [route('172.16.10.0/24', { protocol: OURS }), route('172.16.10.128/25')],
    want: '172.16.10.0/24',
    proven: true,
  },
  {
    name: 'a less specific foreign route never wins',
    table: [route('172.16.10.0/24', { protocol: OURS }), route('172.16.0.0/16'), route('0.0.0.0/0')],
    want: '172.16.10.0/24',
    proven: true,
  },
  {
    name: 'another route of ours, more specific, at the first address',
    table: [route('172.16.10.0/24', { protocol: OURS }), route('172.16.10.0/28', { protocol: OURS })],
    want: '172.16.10.0/24',
    proven: false,
  },
  {
    name: 'the first address is local',
    table: [route('10.124.2.0/24', { protocol: OURS }), route('10.124.2.0/32', { table: LOCAL, type: 'LOCAL' })],
    want: '10.124.2.0/24',
    proven: false,
  },
  {
    name: 'a local /8 holding it (127.0.0.0/8)',
    table: [route('127.1.0.0/16', { protocol: OURS }), route('127.0.0.0/8', { table: LOCAL, type: 'LOCAL' })],
    want: '127.1.0.0/16',
    proven: false,
  },
  {
    name: 'a host route (/32) of ours',
    table: [route('10.96.0.10/32', { protocol: OURS }), route('10.96.0.0/12')],
    want: '10.96.0.10/32',
    proven: true,
  },
  {
    name: 'the top of the IPv4 space',
    table: [route('255.255.255.0/24', { protocol: OURS }), route('255.255.255.255/32', { table: LOCAL, type: 'BROADCAST' })],
    want: '255.255.255.0/24',
    proven: true,
  },
  { name: 'IPv6, ours alone', table: [route('fd00:99::/64', { protocol: OURS })], want: 'fd00:99::/64', proven: true },
  {
    name: 'IPv6, a lower metric of another',
    table: [route('fd00:99::/64', { protocol: OURS, priority: 1024 }), route('fd00:99::/64', { priority: 100 })],
    want: 'fd00:99::/64',
    proven: false,
  },
  {
    name: 'IPv6, a more specific at the first address',
    table: [route('fd00:99::/64', { protocol: OURS }), route('fd00:99::/80')],
    want: 'fd00:99::/64',
    proven: false,
  },
  {
    name: 'the other family does not count',
    table: [route('fd00:99::/64', { protocol: OURS }), route('0.0.0.0/32', { table: LOCAL, type: 'LOCAL' })],
    want: 'fd00:99::/64',
    proven: true,
  },
  {
    name: 'an unreadable destination proves nothing',
    table: [route('172.16.10.0/24', { protocol: OURS }), route('not-a-cidr')],
    want: '172.16.10.0/24',
    proven: false,
  },
  {
    name: 'other tables do not count',
    table: [route('172.16.10.0/24', { protocol: OURS }), route('172.16.10.0/25', { table: 100 })],
    want: '172.16.10.0/24',
    proven: true,
  },
];

t.test('hand-written cases', async (t) => {
  for (const c of cases) {
    const want = { dst: c.want, dev: 'eth1' };
    t.equal(reference(c.table, want), c.proven, `${c.name}: the reference agrees with the case`);
    t.equal(lookupProof(c.table, OURS)(want), c.proven, c.name);
  }
});

t.test('random tables: lookupProof answers as the reference', async (t) => {
  // A small PRNG (xorshift), seeded: the same tables on every run.
  let seed = 0x9e3779b9;
  const rnd = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const v4 = (bits: number): string => {
    // Addresses near each other, so that prefixes nest and collide often.
    const a = [10, rnd(2), rnd(4), rnd(4) * 64].map(Number);
    const v = ((a[0]! * 256 + a[1]!) * 256 + a[2]!) * 256 + a[3]!;
    const net = bits === 0 ? 0 : Math.floor(v / 2 ** (32 - bits)) * 2 ** (32 - bits);
    return `${Math.floor(net / 16777216)}.${Math.floor(net / 65536) % 256}.${Math.floor(net / 256) % 256}.${net % 256}/${bits}`;
  };
  const v6 = (bits: number): string => {
    const v = (0xfd00n << 112n) | (BigInt(rnd(3)) << 80n) | (BigInt(rnd(3)) << 64n) | BigInt(rnd(3));
    const net = bits === 0 ? 0n : (v >> BigInt(128 - bits)) << BigInt(128 - bits);
    const groups = Array.from({ length: 8 }, (_, i) => ((net >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
    return `${groups.join(':')}/${bits}`;
  };
  let proven = 0;
  let checked = 0;
  for (let round = 0; round < 400; round++) {
    const fam = rnd(2) === 0 ? 4 : 6;
    const gen = (): string => (fam === 4 ? v4([0, 8, 16, 24, 25, 26, 32][rnd(7)]!) : v6([0, 48, 64, 80, 96, 128][rnd(6)]!));
    const table: KernelRoute[] = [];
    const n = 1 + rnd(12);
    for (let i = 0; i < n; i++) {
      const local = rnd(6) === 0;
      table.push(route(gen(), local ? { table: LOCAL, type: 'LOCAL' } : { protocol: rnd(2) === 0 ? OURS : 4, priority: rnd(3) }));
    }
    // Both ways lookupProof answers: a scan of the table for the first few questions, an
    // index from the fourth on (three questions asked first to get there).
    const indexed = lookupProof(table, OURS);
    for (let i = 0; i < 3; i++) indexed({ dst: '0.0.0.0/0', dev: 'eth1' });
    for (const k of table.filter((x) => x.protocol === OURS && x.table === MAIN)) {
      const want = { dst: k.dst, dev: 'eth1' };
      const r = reference(table, want);
      checked++;
      if (r) proven++;
      const where = `round ${round}: ${k.dst} in ${JSON.stringify(table.map((x) => [x.dst, x.table, x.protocol]))}`;
      if (lookupProof(table, OURS)(want) !== r) t.fail(`scanned: ${where}`);
      if (indexed(want) !== r) t.fail(`indexed: ${where}`);
    }
  }
  t.ok(checked > 500, `${checked} plan routes checked`);
  t.ok(proven > 50 && proven < checked - 50, `both answers are common (${proven} proven of ${checked})`);
});
