// The Route index of webhook/plan.ts (routesForNamespace, core's mayIncludeNamespace): a pod
// is resolved against only the Routes that may select its namespace, and its resolution is
// exactly the one against all Routes, for Routes of every include shape (namespaces with and
// without globs, pods entries, selectors, owners, no include, an empty include).
import t from 'tap';
import { mayIncludeNamespace } from '../../core/filters.js';
import { planKeyFromSecret } from '../../core/plan-codec.js';
import { resolvePlan } from '../../core/resolve.js';
import type { Pod, PodSelectorTerm, Route } from '../../core/types.js';
import { cachesFromObjects } from '../../webhook/caches/caches.js';
import { desiredPlan, resolveContext, routesForNamespace } from '../../webhook/plan.js';

const key = planKeyFromSecret(Buffer.alloc(32, 9));
const NS = ['default', 'prod-a', 'prod-b', 'dev', 'kube-system'];
const shapes: (PodSelectorTerm[] | undefined)[] = [
  undefined,
  [],
  [{ namespaces: ['default'] }],
  [{ namespaces: ['prod-*'] }],
  [{ namespaces: ['dev'], podSelector: { matchLabels: { app: 'web' } } }, { namespaces: ['prod-a'] }],
  [{ pods: ['default/web-*'] }],
  [{ pods: ['prod-*/api'] }, { namespaces: ['dev'] }],
  [{ podSelector: { matchLabels: { app: 'web' } } }],
  [{ namespaceSelector: { matchLabels: { team: 'a' } } }],
  [{ owners: [{ kind: 'Deployment', name: 'web' }] }],
  [{ namespaces: ['nowhere'] }],
];
const routes: Route[] = Array.from({ length: 110 }, (_, i) => ({
  metadata: { name: `r${i}`, resourceVersion: '1', generation: 1 },
  spec: { priority: i % 3, include: shapes[i % shapes.length], route: [{ dst: `10.${i % 40}.0.0/16`, dev: i % 2 ? 'eth1' : 'eth0' }] },
}));
const caches = cachesFromObjects({
  routes,
  namespaces: NS.map((n, i) => ({ metadata: { name: n, labels: (i % 2 ? { team: 'a' } : {}) as Record<string, string> } })),
});
const pods: Pod[] = [];
for (const ns of NS) {
  pods.push({ metadata: { namespace: ns, name: 'web-1', labels: { app: 'web' } }, spec: {} });
  pods.push({ metadata: { namespace: ns, name: 'api', labels: {} }, spec: {} });
  pods.push({ metadata: { namespace: ns, generateName: 'web-', labels: { app: 'web' } }, spec: {} });
}

t.test('mayIncludeNamespace is false only for Routes that can select no pod of the namespace', async (t) => {
  t.equal(mayIncludeNamespace({ spec: {} }, 'x'), true, 'no include: every pod');
  t.equal(mayIncludeNamespace({ spec: { include: [] } }, 'x'), false, 'empty include: no pod');
  t.equal(mayIncludeNamespace({ spec: { include: [{ namespaces: ['prod-*'] }] } }, 'prod-a'), true);
  t.equal(mayIncludeNamespace({ spec: { include: [{ namespaces: ['prod-*'] }] } }, 'dev'), false);
  t.equal(
    mayIncludeNamespace({ spec: { include: [{ pods: ['dev/x'] }, { podSelector: {} }] } }, 'prod-a'),
    true,
    'a term without namespaces may match',
  );
  t.equal(mayIncludeNamespace({ spec: { include: [{ pods: ['dev/x'] }] } }, 'prod-a'), false);
  const team = { spec: { include: [{ namespaceSelector: { matchLabels: { team: 'a' } } }] } };
  t.equal(mayIncludeNamespace(team, 'x'), true, 'namespaceSelector without the labels: may match');
  t.equal(mayIncludeNamespace(team, 'x', { labels: { team: 'a' } }), true, 'namespaceSelector matching the labels');
  t.equal(mayIncludeNamespace(team, 'x', { labels: { team: 'b' } }), false, 'namespaceSelector not matching the labels');
  t.equal(mayIncludeNamespace(team, 'x', { labels: undefined }), false, 'namespaceSelector, namespace not known');
  t.equal(
    mayIncludeNamespace({ spec: { include: [{ namespaceSelector: {} }] } }, 'x', { labels: undefined }),
    true,
    'an empty namespaceSelector selects every namespace',
  );
  t.equal(
    mayIncludeNamespace({ spec: { include: [{ namespaceSelector: { matchLabels: { team: 'b' } } }, { podSelector: {} }] } }, 'x', {
      labels: { team: 'a' },
    }),
    true,
    'another term may match',
  );
});

