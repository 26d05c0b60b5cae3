// Route attributes (src, metric, mtu, advmss; issue 14) in the injector's pure parts,
// table-tested without the kernel: the diff compares them exactly, the codec writes and
// reads RTA_PREFSRC/RTA_PRIORITY/RTA_METRICS, the saved default keeps them, `routes` shows them.
import t from 'tap';
import { kernelRoute, LINKS } from '../util/kernel-routes.js';
import type { Plan } from '../../core/types.js';
import { createRequire } from 'node:module';
import type * as Structs from 'netlink/dist/structs.js';
import { rt } from '../../injector/kernel/netlink-lite.js';
import { routeFromMessage, routeWriteToMessage, type KernelRoute } from '../../injector/kernel/netlink-codec.js';
import { diffRoutes } from '../../injector/routes/diff.js';
import { encodeSavedDefault, parseSavedDefault } from '../../injector/routes/saved.js';
import { formatRouteTable4, formatRouteTable6 } from '../../injector/routes/table.js';

const { AttrStream } = createRequire(import.meta.url)('netlink/dist/structs.js') as typeof Structs;
const OURS = 111;
/** Ours by default, and scope universe for IPv6 as the kernel reports it. */
const kr = (dst: string, dev: string, o: Partial<KernelRoute> = {}): KernelRoute =>
  kernelRoute(dst, dev, { protocol: OURS, scope: o.via || dst.includes(':') ? 0 : 253, ...o });
const P = (routes: Plan['routes'], def?: Plan['default']): Plan => (def ? { v: 1, routes, default: def } : { v: 1, routes });
const D = '172.16.10.0/24';

