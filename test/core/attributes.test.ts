// Route attributes (src, metric, mtu, advmss; issue 14) through core: resolve carries them into
// the plan and decides conflicts on them, the plan codec encodes them canonically and refuses
// what is wrong, and convert accepts them in configuration entries. Table-driven.
import t from 'tap';
import { convertConfig } from '../../core/config.js';
import { canonicalPlanJSON, decodePlan, encodePlan, planHash, planKeyFromSecret } from '../../core/plan-codec.js';
import { resolvePlan, type ResolveContext } from '../../core/resolve.js';
import type { Plan, Pod, Route, RouteSpec, Service } from '../../core/types.js';

const route = (name: string, spec: RouteSpec): Route => ({ apiVersion: 'k8s.ovn.org/v1', kind: 'Route', metadata: { name }, spec });
const POD: Pod = { kind: 'Pod', metadata: { namespace: 'default', name: 'web' }, spec: {} };
const SVCS: Service[] = [
  { kind: 'Service', metadata: { namespace: 'default', name: 'v4' }, spec: { clusterIP: '10.86.205.109', clusterIPs: ['10.86.205.109'] } },
  {
    kind: 'Service',
    metadata: { namespace: 'default', name: 'dual' },
    spec: { clusterIP: '10.86.0.20', clusterIPs: ['10.86.0.20', 'fd00:86::20'] },
  },
];
const ctx = (routes: Route[]): ResolveContext => ({
  routes,
  namespace: { metadata: { name: 'default' } },
  service: (ns, n) => SVCS.find((s) => s.metadata?.namespace === ns && s.metadata?.name === n),
  owners: [],
  mode: 'default',
});

