import t from 'tap';
import { ObjectIndex } from '../../core/objects.js';
import { ownerChain } from '../../core/owners.js';
import { encodePlan } from '../../core/plan-codec.js';
import { resolvePlan, type InjectMode, type ResolveContext } from '../../core/resolve.js';
import type { KubeObject, Pod, Route, RouteSpec, Service } from '../../core/types.js';

const route = (name: string, spec: RouteSpec): Route => ({ apiVersion: 'k8s.ovn.org/v1', kind: 'Route', metadata: { name }, spec });
const svc = (ns: string, name: string, spec: Service['spec']): Service => ({ kind: 'Service', metadata: { namespace: ns, name }, spec });
const pod = (ns: string, name: string, extra: Partial<Pod['metadata']> = {}, spec: Pod['spec'] = {}): Pod => ({
  kind: 'Pod',
  metadata: { namespace: ns, name, ...extra },
  spec,
});

function ctx(
  routes: Route[],
  opts: { services?: Service[]; nsLabels?: Record<string, string>; mode?: InjectMode; owners?: ResolveContext['owners'] } = {},
): ResolveContext {
  const byKey = new Map((opts.services ?? []).map((s) => [`${s.metadata?.namespace}/${s.metadata?.name}`, s]));
  return {
    routes,
    namespace: { metadata: { name: 'default', labels: opts.nsLabels ?? {} } },
    service: (ns, n) => byKey.get(`${ns}/${n}`),
    owners: opts.owners ?? [],
    mode: opts.mode ?? 'default',
  };
}

const TARGET = route('target', {
  svc: [
    { namespace: 'kube-system', name: 'nginx1', dev: 'eth0' },
    { namespace: 'default', name: 'nginx', dev: 'eth1' },
  ],
  route: [
    { dst: '10.124.0.0/16', dev: 'eth1', via: '10.124.2.1' },
    { dst: '172.16.10.0/24', dev: 'eth1' },
    { dst: '192.168.2.0/24', dev: 'eth0' },
  ],
});
const TARGET_SVCS = [
  svc('kube-system', 'nginx1', { clusterIP: '10.86.69.17', clusterIPs: ['10.86.69.17'] }),
  svc('default', 'nginx', { clusterIP: '10.86.205.109', clusterIPs: ['10.86.205.109'] }),
];

t.test('the target table of the design document', async (t) => {
  const r = resolvePlan(pod('default', 'web'), ctx([TARGET], { services: TARGET_SVCS }));
  t.equal(r.kind, 'plan');
  if (r.kind !== 'plan') return;
  t.same(r.plan.routes, [
    { dst: '10.86.69.17/32', dev: 'eth0' },
    { dst: '10.86.205.109/32', dev: 'eth1' },
    { dst: '10.124.0.0/16', dev: 'eth1', via: '10.124.2.1' },
    { dst: '172.16.10.0/24', dev: 'eth1' },
    { dst: '192.168.2.0/24', dev: 'eth0' },
  ]);
  t.equal(r.plan.default, undefined, 'default route untouched unless asked');
  t.same(r.routes, ['target']);
});

t.test('labels and modes', async (t) => {
  const L = 'routes.k8s.ovn.org/inject';
  const R = [route('r', { route: [{ dst: '172.16.10.0/24', dev: 'eth1' }] })];
  const cases: [string, Pod, Record<string, string>, InjectMode, string][] = [
    ['default mode, no labels', pod('default', 'a'), {}, 'default', 'plan'],
    ['hostNetwork', pod('default', 'a', {}, { hostNetwork: true }), {}, 'default', 'host-network'],
    [
      'hostNetwork even when enabled',
      pod('default', 'a', { labels: { [L]: 'enabled' } }, { hostNetwork: true }),
      {},
      'opt-in',
      'host-network',
    ],
    ['pod disabled', pod('default', 'a', { labels: { [L]: 'disabled' } }), {}, 'default', 'opted-out'],
    ['namespace disabled', pod('default', 'a'), { [L]: 'disabled' }, 'default', 'opted-out'],
    [
      'namespace disabled beats pod enabled',
      pod('default', 'a', { labels: { [L]: 'enabled' } }),
      { [L]: 'disabled' },
      'opt-in',
      'opted-out',
    ],
    [
      'pod disabled beats namespace enabled',
      pod('default', 'a', { labels: { [L]: 'disabled' } }),
      { [L]: 'enabled' },
      'opt-in',
      'opted-out',
    ],
    ['opt-in without labels', pod('default', 'a'), {}, 'opt-in', 'not-opted-in'],
    ['opt-in, pod enabled', pod('default', 'a', { labels: { [L]: 'enabled' } }), {}, 'opt-in', 'plan'],
    ['opt-in, namespace enabled', pod('default', 'a'), { [L]: 'enabled' }, 'opt-in', 'plan'],
    ['other label values are ignored', pod('default', 'a', { labels: { [L]: 'maybe' } }), {}, 'opt-in', 'not-opted-in'],
  ];
  for (const [name, p, nsLabels, mode, want] of cases) {
    const r = resolvePlan(p, ctx(R, { nsLabels, mode }));
    t.equal(r.kind === 'plan' ? 'plan' : r.code, want, name);
    if (r.kind === 'skipped') t.ok(r.reason.length > 10, `${name}: explained: ${r.reason}`);
  }
});

