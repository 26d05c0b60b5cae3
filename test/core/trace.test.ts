// core/trace.ts: the decision trace explain shows. Table-driven: for each case, which term
// decided, the verdict, and that the verdict always agrees with routeSelects() (what the
// webhook uses), so the trace cannot tell a story the resolver does not follow.
import t from 'tap';
import { routeSelects, type Subject } from '../../core/filters.js';
import { resolvePlan, type ResolveContext } from '../../core/resolve.js';
import { describeTerm, tracePlan, traceRoute } from '../../core/trace.js';
import type { OwnerRef, Pod, Route, RouteSpec, Service } from '../../core/types.js';

const pod = (
  ns: string,
  name: string,
  labels: Record<string, string> = {},
  extra: Partial<NonNullable<Pod['metadata']>> = {},
  spec: Pod['spec'] = {},
): Pod => ({ kind: 'Pod', metadata: { namespace: ns, ...(name ? { name } : {}), labels, ...extra }, spec });
const subj = (p: Pod, nsLabels: Record<string, string> = {}, owners: OwnerRef[] = []): Subject => ({
  pod: p,
  namespace: { metadata: { name: p.metadata?.namespace ?? '', labels: nsLabels } },
  owners,
});
const route = (name: string, spec: RouteSpec): Route => ({
  kind: 'Route',
  metadata: { name },
  spec: { route: [{ dst: '172.16.0.0/16', dev: 'eth1' }], ...spec },
});

t.test('traceRoute: which term decided, and why', async (t) => {
  const web = pod('shop', 'web-1', { app: 'web' });
  const gen = pod('shop', '', { app: 'web' }, { generateName: 'web-7d4f-' });
  const owned = subj(pod('shop', 'job-1'), {}, [{ kind: 'Job', namespace: 'shop', name: 'nightly' }]);
  const cases: [string, RouteSpec, Subject, 'yes' | 'no' | 'unknown', string, RegExp][] = [
    ['no include: every pod', {}, subj(web), 'yes', 'no include (every pod)', /no include, so it selects every pod/],
    [
      'second include term matches',
      { include: [{ namespaces: ['other'] }, { namespaces: ['shop'] }] },
      subj(web),
      'yes',
      'include[1]',
      /included by include\[1\]: matches namespaces \[shop\]/,
    ],
    [
      'first matching term wins',
      { include: [{ podSelector: { matchLabels: { app: 'web' } } }, { namespaces: ['shop'] }] },
      subj(web),
      'yes',
      'include[0]',
      /podSelector \{app=web\}/,
    ],
    [
      'no include term matches',
      { include: [{ namespaces: ['a'] }, { podSelector: { matchLabels: { app: 'db' } } }] },
      subj(web),
      'no',
      'include (no term matched)',
      /include\[0\]: namespace "shop" is not in namespaces \[a\]; include\[1\]: pod labels do not match podSelector \{app=db\}/,
    ],
    ['empty include', { include: [] }, subj(web), 'no', 'include is empty', /include is empty/],
    [
      'exclude wins over include',
      { include: [{ namespaces: ['shop'] }], exclude: [{ pods: ['other/*'] }, { pods: ['shop/web-*'] }] },
      subj(web),
      'no',
      'exclude[1]',
      /excluded by exclude\[1\]: matches pods \[shop\/web-\*\] \(exclude wins over include\)/,
    ],
    [
      'exclude that does not match',
      { exclude: [{ namespaceSelector: { matchLabels: { team: 'red' } } }] },
      subj(web, { team: 'blue' }),
      'yes',
      'no include (every pod)',
      /every pod/,
    ],
    [
      'namespace label selects',
      { include: [{ namespaceSelector: { matchLabels: { team: 'blue' } } }] },
      subj(web, { team: 'blue' }),
      'yes',
      'include[0]',
      /namespaceSelector \{team=blue\}/,
    ],
    ['owner selects', { include: [{ owners: [{ kind: 'Job', name: 'night*' }] }] }, owned, 'yes', 'include[0]', /owners \[Job\/night\*\]/],
    [
      'owner does not',
      { include: [{ owners: [{ kind: 'CronJob', name: 'x' }] }] },
      owned,
      'no',
      'include (no term matched)',
      /owners \[Job\/nightly\] match none of owners \[CronJob\/x\]/,
    ],
    ['name not known yet', { include: [{ pods: ['shop/web-7d4f-a*'] }] }, subj(gen), 'unknown', 'include[0]', /pod name not known yet/],
    ['generateName prefix decides', { include: [{ pods: ['shop/web-*'] }] }, subj(gen), 'yes', 'include[0]', /pods \[shop\/web-\*\]/],
    ['unknown exclude', { exclude: [{ pods: ['shop/web-7d4f-x*'] }] }, subj(gen), 'unknown', 'exclude[0]', /not known yet/],
  ];
  for (const [what, spec, s, selects, decidedBy, reason] of cases) {
    const r = route('r', spec);
    const tr = traceRoute(r, s);
    t.equal(tr.selects, selects, `${what}: selects`);
    t.equal(tr.decidedBy, decidedBy, `${what}: decided by`);
    t.match(tr.reason, reason, `${what}: reason`);
    t.equal(tr.selects, routeSelects(r.spec?.include, r.spec?.exclude, s).match, `${what}: agrees with routeSelects`);
  }
});