t.test('resolve: attributes reach the plan, canonical', async (t) => {
  const cases: {
    name: string;
    routes: Route[];
    routesOut?: Plan['routes'];
    def?: Plan['default'];
    invalid?: RegExp;
    unresolved?: RegExp;
  }[] = [
    {
      name: 'CIDR rule with every attribute (src made canonical)',
      routes: [route('a', { route: [{ dst: '172.16.10.0/24', dev: 'eth1', advmss: 1360, mtu: 1400, metric: 100, src: '10.124.2.5' }] })],
      routesOut: [{ dst: '172.16.10.0/24', dev: 'eth1', src: '10.124.2.5', metric: 100, mtu: 1400, advmss: 1360 }],
    },
    {
      name: 'IPv6 src written long-hand is canonical in the plan',
      routes: [route('a', { route: [{ dst: 'fd00:10::/64', dev: 'eth1', src: 'fd00:0010:0:0::5', mtu: 1280 }] })],
      routesOut: [{ dst: 'fd00:10::/64', dev: 'eth1', src: 'fd00:10::5', mtu: 1280 }],
    },
    {
      name: 'metric 0 is kept (it is not "absent")',
      routes: [route('a', { route: [{ dst: '172.16.10.0/24', dev: 'eth1', metric: 0 }] })],
      routesOut: [{ dst: '172.16.10.0/24', dev: 'eth1', metric: 0 }],
    },
    {
      name: 'Service rule: attributes on its /32',
      routes: [route('a', { svc: [{ namespace: 'default', name: 'v4', dev: 'eth1', mtu: 1400, metric: 7 }] })],
      routesOut: [{ dst: '10.86.205.109/32', dev: 'eth1', metric: 7, mtu: 1400 }],
    },
    {
      name: 'dual-stack Service with an IPv4 src: the IPv6 ClusterIP is reported, the IPv4 one routed',
      routes: [route('a', { svc: [{ namespace: 'default', name: 'dual', dev: 'eth1', src: '10.124.2.5' }] })],
      routesOut: [{ dst: '10.86.0.20/32', dev: 'eth1', src: '10.124.2.5' }],
      unresolved: /ClusterIP fd00:86::20: src 10\.124\.2\.5 is IPv4 but the route is IPv6/,
    },
    {
      name: 'dual-stack Service with mtu 1000: too small for the IPv6 ClusterIP only',
      routes: [route('a', { svc: [{ namespace: 'default', name: 'dual', dev: 'eth1', mtu: 1000 }] })],
      routesOut: [{ dst: '10.86.0.20/32', dev: 'eth1', mtu: 1000 }],
      unresolved: /ClusterIP fd00:86::20: mtu 1000 is below IPv6's minimum of 1280/,
    },
    {
      name: 'default route with attributes',
      routes: [route('a', { defaultRoute: { dev: 'eth1', via: '10.124.2.1', mtu: 1450, src: '10.124.2.5', metric: 10 } })],
      routesOut: [],
      def: { dev: 'eth1', via: '10.124.2.1', src: '10.124.2.5', metric: 10, mtu: 1450 },
    },
    {
      name: 'default route without via takes its family from src',
      routes: [route('a', { defaultRoute: { dev: 'eth1', src: 'fd00::5' } })],
      routesOut: [],
      def: { dev: 'eth1', src: 'fd00::5' },
    },
    {
      name: 'a src that is not an IP (the API server refuses it) makes the rule invalid',
      routes: [
        route('a', {
          route: [
            { dst: '172.16.10.0/24', dev: 'eth1', src: 'eth1' },
            { dst: '172.16.11.0/24', dev: 'eth1' },
          ],
        }),
      ],
      routesOut: [{ dst: '172.16.11.0/24', dev: 'eth1' }],
      invalid: /spec\.route\[0\]\.src/,
    },
    {
      name: 'a src of the other family makes the rule invalid',
      routes: [
        route('a', {
          route: [
            { dst: '172.16.10.0/24', dev: 'eth1', src: 'fd00::5' },
            { dst: '172.16.11.0/24', dev: 'eth1' },
          ],
        }),
      ],
      routesOut: [{ dst: '172.16.11.0/24', dev: 'eth1' }],
      invalid: /spec\.route\[0\]: src fd00::5 is IPv6 but the route is IPv4/,
    },
  ];
  for (const c of cases) {
    const r = resolvePlan(POD, ctx(c.routes));
    t.equal(r.kind, 'plan', `${c.name}: a plan`);
    if (r.kind !== 'plan') continue;
    t.same(r.plan.routes, c.routesOut, `${c.name}: routes`);
    t.same(r.plan.default, c.def, `${c.name}: default`);
    // Canonical key order: the plan's JSON lists attributes as src, metric, mtu, advmss.
    const json = JSON.stringify(r.plan.routes);
    t.equal(
      json,
      canonicalPlanJSON(r.plan).replace(/^\{"v":1,"routes":(.*?)(,"default":.*)?\}$/, '$1'),
      `${c.name}: routes in canonical order`,
    );
    if (c.invalid) t.match(r.invalid.map((i) => `${i.field}: ${i.error}`).join('\n'), c.invalid, `${c.name}: reported invalid`);
    else t.same(r.invalid, [], `${c.name}: nothing invalid`);
    if (c.unresolved) t.match(r.unresolved.map((u) => u.reason).join('\n'), c.unresolved, `${c.name}: reported unresolved`);
    else t.same(r.unresolved, [], `${c.name}: nothing unresolved`);
  }
});

t.test('resolve: Routes that differ only in an attribute conflict, and the winner is deterministic', async (t) => {
  const a = route('a', { route: [{ dst: '172.16.10.0/24', dev: 'eth1', mtu: 1400 }] });
  const b = route('b', { priority: 5, route: [{ dst: '172.16.10.0/24', dev: 'eth1', mtu: 9000 }] });
  const same = route('c', { route: [{ dst: '172.16.10.0/24', dev: 'eth1', mtu: 1400 }] });
  for (const order of [
    [a, b],
    [b, a],
  ]) {
    const r = resolvePlan(POD, ctx(order));
    if (r.kind !== 'plan') {
      t.fail('a plan');
      continue;
    }
    t.same(r.plan.routes, [{ dst: '172.16.10.0/24', dev: 'eth1', mtu: 9000 }], 'the higher priority wins');
    t.equal(r.conflicts.length, 1, 'one conflict');
    t.match(r.conflicts[0]!.message, /Route a .* wants eth1 mtu 1400, Route b .* wins with eth1 mtu 9000/);
  }
  const agree = resolvePlan(POD, ctx([a, same]));
  t.same(agree.conflicts, [], 'Routes asking for the same attributes do not conflict');
});

