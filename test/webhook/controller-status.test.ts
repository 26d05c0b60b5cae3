// Route status and Events from plain objects: pods are resolved with desiredPlan() (what the
// controller does), their records go into the RouteIndex, and routeStatus() must say what
// a reader of `kubectl get routes` expects: matched/applied counts from injector reports,
// unresolved Services, conflicts on both sides, Invalid/Degraded/Active, conditions whose
// lastTransitionTime only moves when their status does.
import t from 'tap';
import fjp from 'fast-json-patch';
import { decodeInjectorStatus, encodeInjectorStatus } from '../../core/injector-status.js';
import { decodePlan, planHash, planKeyFromSecret } from '../../core/plan-codec.js';
import { type Namespace, type Pod, type Route, type Service } from '../../core/types.js';
import { cachesFromObjects } from '../../webhook/caches/caches.js';
import { routeEventObject } from '../../webhook/controller/events.js';
import { desiredPlan } from '../../webhook/plan.js';
import { podKey } from '../../webhook/caches/pods.js';
import { routeStatus, statusEqual, statusPatch } from '../../webhook/controller/status.js';
import { podRecord, RouteIndex } from '../../webhook/controller/status-index.js';

const key = planKeyFromSecret(Buffer.alloc(32, 9));
const ns = (name: string): Namespace => ({ metadata: { name, labels: { 'kubernetes.io/metadata.name': name } } });
const route = (name: string, spec: Route['spec'], extra: Partial<NonNullable<Route['metadata']>> = {}): Route => ({
  metadata: { name, uid: `uid-${name}`, generation: 3, resourceVersion: '7', ...extra },
  spec,
});
const pod = (namespace: string, name: string, annotations?: Record<string, string>): Pod => ({
  metadata: { namespace, name, uid: `u-${name}`, resourceVersion: '1', ...(annotations ? { annotations } : {}) },
  spec: {},
});
const svc = (namespace: string, name: string, ip: string): Service => ({
  metadata: { namespace, name },
  spec: { clusterIP: ip, clusterIPs: [ip] },
});
const T0 = new Date('2026-11-21T10:00:00.000Z');
const T1 = new Date('2026-11-21T11:00:00.000Z');

function build(routes: Route[], pods: Pod[], services: Service[] = []) {
  const caches = cachesFromObjects({ routes, services, namespaces: [ns('a'), ns('b')] });
  const index = new RouteIndex();
  const decisions = new Map<string, ReturnType<typeof desiredPlan>>();
  for (const p of pods) {
    const d = desiredPlan(p, caches, { mode: 'default', keys: [key] });
    decisions.set(podKey(p), d);
    index.set(podKey(p), podRecord(d, undefined));
  }
  const status = (name: string, now = T0, prev?: Route['status']) => {
    const r = caches.routes.get(name)!;
    return routeStatus({ route: { ...r, status: prev }, aggregate: index.aggregate(name), service: caches.service, now });
  };
  return { caches, index, decisions, status };
}

t.test('an Active Route: matched pods, and applied from the injector reports', async (t) => {
  const w = build(
    [route('r', { include: [{ namespaces: ['a'] }], route: [{ dst: '172.16.10.0/24', dev: 'eth1' }] })],
    [pod('a', 'p1'), pod('a', 'p2'), pod('b', 'p3')],
  );
  let s = w.status('r').status;
  t.match(s, { status: 'Active', observedGeneration: 3, matchedPods: 2, appliedPods: 0, unresolvedServices: [], conflicts: [] });
  t.match(s.conditions, [
    { type: 'Ready', status: 'True', reason: 'Resolved', observedGeneration: 3, lastTransitionTime: '2026-11-21T10:00:00Z' },
    { type: 'Degraded', status: 'False', reason: 'AsExpected' },
  ]);

  // p1's injector reports the current plan applied; p2 reports an older plan; so applied = 1.
  const d1 = w.decisions.get('a/p1')!;
  if (d1.action !== 'set') throw new Error('p1 must get a plan');
  const plan = decodePlan(d1.value, { namespace: 'a', keys: [key], requireSignature: true });
  if (!plan.ok) throw new Error(plan.error);
  const report = (hash: string, skipped: { dst: string; reason: string }[] = []) =>
    encodeInjectorStatus({ plan: hash, applied: 1, skipped, node: 'n1', time: T0.toISOString() });
  const touched = w.index.set('a/p1', podRecord(d1, decodeInjectorStatus(report(planHash(plan.plan)))));
  t.same([...touched], ['r'], 'the record change touches Route r');
  w.index.set('a/p2', podRecord(w.decisions.get('a/p2')!, decodeInjectorStatus(report('0000000000000000'))));
  s = w.status('r').status;
  t.equal(s.appliedPods, 1, 'only the report of the current plan counts');
  const skipped = podRecord(d1, decodeInjectorStatus(report(planHash(plan.plan), [{ dst: '172.16.10.0/24', reason: 'missing-dev' }])));
  t.notOk(skipped.applied, 'a report with skipped routes is not applied');
  t.same(
    [...w.index.set('a/p1', podRecord(d1, decodeInjectorStatus(report(planHash(plan.plan)))))],
    [],
    'an identical record touches nothing',
  );
  w.index.set('a/p1', undefined);
  t.equal(w.status('r').status.matchedPods, 1, 'a deleted pod no longer counts');
  t.equal(w.index.aggregate('nope').matchedPods, 0);
});