t.test('owners through ReplicaSet -> Deployment and Job -> CronJob', async (t) => {
  const objs: KubeObject[] = [
    {
      kind: 'ReplicaSet',
      metadata: { namespace: 'default', name: 'web-7d4f', ownerReferences: [{ kind: 'Deployment', name: 'web', controller: true }] },
    },
    {
      kind: 'Job',
      metadata: { namespace: 'batch', name: 'nightly-2890', ownerReferences: [{ kind: 'CronJob', name: 'nightly', controller: true }] },
    },
  ];
  const idx = new ObjectIndex().add(objs);
  const rsPod = pod('default', 'web-7d4f-abc', { ownerReferences: [{ kind: 'ReplicaSet', name: 'web-7d4f', controller: true }] });
  const jobPod = pod('batch', 'nightly-2890-x', { ownerReferences: [{ kind: 'Job', name: 'nightly-2890', controller: true }] });
  const dsPod = pod('default', 'agent-x', { ownerReferences: [{ kind: 'DaemonSet', name: 'agent', controller: true }] });
  t.same(ownerChain(rsPod, idx.lookup), [
    { kind: 'ReplicaSet', namespace: 'default', name: 'web-7d4f' },
    { kind: 'Deployment', namespace: 'default', name: 'web' },
  ]);
  t.same(ownerChain(jobPod, idx.lookup), [
    { kind: 'Job', namespace: 'batch', name: 'nightly-2890' },
    { kind: 'CronJob', namespace: 'batch', name: 'nightly' },
  ]);
  t.same(ownerChain(dsPod, idx.lookup), [{ kind: 'DaemonSet', namespace: 'default', name: 'agent' }], 'unknown owner objects still count');
  t.same(ownerChain(pod('default', 'bare'), idx.lookup), []);
  const cases: [string, Pod, string, string, boolean][] = [
    ['Deployment', rsPod, 'Deployment', 'web', true],
    ['ReplicaSet', rsPod, 'ReplicaSet', 'web-*', true],
    ['CronJob', jobPod, 'CronJob', 'night*', true],
    ['Job', jobPod, 'Job', 'nightly-2890', true],
    ['DaemonSet', dsPod, 'DaemonSet', 'agent', true],
    ['wrong kind', rsPod, 'StatefulSet', 'web', false],
    ['bare pod', pod('default', 'bare'), 'Deployment', '*', false],
  ];
  for (const [name, p, kind, n, want] of cases) {
    const R = route('r', {
      route: [{ dst: '172.16.10.0/24', dev: 'eth1' }],
      include: [{ owners: [{ kind: kind as 'Deployment', name: n }] }],
    });
    idx.routes.splice(0, idx.routes.length, R);
    t.equal(idx.resolve(p, 'default').kind, want ? 'plan' : 'skipped', name);
  }
});