t.test('diffRoutes compares attributes', async (t) => {
  const cases: { name: string; plan: Plan; table: KernelRoute[]; want: Record<string, string[]> }[] = [
    {
      name: 'owned route with the same attributes: unchanged',
      plan: P([{ dst: D, dev: 'eth1', src: '10.124.2.5', mtu: 1400, advmss: 1360, metric: 100 }]),
      table: [kr(D, 'eth1', { prefsrc: '10.124.2.5', mtu: 1400, advmss: 1360, priority: 100 })],
      want: { unchanged: [D] },
    },
    {
      name: 'owned route whose mtu drifted: replaced at its metric',
      plan: P([{ dst: D, dev: 'eth1', mtu: 1400 }]),
      table: [kr(D, 'eth1', { mtu: 1500, priority: 7 })],
      want: { replace: [`${D} metric 7 (have 7)`] },
    },
    {
      name: 'owned route that lost its advmss: replaced',
      plan: P([{ dst: D, dev: 'eth1', advmss: 1360 }]),
      table: [kr(D, 'eth1')],
      want: { replace: [`${D} metric 0 (have 0)`] },
    },
    {
      name: 'owned route with an mtu the plan no longer has: replaced (exact, not "at least")',
      plan: P([{ dst: D, dev: 'eth1' }]),
      table: [kr(D, 'eth1', { mtu: 1400 })],
      want: { replace: [`${D} metric 0 (have 0)`] },
    },
    {
      name: 'owned route with another src: replaced',
      plan: P([{ dst: D, dev: 'eth1', src: '10.124.2.5' }]),
      table: [kr(D, 'eth1', { prefsrc: '10.124.2.6' })],
      want: { replace: [`${D} metric 0 (have 0)`] },
    },
    {
      name: 'a plan without a metric accepts any metric',
      plan: P([{ dst: D, dev: 'eth1' }]),
      table: [kr(D, 'eth1', { priority: 300 })],
      want: { unchanged: [D] },
    },
    {
      name: 'a new metric: the write goes to the new metric (swap = add + delete)',
      plan: P([{ dst: D, dev: 'eth1', metric: 50 }]),
      table: [kr(D, 'eth1', { priority: 300 })],
      want: { replace: [`${D} metric 50 (have 300)`] },
    },
    {
      name: 'two owned routes, one at the wanted metric: that one is replaced, the other removed',
      plan: P([{ dst: D, dev: 'eth1', metric: 50, mtu: 1400 }]),
      table: [kr(D, 'eth1', { priority: 300 }), kr(D, 'eth1', { priority: 50 })],
      want: { replace: [`${D} metric 50 (have 50)`], remove: [`${D} metric 300`] },
    },
    {
      name: 'two owned routes, one exactly right: it is kept, the other removed',
      plan: P([{ dst: D, dev: 'eth1', metric: 50 }]),
      table: [kr(D, 'eth1', { priority: 300 }), kr(D, 'eth1', { priority: 50 })],
      want: { unchanged: [D], remove: [`${D} metric 300`] },
    },
    {
      name: 'a foreign connected route with a src routes our way when the plan sets no src',
      plan: P([{ dst: '10.124.2.0/24', dev: 'eth1' }]),
      table: [kr('10.124.2.0/24', 'eth1', { protocol: 2, prefsrc: '10.124.2.5' })],
      want: { unchanged: ['10.124.2.0/24'] },
    },
    {
      name: 'a foreign route without the mtu the plan sets is a collision',
      plan: P([{ dst: '10.124.2.0/24', dev: 'eth1', mtu: 1400 }]),
      table: [kr('10.124.2.0/24', 'eth1', { protocol: 2, prefsrc: '10.124.2.5' })],
      want: { skipped: ['10.124.2.0/24 collision'] },
    },
    {
      name: 'IPv6 route: attributes compared as for IPv4',
      plan: P([{ dst: 'fd00:10::/64', dev: 'eth1', mtu: 1280, metric: 1024 }]),
      table: [kr('fd00:10::/64', 'eth1', { priority: 1024, mtu: 1500 })],
      want: { replace: ['fd00:10::/64 metric 1024 (have 1024)'] },
    },
    {
      name: 'default route: an owned one with another mtu is replaced',
      plan: P([], { dev: 'eth1', via: '10.124.2.1', mtu: 1450 }),
      table: [kr('0.0.0.0/0', 'eth1', { via: '10.124.2.1' })],
      want: { defaults: ['replace-owned mtu 1450'] },
    },
    {
      name: 'default route: a foreign one is taken over, its metric kept when none is asked',
      plan: P([], { dev: 'eth1', via: '10.124.2.1', advmss: 1400 }),
      table: [kr('0.0.0.0/0', 'eth0', { protocol: 3, via: '169.254.1.1', priority: 5 })],
      want: { defaults: ['take-over replacing metric 5'] },
    },
    {
      name: 'default route: family from src when there is no via',
      plan: P([], { dev: 'eth1', src: 'fd00::5' }),
      table: [kr('::/0', 'eth0', { protocol: 3, via: 'fe80::1', priority: 1024 })],
      want: { defaults: ['take-over replacing metric 1024'] },
    },
  ];
  for (const c of cases) {
    const d = diffRoutes({ plan: c.plan, table: c.table, links: LINKS, protocol: OURS });
    const got: Record<string, string[]> = {
      add: d.add.map((x) => x.dst),
      replace: d.replace.map((x) => `${x.want.dst} metric ${x.want.metric ?? x.have.priority} (have ${x.have.priority})`),
      remove: d.remove.map((x) => `${x.dst} metric ${x.priority}`),
      unchanged: d.unchanged.map((x) => x.dst),
      skipped: d.skipped.map((x) => `${x.dst} ${x.reason}`),
      defaults: d.defaults.map((a) =>
        a.kind === 'take-over'
          ? `take-over replacing metric ${a.replacing?.priority}`
          : a.kind === 'replace-owned'
            ? `replace-owned mtu ${a.want.mtu}`
            : a.kind,
      ),
    };
    t.same(got, { add: [], replace: [], remove: [], unchanged: [], skipped: [], defaults: [], ...c.want }, c.name);
  }
});

t.test('codec: attributes written as RTA_PREFSRC, RTA_PRIORITY, RTA_METRICS and read back', async (t) => {
  const cases: { name: string; w: Parameters<typeof routeWriteToMessage>[0]; back: Partial<KernelRoute> }[] = [
    {
      name: 'IPv4, every attribute',
      w: { dst: D, oif: 3, scope: 253, protocol: OURS, prefsrc: '10.124.2.5', priority: 100, mtu: 1400, advmss: 1360 },
      back: { prefsrc: '10.124.2.5', priority: 100, mtu: 1400, advmss: 1360 },
    },
    {
      name: 'IPv6, mtu only',
      w: { dst: 'fd00:10::/64', oif: 3, scope: 0, protocol: OURS, via: 'fd00:10::1', mtu: 1280 },
      back: { via: 'fd00:10::1', mtu: 1280 },
    },
    {
      name: 'the largest values',
      w: { dst: D, oif: 3, scope: 253, protocol: OURS, priority: 4294967295, mtu: 65520, advmss: 65495 },
      back: { priority: 4294967295, mtu: 65520, advmss: 65495 },
    },
    { name: 'no attributes: no RTA_METRICS', w: { dst: D, oif: 3, scope: 253, protocol: OURS }, back: {} },
  ];
  for (const c of cases) {
    const { data, attrs } = routeWriteToMessage(c.w);
    if (c.w.mtu === undefined && c.w.advmss === undefined) t.equal(attrs.metrics, undefined, `${c.name}: no metrics attribute`);
    // Through the package's own wire format and back, as the kernel would echo it.
    const out = new AttrStream();
    rt.formatRouteMessage({ kind: 'route', data, attrs } as never, out);
    const msg = rt.parseRouteMessage(Buffer.concat(out.bufs));
    const r = routeFromMessage(msg);
    t.ok(r, `${c.name}: parsed`);
    for (const [k, v] of Object.entries(c.back)) t.equal((r as unknown as Record<string, unknown>)[k], v, `${c.name}: ${k}`);
    for (const k of ['prefsrc', 'mtu', 'advmss'] as const) if (!(k in c.back)) t.equal(r?.[k], undefined, `${c.name}: no ${k}`);
  }
  t.throws(
    () => routeWriteToMessage({ dst: D, oif: 3, scope: 253, protocol: OURS, prefsrc: 'fd00::5' }),
    /src fd00::5 is IPv6, destination is IPv4/,
  );
});