t.test('describeTerm names every field', async (t) => {
  t.equal(describeTerm({}), '{} (every pod)');
  t.equal(
    describeTerm({
      namespaces: ['a', 'b'],
      podSelector: { matchLabels: { x: '1' } },
      owners: [{ kind: 'Deployment', namespace: 'a', name: 'web' }],
    }),
    'namespaces [a, b] and podSelector {x=1} and owners [Deployment/a/web]',
  );
});

t.test('tracePlan: gates, every Route in name order, and the resolution with origins', async (t) => {
  const svc: Service = {
    kind: 'Service',
    metadata: { namespace: 'shop', name: 'db' },
    spec: { clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'] },
  };
  const routes = [
    route('z-low', { route: [{ dst: '172.16.10.0/24', dev: 'eth0' }] }),
    route('a-high', {
      priority: 10,
      route: [{ dst: '172.16.10.0/24', dev: 'eth1' }],
      svc: [{ namespace: 'shop', name: 'db', dev: 'eth1' }],
      defaultRoute: { dev: 'eth1', via: '10.124.2.1' },
    }),
    route('m-other', { include: [{ namespaces: ['other'] }] }),
  ];
  const ctx = (mode: 'default' | 'opt-in' = 'default'): ResolveContext => ({
    routes,
    namespace: { metadata: { name: 'shop', labels: {} } },
    service: (ns, n) => (ns === 'shop' && n === 'db' ? svc : undefined),
    owners: [],
    mode,
  });
  const p = pod('shop', 'web');
  const tr = tracePlan(p, ctx());
  t.same(
    tr.gates.map((g) => [g.code, g.passed]),
    [
      ['host-network', true],
      ['opted-out', true],
      ['not-opted-in', true],
    ],
  );
  t.same(
    tr.routes.map((r) => [r.route, r.selects]),
    [
      ['a-high', 'yes'],
      ['m-other', 'no'],
      ['z-low', 'yes'],
    ],
  );
  t.same(tr.routes[0]!.rules, { route: 1, svc: 1, defaultRoute: true });
  const res = tr.resolution;
  t.equal(res.kind, 'plan');
  if (res.kind !== 'plan') return;
  t.same(
    res.plan,
    resolvePlan(p, ctx()).kind === 'plan' ? (resolvePlan(p, ctx()) as { plan: unknown }).plan : null,
    'the same plan as resolvePlan',
  );
  t.equal(res.conflicts.length, 1);
  t.match(res.conflicts[0]!.message, /Route z-low .* wants eth0, Route a-high .*priority 10\) wins with eth1/);
  t.same(res.origins, [
    { dst: '10.96.0.10/32', route: 'a-high', source: 'spec.svc[0] shop/db', priority: 10 },
    { dst: '172.16.10.0/24', route: 'a-high', source: 'spec.route[0]', priority: 10 },
    { dst: '0.0.0.0/0', route: 'a-high', source: 'spec.defaultRoute', priority: 10 },
  ]);
  t.equal(resolvePlan(p, ctx()).kind === 'plan' && 'origins' in resolvePlan(p, ctx()), false, 'origins only when asked for');

  const host = tracePlan(pod('shop', 'h', {}, {}, { hostNetwork: true }), ctx());
  t.same(
    host.gates.map((g) => [g.code, g.passed]),
    [['host-network', false]],
    'the first gate that stops ends the gates',
  );
  t.equal(host.resolution.kind, 'skipped');
  const optIn = tracePlan(p, ctx('opt-in'));
  t.same(optIn.gates.at(-1), {
    code: 'not-opted-in',
    passed: false,
    reason: 'opt-in mode: neither the pod nor its namespace is labelled routes.k8s.ovn.org/inject=enabled',
  });
});