t.test('Degraded: a Service that does not resolve, then lastTransitionTime moves only with the status', async (t) => {
  const r = route('r', {
    svc: [
      { namespace: 'a', name: 'db', dev: 'eth1' },
      { namespace: 'a', name: 'web', dev: 'eth0' },
    ],
  });
  const w = build([r], [pod('a', 'p1')], [svc('a', 'web', '10.96.0.5')]);
  const first = w.status('r').status;
  t.match(first, { status: 'Degraded', matchedPods: 1, unresolvedServices: [{ namespace: 'a', name: 'db', reason: 'Service not found' }] });
  t.match(first.conditions?.[1], { type: 'Degraded', status: 'True', reason: 'UnresolvedServices', message: /a\/db: Service not found/ });
  const again = w.status('r', T1, first).status;
  t.ok(statusEqual(first, again), 'recomputed an hour later with nothing changed: equal, times kept');

  const fixed = build([r], [pod('a', 'p1')], [svc('a', 'web', '10.96.0.5'), svc('a', 'db', '10.96.0.6')]);
  const now = fixed.status('r', T1, first).status;
  t.match(now, { status: 'Active', unresolvedServices: [] });
  t.equal(now.conditions?.[0]?.lastTransitionTime, '2026-11-21T10:00:00Z', 'Ready stayed True: time kept');
  t.equal(now.conditions?.[1]?.lastTransitionTime, '2026-11-21T11:00:00Z', 'Degraded flipped: time moved');
  t.notOk(statusEqual(first, now));
});

t.test('conflicts are listed on both Routes; only the loser is Degraded and gets an Event', async (t) => {
  const w = build(
    [
      route('alpha', { route: [{ dst: '10.0.0.0/8', dev: 'eth1' }] }),
      route('beta', { priority: 10, route: [{ dst: '10.0.0.0/8', dev: 'eth0' }] }),
    ],
    [pod('a', 'p1'), pod('b', 'p2')],
  );
  const alpha = w.status('alpha');
  const beta = w.status('beta');
  t.equal(alpha.status.conflicts?.length, 1, 'one conflict, deduplicated across the two pods');
  t.match(alpha.status.conflicts?.[0], { dst: '10.0.0.0/8', route: 'alpha', winner: 'beta' });
  t.same(beta.status.conflicts, alpha.status.conflicts, 'the winner lists it too');
  t.match(alpha.status, { status: 'Degraded', matchedPods: 2 });
  t.match(alpha.status.conditions?.[1], { reason: 'ConflictsLost' });
  t.match(beta.status, { status: 'Active', matchedPods: 2 });
  t.same(
    alpha.events.map((e) => e.reason),
    ['RouteConflict'],
  );
  t.same(beta.events, []);
});

t.test('Invalid: a rule the schema refuses', async (t) => {
  const w = build(
    [
      route('bad', {
        route: [
          { dst: '10.0.0.5/24', dev: 'eth1' },
          { dst: '172.16.0.0/16', dev: 'eth1' },
        ],
      }),
    ],
    [pod('a', 'p1')],
  );
  const { status, events } = w.status('bad');
  t.equal(status.status, 'Invalid');
  t.match(status.conditions?.[0], { type: 'Ready', status: 'False', reason: 'InvalidRules', message: /spec\.route\[0\]\.dst/ });
  t.ok(events.length >= 1 && events.every((e) => e.reason === 'InvalidRule'), 'an InvalidRule Event per problem');
});

t.test('statusEqual ignores key order; statusPatch replaces status on the resourceVersion it was computed from', async (t) => {
  t.ok(statusEqual({ status: 'Active', matchedPods: 1 }, { matchedPods: 1, status: 'Active', appliedPods: undefined }));
  t.notOk(statusEqual({ status: 'Active', matchedPods: 1 }, { status: 'Active', matchedPods: 2 }));
  const r = route('r', {}, { resourceVersion: '12' });
  const ops = statusPatch(r, { status: 'Active' });
  const doc = { metadata: { name: 'r', resourceVersion: '12' }, status: { status: 'Old', matchedPods: 4 } };
  t.same(fjp.applyPatch(structuredClone(doc), ops, true, false).newDocument.status, { status: 'Active' }, 'the whole status replaced');
  t.throws(() => fjp.applyPatch({ ...doc, metadata: { name: 'r', resourceVersion: '13' } }, ops, true, false), {
    name: 'TEST_OPERATION_FAILED',
  });
});