t.test('a saved default keeps its attributes', async (t) => {
  const s = {
    family: 4 as const,
    route: { dev: 'eth0', via: '169.254.1.1', protocol: 3, scope: 0, priority: 0, prefsrc: '10.0.0.5', mtu: 1450, advmss: 1410 },
  };
  t.same(parseSavedDefault(encodeSavedDefault(s), 'f'), s);
  const old = { family: 4 as const, route: { dev: 'eth0', protocol: 3, scope: 253, priority: 0 } };
  t.same(parseSavedDefault(encodeSavedDefault(old), 'f'), old, 'a file without attributes reads as before');
  t.throws(
    () => parseSavedDefault('{"v":1,"family":4,"route":{"dev":"eth0","protocol":3,"scope":0,"priority":0,"mtu":"x"}}', 'f'),
    /route\.mtu must be/,
  );
});

t.test('routes: an Attributes column when a route has one', async (t) => {
  const routes = [
    kr('0.0.0.0/0', 'eth0', { protocol: 3, via: '169.254.1.1', scope: 0 }),
    kr(D, 'eth1', { prefsrc: '10.124.2.5', mtu: 1400, advmss: 1360, priority: 100 }),
  ];
  t.equal(
    formatRouteTable4(routes, OURS),
    [
      'Kernel IP routing table',
      'Destination     Gateway         Genmask         Flags Metric Iface  Proto  Owner         Attributes',
      '0.0.0.0         169.254.1.1     0.0.0.0         UG    0      eth0   boot',
      '172.16.10.0     0.0.0.0         255.255.255.0   U     100    eth1   111    ovnkube-route src 10.124.2.5 mtu 1400 advmss 1360',
      '',
    ].join('\n'),
  );
  t.match(
    formatRouteTable6([kr('fd00:10::/64', 'eth1', { mtu: 1280, priority: 1024 })], OURS),
    /fd00:10::\/64 +:: +U +1024 +eth1 +111 +ovnkube-route mtu 1280\n/,
  );
  t.notMatch(formatRouteTable4([routes[0]!], OURS), /Attributes/, 'no column when no route has an attribute');
  t.notMatch(
    formatRouteTable4([routes[0]!, kr('10.124.2.0/24', 'eth1', { protocol: 2, prefsrc: '10.124.2.5' })], OURS),
    /Attributes/,
    "nor for the src of the kernel's connected routes alone",
  );
  t.match(
    formatRouteTable4(
      [kr('10.124.2.0/24', 'eth1', { protocol: 2, prefsrc: '10.124.2.5' }), kr(D, 'eth1', { prefsrc: '10.124.2.5' })],
      OURS,
    ),
    /10\.124\.2\.0 .* kernel +src 10\.124\.2\.5\n172\.16\.10\.0 .* ovnkube-route src 10\.124\.2\.5\n/,
    "a src of ours adds it, with every route's src",
  );
});