t.test('conflicts and priority', async (t) => {
  const a = route('a', { route: [{ dst: '172.16.10.0/24', dev: 'eth0' }] });
  const b = route('b', { route: [{ dst: '172.16.10.0/24', dev: 'eth1' }] });
  const bHigh = route('b', { priority: 5, route: [{ dst: '172.16.10.0/24', dev: 'eth1' }] });
  const c = route('c', { route: [{ dst: '172.16.10.0/24', dev: 'eth1', via: '10.124.2.1' }] });
  const same = route('same', { route: [{ dst: '172.16.10.0/24', dev: 'eth0' }] });
  const cases: [string, Route[], string, string[]][] = [
    ['equal priority: lexical name wins', [b, a], 'eth0', ['b']],
    ['higher priority wins over name', [a, bHigh], 'eth1', ['a']],
    ['via difference is a conflict', [c, b], 'eth1', ['c']],
    ['agreeing Routes are no conflict', [a, same], 'eth0', []],
    ['three-way: every loser reported', [a, b, c], 'eth0', ['b', 'c']],
  ];
  for (const [name, routes, dev, losers] of cases) {
    const r = resolvePlan(pod('default', 'p'), ctx(routes));
    if (r.kind !== 'plan') {
      t.fail(name);
      continue;
    }
    t.equal(r.plan.routes.length, 1, `${name}: one route per destination`);
    t.equal(r.plan.routes[0]?.dev, dev, name);
    t.same(r.conflicts.map((x) => x.route).sort(), losers, `${name}: losers`);
    for (const x of r.conflicts) t.match(x.message, /wants .* wins with/, `${name}: explained`);
  }
  const svcVsCidr = [
    route('a', { svc: [{ namespace: 'default', name: 's', dev: 'eth1' }] }),
    route('b', { route: [{ dst: '10.86.1.1/32', dev: 'eth0' }] }),
  ];
  const r = resolvePlan(pod('default', 'p'), ctx(svcVsCidr, { services: [svc('default', 's', { clusterIP: '10.86.1.1' })] }));
  t.equal(r.kind === 'plan' && r.plan.routes[0]?.dev, 'eth1', 'a Service /32 and a CIDR /32 conflict like any two rules');
  t.equal(r.conflicts.length, 1);
  const defaults = resolvePlan(
    pod('default', 'p'),
    ctx([
      route('x', { defaultRoute: { dev: 'eth1', via: '10.124.2.1' } }),
      route('y', { priority: 1, defaultRoute: { dev: 'eth0', via: '169.254.1.1' } }),
    ]),
  );
  t.same(defaults.kind === 'plan' && defaults.plan.default, { dev: 'eth0', via: '169.254.1.1' }, 'two default routes: priority decides');
  t.equal(defaults.conflicts[0]?.dst, '0.0.0.0/0');
});

t.test('Services: dual-stack, IPv6, headless, ExternalName, missing, family of via', async (t) => {
  const services = [
    svc('default', 'dual', { clusterIP: '10.86.0.10', clusterIPs: ['10.86.0.10', 'fd00:86::a'], ipFamilies: ['IPv4', 'IPv6'] }),
    svc('default', 'v6', { clusterIP: 'FD00:86::0:B', clusterIPs: ['FD00:86::0:B'] }),
    svc('default', 'headless', { clusterIP: 'None', clusterIPs: ['None'] }),
    svc('default', 'ext', { type: 'ExternalName', externalName: 'db.example.com' }),
  ];
  const R = route('r', {
    svc: [
      { namespace: 'default', name: 'dual', dev: 'eth1' },
      { namespace: 'default', name: 'v6', dev: 'eth1', via: 'fd00:10::1' },
      { namespace: 'default', name: 'headless', dev: 'eth1' },
      { namespace: 'default', name: 'ext', dev: 'eth1' },
      { namespace: 'default', name: 'missing', dev: 'eth1' },
      { namespace: 'default', name: 'dual', dev: 'eth0', via: '169.254.1.1' },
    ],
  });
  const r = resolvePlan(pod('default', 'p'), ctx([R], { services }));
  if (r.kind !== 'plan') return t.fail('expected a plan');
  t.same(r.plan.routes, [
    // same Route, same priority: the lexically smaller target wins ("eth0 via ..." < "eth1")
    { dst: '10.86.0.10/32', dev: 'eth0', via: '169.254.1.1' },
    { dst: 'fd00:86::a/128', dev: 'eth1' },
    { dst: 'fd00:86::b/128', dev: 'eth1', via: 'fd00:10::1' },
  ]);
  const reasons = Object.fromEntries(r.unresolved.map((u) => [`${u.name}`, u.reason]));
  t.match(reasons.headless, /headless/);
  t.match(reasons.ext, /ExternalName/);
  t.match(reasons.missing, /not found/);
  t.match(reasons.dual, /fd00:86::a is IPv6 but via 169\.254\.1\.1 is IPv4/, 'mismatched family never guessed');
  t.equal(r.conflicts.length, 1, 'the second dual rule conflicts on 10.86.0.10/32 within one Route');
});