t.test('routeEventObject: a core/v1 Event on the cluster-scoped Route, named by its content', async (t) => {
  const r = route('alpha', {});
  const e1 = routeEventObject(r, { reason: 'RouteConflict', message: 'm' }, { instance: 'pod-1', now: T0 });
  const e2 = routeEventObject(r, { reason: 'RouteConflict', message: 'm' }, { instance: 'pod-2', now: T1 });
  const e3 = routeEventObject(r, { reason: 'RouteConflict', message: 'other' }, { instance: 'pod-1', now: T0 });
  t.match(e1, {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { namespace: 'default', name: /^alpha\.[0-9a-f]{16}$/ },
    involvedObject: { apiVersion: 'k8s.ovn.org/v1', kind: 'Route', name: 'alpha', uid: 'uid-alpha' },
    type: 'Warning',
    reason: 'RouteConflict',
    message: 'm',
    reportingComponent: 'ovnkube-route-controller',
    reportingInstance: 'pod-1',
  });
  t.equal(
    (e1.metadata as { name: string }).name,
    (e2.metadata as { name: string }).name,
    'same finding, same name (another replica gets AlreadyExists)',
  );
  t.not((e1.metadata as { name: string }).name, (e3.metadata as { name: string }).name);
});

t.test('Warnings: a default route that moves Service traffic, a literal per-node gateway (condition + Events)', async (t) => {
  const dns = svc('kube-system', 'kube-dns', '10.86.0.10');
  const cases: { name: string; spec: Route['spec']; services: Service[]; reasons: string[]; message?: RegExp }[] = [
    {
      name: 'default moved to eth1, DNS not pinned',
      spec: { defaultRoute: { dev: 'eth1', via: 'gateway' } },
      services: [dns],
      reasons: ['DefaultRouteMovesServices'],
      message: /kube-system\/kube-dns \(10\.86\.0\.10\).*add a rule such as \{dst: <Service CIDR>, dev: eth0, via: gateway\}/,
    },
    {
      name: 'default moved, the Service CIDR pinned to eth0',
      spec: { defaultRoute: { dev: 'eth1', via: 'gateway' }, route: [{ dst: '10.86.0.0/16', dev: 'eth0', via: 'gateway' }] },
      services: [dns],
      reasons: [],
    },
    {
      name: 'default moved, a CIDR rule that misses the DNS IP',
      spec: { defaultRoute: { dev: 'eth1', via: 'gateway' }, route: [{ dst: '10.87.0.0/16', dev: 'eth0' }] },
      services: [dns],
      reasons: ['DefaultRouteMovesServices'],
    },
    {
      name: 'default moved, the Service CIDR pinned to eth1 itself does not count',
      spec: { defaultRoute: { dev: 'eth1', via: 'gateway' }, route: [{ dst: '10.86.0.0/16', dev: 'eth1' }] },
      services: [dns],
      reasons: ['DefaultRouteMovesServices'],
    },
    {
      name: 'default moved, kube-dns pinned by a Service rule',
      spec: { defaultRoute: { dev: 'eth1', via: 'gateway' }, svc: [{ namespace: 'kube-system', name: 'kube-dns', dev: 'eth0' }] },
      services: [dns],
      reasons: [],
    },
    {
      name: 'default moved, no DNS Service to check',
      spec: { defaultRoute: { dev: 'eth1', via: 'gateway' } },
      services: [],
      reasons: ['DefaultRouteMovesServices'],
      message: /was not found to check/,
    },
    { name: 'default kept on eth0', spec: { defaultRoute: { dev: 'eth0', via: '169.254.1.1' } }, services: [dns], reasons: [] },
    {
      name: 'literal OVN gateway',
      spec: { route: [{ dst: '172.16.20.0/24', dev: 'eth1', via: '10.124.2.1' }] },
      services: [dns],
      reasons: ['GatewayNotPerNode'],
      message: /spec\.route\[0\]\.via 10\.124\.2\.1 .*use via: gateway/,
    },
    {
      name: 'literal IPv6 link-local and Calico gateways are the same everywhere',
      spec: {
        route: [{ dst: 'fd00::/64', dev: 'eth0', via: 'fe80::1' }],
        svc: [{ namespace: 'kube-system', name: 'kube-dns', dev: 'eth0', via: '169.254.1.1' }],
      },
      services: [dns],
      reasons: [],
    },
    {
      name: 'both',
      spec: { defaultRoute: { dev: 'eth1', via: '10.124.2.1' } },
      services: [dns],
      reasons: ['DefaultRouteMovesServices', 'GatewayNotPerNode'],
    },
  ];
  for (const c of cases) {
    const w = build([route('r', c.spec)], [pod('a', 'p1')], c.services);
    const { status, events } = w.status('r');
    const cond = status.conditions?.find((x) => x.type === 'Warnings');
    t.equal(status.status, 'Active', `${c.name}: warnings never degrade the Route`);
    if (c.reasons.length === 0) t.match(cond, { status: 'False', reason: 'None' }, `${c.name}: no warning`);
    else t.match(cond, { status: 'True', reason: c.reasons.length === 1 ? c.reasons[0] : 'MultipleWarnings' }, `${c.name}: condition`);
    if (c.message) t.match(cond?.message, c.message, `${c.name}: message`);
    t.same(events.map((e) => e.reason).sort(), [...c.reasons].sort(), `${c.name}: one Event per warning`);
  }
});