t.test('every pod resolves exactly as against all Routes', async (t) => {
  for (const pod of pods) {
    const full = resolvePlan(pod, resolveContext(pod, caches, 'default'));
    const d = desiredPlan(pod, caches, { mode: 'default', keys: [key] });
    const what = `${pod.metadata!.namespace}/${pod.metadata!.name ?? pod.metadata!.generateName + '*'}`;
    t.same(d.resolution, full, `${what}: same resolution (${full.kind})`);
    const ns = pod.metadata!.namespace!;
    const only = routesForNamespace(caches.routes.list(), ns, caches.namespaces.get(ns));
    t.ok(only.length < routes.length, `${what}: resolved against ${only.length} of ${routes.length} Routes`);
  }
  t.equal(
    routesForNamespace(caches.routes.list(), 'dev', caches.namespaces.get('dev')),
    routesForNamespace(caches.routes.list(), 'dev', caches.namespaces.get('dev')),
    'the index is reused while the Route list and the Namespace are',
  );
});

t.test('a namespace label change is followed: the index is made again for the new Namespace', async (t) => {
  const local = cachesFromObjects({ routes, namespaces: [{ metadata: { name: 'dev', resourceVersion: '1', labels: {} } }] });
  const pod: Pod = { metadata: { namespace: 'dev', name: 'web-1', labels: { app: 'web' } }, spec: {} };
  const teamRoutes = (rs: Route[]) => rs.filter((r) => r.spec?.include?.some((i) => i.namespaceSelector)).length;
  const before = routesForNamespace(local.routes.list(), 'dev', local.namespaces.get('dev'));
  t.equal(teamRoutes(before), 0, 'no namespaceSelector Route while dev has no team label');
  const planBefore = desiredPlan(pod, local, { mode: 'default', keys: [key] });
  local.store('namespaces').upsert({ metadata: { name: 'dev', resourceVersion: '2', labels: { team: 'a' } } });
  const after = routesForNamespace(local.routes.list(), 'dev', local.namespaces.get('dev'));
  t.equal(teamRoutes(after), 10, 'the 10 team=a Routes once dev is labelled team=a');
  const d = desiredPlan(pod, local, { mode: 'default', keys: [key] });
  t.same(d.resolution, resolvePlan(pod, resolveContext(pod, local, 'default')), 'same resolution as against all Routes');
  t.not(d.action === 'set' && d.value, planBefore.action === 'set' && planBefore.value, 'the plan changed with the label');
});

t.test('a pod no Route selects: the reason names every Route, also those the index left out', async (t) => {
  const few: Route[] = [
    { metadata: { name: 'r-a' }, spec: { include: [{ namespaces: ['prod-a'] }], route: [{ dst: '10.1.0.0/16', dev: 'eth1' }] } },
    {
      metadata: { name: 'r-b' },
      spec: { include: [{ namespaceSelector: { matchLabels: { team: 'b' } } }], route: [{ dst: '10.2.0.0/16', dev: 'eth1' }] },
    },
    {
      metadata: { name: 'r-c' },
      spec: { include: [{ podSelector: { matchLabels: { app: 'db' } } }], route: [{ dst: '10.3.0.0/16', dev: 'eth1' }] },
    },
  ];
  const local = cachesFromObjects({ routes: few, namespaces: [{ metadata: { name: 'dev', labels: { team: 'a' } } }] });
  const pod: Pod = { metadata: { namespace: 'dev', generateName: 'web-', labels: { app: 'web' } }, spec: {} };
  t.same(
    routesForNamespace(local.routes.list(), 'dev', local.namespaces.get('dev')).map((r) => r.metadata?.name),
    ['r-c'],
    'the index keeps only the Route that may select pods of dev',
  );
  const full = resolvePlan(pod, resolveContext(pod, local, 'default'));
  const d = desiredPlan(pod, local, { mode: 'default', keys: [key] });
  t.equal(d.action === 'remove' && d.reason, 'no-route');
  t.equal(
    full.kind === 'skipped' && d.action === 'remove' && d.message,
    full.kind === 'skipped' && full.reason,
    'the reason over all Routes',
  );
  t.match(d.action === 'remove' && d.message, /r-a: not included: include\[0\]: namespace "dev" is not in namespaces \[prod-a\]/);
  t.match(
    d.action === 'remove' && d.message,
    /r-b: not included: include\[0\]: namespace "dev" labels do not match namespaceSelector \{team=b\}/,
  );
  t.match(JSON.stringify(d), /r-a: not included/, 'a log line of the decision carries it');
  t.same(d.resolution, full, 'the same resolution as against all Routes');
});
