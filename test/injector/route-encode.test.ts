// The route messages the injector writes (encodeRouteMessage) are byte for byte what the
// `netlink` package's formatter makes of the same objects: every kind of write and key the
// codec produces (both families, gateway, metric, source, MTU and advmss, tables past 255,
// scopes and protocols), in a table, then 500 random ones. On the real kernel the routes they
// write are checked by netlink.test.ts, attributes.test.ts and routes.test.ts.
import t from 'tap';
import { AttrStream, rt } from '../../injector/kernel/netlink-lite.js';
import {
  encodeRouteMessage,
  routeKeyToMessage,
  routeWriteToMessage,
  RT_SCOPE_LINK,
  RT_SCOPE_UNIVERSE,
  type RouteKey,
  type RouteWrite,
} from '../../injector/kernel/netlink-codec.js';

/** What the package's formatter writes for the same data and attributes. */
function packageBytes(m: ReturnType<typeof routeWriteToMessage>): Buffer {
  const out = new AttrStream();
  rt.formatRouteMessage({ kind: 'route', data: m.data, attrs: m.attrs }, out);
  return Buffer.concat(out.bufs);
}

const WRITES: [string, RouteWrite][] = [
  ['IPv4 link route', { dst: '172.16.10.0/24', oif: 3, scope: RT_SCOPE_LINK, protocol: 111 }],
  ['IPv4 gateway route', { dst: '10.96.0.0/12', oif: 2, via: '169.254.1.1', scope: RT_SCOPE_UNIVERSE, protocol: 111 }],
  ['IPv4 default', { dst: '0.0.0.0/0', oif: 3, via: '10.124.2.1', scope: RT_SCOPE_UNIVERSE, protocol: 111 }],
  ['a metric', { dst: '172.16.11.0/24', oif: 3, scope: RT_SCOPE_LINK, protocol: 111, priority: 300 }],
  ['a source', { dst: '172.16.12.0/24', oif: 3, scope: RT_SCOPE_LINK, protocol: 111, prefsrc: '10.124.2.5' }],
  ['mtu only', { dst: '172.16.13.0/24', oif: 3, scope: RT_SCOPE_LINK, protocol: 111, mtu: 1400 }],
  ['advmss only', { dst: '172.16.14.0/24', oif: 3, scope: RT_SCOPE_LINK, protocol: 111, advmss: 1360 }],
  [
    'everything',
    {
      dst: '172.16.15.0/24',
      oif: 3,
      via: '10.124.2.1',
      scope: RT_SCOPE_UNIVERSE,
      protocol: 111,
      priority: 7,
      prefsrc: '10.124.2.5',
      mtu: 9000,
      advmss: 8960,
    },
  ],
  ['a table of its own (> 255)', { dst: '0.0.0.0/0', oif: 3, via: '10.124.2.1', scope: RT_SCOPE_UNIVERSE, protocol: 111, table: 1001 }],
  ['a small table', { dst: '10.0.0.0/8', oif: 3, scope: RT_SCOPE_LINK, protocol: 111, table: 100 }],
  ['IPv6', { dst: 'fd00:99::/64', oif: 3, scope: RT_SCOPE_UNIVERSE, protocol: 111 }],
  [
    'IPv6 gateway, metric, mtu',
    { dst: 'fd00:98::/48', oif: 3, via: 'fd00:124:2::1', scope: RT_SCOPE_UNIVERSE, protocol: 111, priority: 1024, mtu: 1280 },
  ],
  ['IPv6 default', { dst: '::/0', oif: 2, via: 'fe80::1', scope: RT_SCOPE_UNIVERSE, protocol: 4 }],
  ['host route', { dst: '10.96.0.10/32', oif: 2, scope: RT_SCOPE_LINK, protocol: 111 }],
];

const KEYS: [string, RouteKey][] = [
  ['by dst', { dst: '172.16.10.0/24' }],
  ['with protocol', { dst: '172.16.10.0/24', protocol: 111 }],
  ['every field', { dst: '10.0.0.0/8', table: 1001, protocol: 111, priority: 5, oif: 3, via: '10.124.2.1', scope: 0, tos: 16 }],
  ['IPv6', { dst: 'fd00:99::/64', priority: 1024, protocol: 111 }],
];

t.test('route writes: the same bytes as the package formatter', async (t) => {
  for (const [what, w] of WRITES) {
    const m = routeWriteToMessage(w);
    t.same(encodeRouteMessage(m.data, m.attrs), packageBytes(m), what);
  }
});

t.test('route keys (deletes): the same bytes', async (t) => {
  for (const [what, k] of KEYS) {
    const m = routeKeyToMessage(k);
    t.same(encodeRouteMessage(m.data, m.attrs), packageBytes(m), what);
  }
});

t.test('headroom: the message after it, the bytes before it left zero', async (t) => {
  const m = routeWriteToMessage(WRITES[7]![1]);
  const b = encodeRouteMessage(m.data, m.attrs, 16);
  t.same(b.subarray(16), packageBytes(m));
  t.same([...b.subarray(0, 16)], Array(16).fill(0));
});

t.test('500 random writes and keys', async (t) => {
  let seed = 12345;
  const rnd = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const v4 = (): string => `${rnd(224)}.${rnd(256)}.${rnd(256)}.${rnd(256)}`;
  const v6 = (): string => `fd00:${rnd(65536).toString(16)}::${rnd(65536).toString(16)}`;
  let bad = 0;
  for (let i = 0; i < 500; i++) {
    const six = rnd(2) === 1;
    const bits = six ? [48, 64, 128][rnd(3)]! : [8, 16, 24, 32][rnd(4)]!;
    const addr = six ? v6() : v4();
    const net = six ? `${addr}/128` : `${addr}/32`;
    const dst = bits === (six ? 128 : 32) ? net : six ? `fd00:${rnd(65536).toString(16)}::/${bits}` : `${rnd(224)}.0.0.0/8`;
    const w: RouteWrite = { dst, oif: 1 + rnd(40), scope: rnd(2) ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE, protocol: rnd(256) };
    if (rnd(2)) w.via = six ? v6() : v4();
    if (rnd(3) === 0) w.priority = rnd(2 ** 31);
    if (rnd(4) === 0) w.prefsrc = six ? v6() : v4();
    if (rnd(4) === 0) w.mtu = 576 + rnd(9000);
    if (rnd(4) === 0) w.advmss = 536 + rnd(9000);
    if (rnd(5) === 0) w.table = 1 + rnd(5000);
    const m =
      rnd(3) === 0
        ? routeKeyToMessage({ dst: w.dst, priority: w.priority, protocol: w.protocol, table: w.table, via: w.via })
        : routeWriteToMessage(w);
    if (!encodeRouteMessage(m.data, m.attrs).equals(packageBytes(m))) {
      bad++;
      t.fail(`differs: ${JSON.stringify(w)}`);
    }
  }
  t.equal(bad, 0, 'every one the same');
});

t.test('what it does not encode, it refuses', async (t) => {
  const m = routeWriteToMessage(WRITES[0]![1]);
  t.throws(() => encodeRouteMessage({ ...m.data, flags: { fibMatch: true } }, m.attrs), /rtm_flags/);
  t.throws(() => encodeRouteMessage(m.data, { ...m.attrs, mark: Buffer.alloc(4) }), /unknown attribute "mark"/);
  t.throws(() => encodeRouteMessage(m.data, { ...m.attrs, metrics: { window: Buffer.alloc(4) } }), /unknown metric "window"/);
});