t.test("via gateway: the gateway of dev is found in the pod's table, or reported", async (t) => {
  const CNI = [
    kr('0.0.0.0/0', 'eth0', { protocol: 3, via: '169.254.1.1' }),
    kr('10.124.2.0/24', 'eth1', { protocol: 2, prefsrc: '10.124.2.5' }),
  ];
  const cases: { name: string; table: KernelRoute[]; plan: Plan; routes: string[]; def?: string; skipped?: string[] }[] = [
    {
      name: "from the CNI's route through a gateway on that dev",
      table: [...CNI, kr('10.124.0.0/16', 'eth1', { protocol: 3, via: '10.124.2.1' })],
      plan: P([
        { dst: D, dev: 'eth1', via: 'gateway', mtu: 1400 },
        { dst: '192.168.2.0/24', dev: 'eth0', via: 'gateway' },
      ]),
      routes: [`${D} eth1 via 10.124.2.1 mtu 1400`, '192.168.2.0/24 eth0 via 169.254.1.1'],
    },
    {
      name: 'a default route on that dev (the shortest prefix) is preferred, then the lowest metric',
      table: [
        ...CNI,
        kr('10.124.0.0/16', 'eth1', { protocol: 3, via: '10.124.2.1' }),
        kr('0.0.0.0/0', 'eth1', { protocol: 3, via: '10.124.2.254', priority: 200 }),
        kr('0.0.0.0/0', 'eth1', { protocol: 3, via: '10.124.2.253', priority: 100 }),
      ],
      plan: P([{ dst: D, dev: 'eth1', via: 'gateway' }]),
      routes: [`${D} eth1 via 10.124.2.253`],
    },
    {
      name: 'routes of ours are never the source (they may be what we wrote from it)',
      table: [...CNI, kr('10.200.0.0/16', 'eth1', { via: '10.124.2.99' })],
      plan: P([{ dst: D, dev: 'eth1', via: 'gateway' }]),
      routes: [],
      skipped: [`${D} eth1 no-gateway`],
    },
    {
      name: 'the family of the destination: no IPv6 gateway on eth1',
      table: [...CNI, kr('10.124.0.0/16', 'eth1', { protocol: 3, via: '10.124.2.1' })],
      plan: P([{ dst: 'fd00:99::/64', dev: 'eth1', via: 'gateway' }]),
      routes: [],
      skipped: ['fd00:99::/64 eth1 no-gateway'],
    },
    {
      name: 'IPv6 from an IPv6 gateway route',
      table: [...CNI, kr('fd00:124::/48', 'eth1', { protocol: 3, via: 'fd00:124::1', priority: 1024 })],
      plan: P([{ dst: 'fd00:99::/64', dev: 'eth1', via: 'gateway' }]),
      routes: ['fd00:99::/64 eth1 via fd00:124::1'],
    },
    {
      name: 'a default route via gateway',
      table: [...CNI, kr('10.124.0.0/16', 'eth1', { protocol: 3, via: '10.124.2.1' })],
      plan: P([], { dev: 'eth1', via: 'gateway', mtu: 1450 }),
      routes: [],
      def: 'eth1 via 10.124.2.1 mtu 1450',
    },
    {
      name: 'a default route via gateway with none known is left out and reported',
      table: CNI,
      plan: P([], { dev: 'eth1', via: 'gateway' }),
      routes: [],
      skipped: ['0.0.0.0/0 eth1 no-gateway'],
    },
    {
      name: 'a dev the pod lacks: left to the diff (dev-missing), not reported as no-gateway',
      table: CNI,
      plan: P([{ dst: D, dev: 'eth9', via: 'gateway' }]),
      routes: [`${D} eth9`],
    },
  ];
  const { resolveGateways } = await import('../../injector/routes/diff.js');
  const fmt = (r: { dst?: string; dev: string; via?: string; mtu?: number }): string =>
    `${r.dst ? `${r.dst} ` : ''}${r.dev}${r.via ? ` via ${r.via}` : ''}${r.mtu ? ` mtu ${r.mtu}` : ''}`;
  for (const c of cases) {
    const g = resolveGateways(c.plan, c.table, LINKS, OURS);
    t.same(g.plan.routes.map(fmt), c.routes, `${c.name}: routes`);
    t.same(g.plan.default && fmt(g.plan.default), c.def, `${c.name}: default`);
    t.same(
      g.skipped.map((s) => `${s.dst} ${s.dev} ${s.reason}`),
      c.skipped ?? [],
      `${c.name}: skipped`,
    );
    for (const s of g.skipped)
      t.match(s.detail, /no IPv[46] route through a gateway on eth1 that ovnkube-route did not write/, `${c.name}: the detail says why`);
  }
  // Through the whole diff: a dev-missing one is skipped as such.
  const d = diffRoutes({ plan: P([{ dst: D, dev: 'eth9', via: 'gateway' }]), table: CNI, links: LINKS, protocol: OURS });
  t.same(
    d.skipped.map((s) => s.reason),
    ['dev-missing'],
  );
});