t.test('IPv6 CIDRs, link scope and gateways', async (t) => {
  const r = resolvePlan(
    pod('default', 'p'),
    ctx([
      route('v6', {
        route: [
          { dst: 'FD00:10:0::/64', dev: 'eth1', via: 'FD00:10::1' },
          { dst: '2001:db8::/32', dev: 'eth0' },
          { dst: '10.0.0.0/8', dev: 'eth1' },
        ],
        defaultRoute: { dev: 'eth1', via: 'fe80::1' },
      }),
    ]),
  );
  if (r.kind !== 'plan') return t.fail('expected a plan');
  t.same(
    r.plan.routes,
    [
      { dst: '10.0.0.0/8', dev: 'eth1' },
      { dst: '2001:db8::/32', dev: 'eth0' },
      { dst: 'fd00:10::/64', dev: 'eth1', via: 'fd00:10::1' },
    ],
    'canonical, IPv4 first, no via means link scope',
  );
  t.same(r.plan.default, { dev: 'eth1', via: 'fe80::1' });
});

t.test('skips are explained', async (t) => {
  const none = resolvePlan(pod('default', 'p'), ctx([]));
  t.equal(none.kind === 'skipped' && none.code, 'no-route');
  t.match(none.kind === 'skipped' ? none.reason : '', /no Route exists/);
  const notSel = resolvePlan(
    pod('default', 'p'),
    ctx([route('prod-only', { route: [{ dst: '10.0.0.0/8', dev: 'eth1' }], include: [{ namespaces: ['prod'] }] })]),
  );
  t.match(
    notSel.kind === 'skipped' ? notSel.reason : '',
    /prod-only: not included: include\[0\]: namespace "default" is not in namespaces \[prod\]/,
  );
  const unresolved = resolvePlan(pod('default', 'p'), ctx([route('s', { svc: [{ namespace: 'default', name: 'gone', dev: 'eth1' }] })]));
  t.match(unresolved.kind === 'skipped' ? unresolved.reason : '', /select the pod but yield no route/);
  t.equal(unresolved.unresolved.length, 1);
  const gen = resolvePlan(
    { metadata: { namespace: 'default', generateName: 'web-7d4f-' } },
    ctx([route('one', { route: [{ dst: '10.0.0.0/8', dev: 'eth1' }], include: [{ pods: ['default/web-7d4f-zzzzz'] }] })]),
  );
  t.equal(gen.kind === 'skipped' && gen.code, 'name-unknown');
  t.same(gen.deferred, ['one']);
});

t.test('deterministic: any input order gives a byte-identical plan', async (t) => {
  const routes = [
    TARGET,
    route('zz', {
      route: [
        { dst: '172.16.10.0/24', dev: 'eth0' },
        { dst: 'fd00::/8', dev: 'eth1' },
      ],
    }),
    route('aa', { priority: -1, route: [{ dst: '192.168.2.0/24', dev: 'eth1' }], defaultRoute: { dev: 'eth0', via: '169.254.1.1' } }),
    route('mm', { defaultRoute: { dev: 'eth1', via: '10.124.2.1' }, route: [{ dst: '10.0.0.0/8', dev: 'eth1' }] }),
  ];
  const encode = (rs: Route[]) => {
    const r = resolvePlan(pod('default', 'web'), ctx(rs, { services: [...TARGET_SVCS].reverse() }));
    if (r.kind !== 'plan') throw new Error('expected a plan');
    return encodePlan(r.plan, { namespace: 'default' });
  };
  const want = encode(routes);
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 25; i++) {
    const shuffled = [...routes].sort(() => rand() - 0.5);
    t.equal(encode(shuffled), want, `permutation ${shuffled.map((r) => r.metadata?.name).join(',')}`);
  }
});