t.test('plan codec: attributes round-trip signed; wrong ones are refused', async (t) => {
  const key = planKeyFromSecret(Buffer.alloc(32, 7));
  const plan: Plan = {
    v: 1,
    routes: [{ dst: '172.16.10.0/24', dev: 'eth1', via: '10.124.2.1', advmss: 1360, mtu: 1400, metric: 100, src: '10.124.2.5' }],
    default: { dev: 'eth1', mtu: 1450, via: '10.124.2.1' },
  };
  const enc = encodePlan(plan, { key, namespace: 'default' });
  t.match(
    enc,
    /^\{"v":1,"routes":\[\{"dst":"172\.16\.10\.0\/24","dev":"eth1","via":"10\.124\.2\.1","src":"10\.124\.2\.5","metric":100,"mtu":1400,"advmss":1360\}\],"default":\{"dev":"eth1","via":"10\.124\.2\.1","mtu":1450\},"sig":/,
    'canonical order',
  );
  const dec = decodePlan(enc, { namespace: 'default', keys: [key], requireSignature: true });
  t.ok(dec.ok, 'decodes and verifies');
  if (dec.ok) t.equal(planHash(dec.plan), planHash(plan), 'same plan back');
  // The signature covers the attributes: changing one breaks it.
  const tampered = enc.replace('"mtu":1400', '"mtu":9000');
  const bad = decodePlan(tampered, { namespace: 'default', keys: [key], requireSignature: true });
  t.same(bad.ok ? 'ok' : bad.code, 'bad-signature', 'a changed attribute does not verify');
  // A plan without attributes encodes exactly as before they existed.
  t.equal(
    canonicalPlanJSON({ v: 1, routes: [{ dst: '10.0.0.0/8', dev: 'eth1' }] }),
    '{"v":1,"routes":[{"dst":"10.0.0.0/8","dev":"eth1"}]}',
  );

  const refused: [string, string, RegExp][] = [
    [
      'src not canonical',
      '{"v":1,"routes":[{"dst":"fd00::/64","dev":"eth1","src":"fd00:0::5"}]}',
      /routes\[0\]\.src: "fd00:0::5" is not canonical/,
    ],
    [
      'src of the other family',
      '{"v":1,"routes":[{"dst":"10.0.0.0/8","dev":"eth1","src":"fd00::5"}]}',
      /routes\[0\]\.src: fd00::5 is IPv6 but the route is IPv4/,
    ],
    ['src not an IP', '{"v":1,"routes":[{"dst":"10.0.0.0/8","dev":"eth1","src":"x"}]}', /routes\[0\]\.src/],
    ['IPv6 mtu under 1280', '{"v":1,"routes":[{"dst":"fd00::/64","dev":"eth1","mtu":1200}]}', /routes\[0\]\.mtu: 1200 is below/],
    ['metric out of range', '{"v":1,"routes":[{"dst":"10.0.0.0/8","dev":"eth1","metric":4294967296}]}', /metric/],
    ['mtu above the kernel clamp', '{"v":1,"routes":[{"dst":"10.0.0.0/8","dev":"eth1","mtu":65521}]}', /mtu/],
    ['advmss too small', '{"v":1,"routes":[{"dst":"10.0.0.0/8","dev":"eth1","advmss":10}]}', /advmss/],
    ['mtu as text', '{"v":1,"routes":[{"dst":"10.0.0.0/8","dev":"eth1","mtu":"1400"}]}', /mtu/],
    ['unknown attribute', '{"v":1,"routes":[{"dst":"10.0.0.0/8","dev":"eth1","window":10}]}', /additional properties/],
    [
      'default src of the other family than via',
      '{"v":1,"routes":[],"default":{"dev":"eth1","via":"10.0.0.1","src":"fd00::5"}}',
      /default\.src: fd00::5 is IPv6 but the route is IPv4/,
    ],
    [
      'IPv6 default (by src) with mtu under 1280',
      '{"v":1,"routes":[],"default":{"dev":"eth1","src":"fd00::5","mtu":1000}}',
      /default\.mtu/,
    ],
  ];
  for (const [name, value, msg] of refused) {
    const r = decodePlan(value, { namespace: 'default', keys: [], requireSignature: false });
    t.notOk(r.ok, `${name}: refused`);
    if (!r.ok) t.match(r.error, msg, `${name}: ${r.error}`);
    if (name === 'unknown attribute') {
      t.equal(
        encodePlan(JSON.parse(value) as Plan, { namespace: 'default' }),
        '{"v":1,"routes":[{"dst":"10.0.0.0/8","dev":"eth1"}]}',
        `${name}: never encoded (canonical JSON has known fields only)`,
      );
    } else t.throws(() => encodePlan(JSON.parse(value) as Plan, { namespace: 'default' }), `${name}: not encoded either`);
  }
});

t.test('convert: attributes in configuration entries', async (t) => {
  const good: [string, string, RouteSpec][] = [
    [
      'numbers and a src with spaces',
      '[{"route": "172.16.0.0/16", "dev": "eth1", "mtu": 1400, "advmss": 1360, "metric": 5, "src": " 10.124.2.5 "}]',
      { route: [{ dst: '172.16.0.0/16', dev: 'eth1', src: '10.124.2.5', metric: 5, mtu: 1400, advmss: 1360 }] },
    ],
    [
      'quoted numbers are accepted',
      '- {route: default, dev: eth1, via: 10.124.2.1, mtu: "1450"}\n',
      { defaultRoute: { dev: 'eth1', via: '10.124.2.1', mtu: 1450 } },
    ],
    [
      'a Service entry',
      '[{"svc": "default/nginx", "dev": "eth1", "metric": 0}]',
      { svc: [{ namespace: 'default', name: 'nginx', dev: 'eth1', metric: 0 }] },
    ],
  ];
  for (const [name, text, spec] of good) {
    const r = convertConfig(text, name.includes('quoted') ? 'cr.yaml' : 'cr.json');
    t.same(r.spec, spec, name);
  }
  const bad: [string, string, RegExp][] = [
    ['mtu as words', '[{"route": "172.16.0.0/16", "dev": "eth1", "mtu": "large"}]', /entry 0 .*field "mtu": expected a whole number/],
    ['mtu fraction', '[{"route": "172.16.0.0/16", "dev": "eth1", "mtu": 1400.5}]', /field "mtu": expected a whole number/],
    ['mtu too small', '[{"route": "172.16.0.0/16", "dev": "eth1", "mtu": 10}]', /entry 0 .*field "mtu": must be >= 68/],
    [
      'IPv6 mtu too small',
      '[{"route": "fd00::/64", "dev": "eth1", "mtu": 1000}]',
      /field "mtu": mtu of an IPv6 route must be at least 1280/,
    ],
    ['src not an IP', '[{"route": "172.16.0.0/16", "dev": "eth1", "src": "eth1"}]', /field "src": expected a source IP address/],
    [
      'src of the other family',
      '[{"route": "172.16.0.0/16", "dev": "eth1", "src": "fd00::5"}]',
      /field "src": src must be of the same address family as dst/,
    ],
    ['metric negative', '[{"route": "172.16.0.0/16", "dev": "eth1", "metric": -1}]', /field "metric"/],
    [
      'unknown key names the attributes',
      '[{"route": "172.16.0.0/16", "dev": "eth1", "window": 4}]',
      /"window": unknown field; .*"src", "metric", "mtu" and "advmss"/,
    ],
  ];
  for (const [name, text, msg] of bad) {
    t.throws(() => convertConfig(text, 'cr.json'), msg, name);
  }
});
