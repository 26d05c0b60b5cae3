// Which pods a change can affect (webhook/controller/map.ts), driven from plain objects.
// Besides the table cases, a property check: for Route edits, Service changes and
// namespace relabelling, every pod OUTSIDE the mapped set resolves to the very same plan
// annotation before and after the change, so re-resolving only the mapped pods is enough.
import t from 'tap';
import { planKeyFromSecret } from '../../core/plan-codec.js';
import type { KubeObject, Namespace, Pod, Route, Service } from '../../core/types.js';
import { cachesFromObjects, type CacheObjects } from '../../webhook/caches/caches.js';
import {
  namespaceChanged,
  ownerChanged,
  podChanged,
  podsOwnedBy,
  podsSelectedBy,
  routesReferencing,
  routeVersionsOf,
  serviceChanged,
} from '../../webhook/controller/map.js';
import { desiredPlan } from '../../webhook/plan.js';
import { podKey, podStoreFromObjects, slimPod, type CachedPod } from '../../webhook/caches/pods.js';
import type { ChangeEvent } from '../../webhook/caches/store.js';

const key = planKeyFromSecret(Buffer.alloc(32, 7));
const ns = (name: string, labels: Record<string, string> = {}): Namespace => ({
  metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } },
});
const pod = (namespace: string, name: string, labels: Record<string, string> = {}, owner?: { kind: string; name: string }): Pod => ({
  metadata: {
    namespace,
    name,
    uid: `uid-${namespace}-${name}`,
    resourceVersion: '1',
    labels,
    ...(owner ? { ownerReferences: [{ ...owner, controller: true }] } : {}),
  },
  spec: {},
});
const route = (name: string, spec: Route['spec']): Route => ({ metadata: { name, resourceVersion: '1', generation: 1 }, spec });
const svc = (namespace: string, name: string, ip: string): Service => ({
  metadata: { namespace, name, resourceVersion: '1' },
  spec: { clusterIP: ip, clusterIPs: [ip] },
});
const ev = <T>(type: ChangeEvent<T>['type'], object: T, old?: T): ChangeEvent<T> => ({ type, object, old, resource: 'x' });

const objects = (): Required<CacheObjects> & { pods: Pod[] } => ({
  namespaces: [ns('a'), ns('b', { team: 'blue' }), ns('c')],
  routes: [
    route('to-a', { include: [{ namespaces: ['a'] }], route: [{ dst: '172.16.10.0/24', dev: 'eth1' }] }),
    route('blue', {
      include: [{ namespaceSelector: { matchLabels: { team: 'blue' } } }],
      svc: [{ namespace: 'a', name: 'db', dev: 'eth1' }],
    }),
    route('web-owned', { include: [{ owners: [{ kind: 'Deployment', name: 'web' }] }], route: [{ dst: '192.168.2.0/24', dev: 'eth0' }] }),
  ],
  services: [svc('a', 'db', '10.96.0.10')],
  replicaSets: [
    {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { namespace: 'c', name: 'web-1', ownerReferences: [{ kind: 'Deployment', name: 'web', controller: true }] },
    },
  ],
  jobs: [],
  pods: [
    pod('a', 'a1'),
    pod('a', 'a2', { app: 'x' }),
    pod('b', 'b1'),
    pod('b', 'b2'),
    pod('c', 'c1', {}, { kind: 'ReplicaSet', name: 'web-1' }),
    pod('c', 'c2'),
  ],
});

function world(o = objects()) {
  const caches = cachesFromObjects(o);
  const pods = podStoreFromObjects(o.pods);
  const plans = () =>
    new Map(
      pods.list().map((p) => {
        const d = desiredPlan(p, caches, { mode: 'default', keys: [key] });
        return [podKey(p), d.action === 'set' ? d.value : `none:${d.reason}`];
      }),
    );
  return { caches, pods, plans };
}

/** Keys whose plan differs between two snapshots. */
const changed = (a: Map<string, string>, b: Map<string, string>) => [...a.keys()].filter((k) => a.get(k) !== b.get(k)).sort();

t.test('podsSelectedBy: include by namespace, namespaceSelector, owner chain', async (t) => {
  const { caches, pods } = world();
  const [toA, blue, web] = caches.routes
    .list()
    .slice()
    .sort((x, y) => ['to-a', 'blue', 'web-owned'].indexOf(x.metadata!.name!) - ['to-a', 'blue', 'web-owned'].indexOf(y.metadata!.name!));
  t.same(podsSelectedBy([toA!], pods, caches), ['a/a1', 'a/a2']);
  t.same(podsSelectedBy([blue!], pods, caches), ['b/b1', 'b/b2']);
  t.same(podsSelectedBy([web!], pods, caches), ['c/c1'], 'through ReplicaSet web-1 -> Deployment web');
  t.same(podsSelectedBy([toA!, web!], pods, caches), ['a/a1', 'a/a2', 'c/c1'], 'union, each pod once');
  t.same(podsSelectedBy([], pods, caches), []);
  t.same(podsSelectedBy([route('all', {})], pods, caches).length, 6, 'no include selects every pod');
  const gen = podStoreFromObjects([{ metadata: { namespace: 'a', generateName: 'gen-', name: 'gen-x1' } }]);
  t.same(podsSelectedBy([route('n', { include: [{ pods: ['a/gen*-x1'] }] })], gen, caches), ['a/gen-x1'], 'by final name once it exists');
});

t.test('routeVersionsOf: add, delete, spec edit; status-only updates touch nothing', async (t) => {
  const r1 = route('r', { route: [{ dst: '10.0.0.0/8', dev: 'eth1' }] });
  const r2 = route('r', { route: [{ dst: '10.0.0.0/8', dev: 'eth0' }] });
  const withStatus: Route = { ...r1, metadata: { ...r1.metadata, resourceVersion: '2' }, status: { status: 'Active', matchedPods: 3 } };
  t.same(routeVersionsOf(ev('add', r1)), [r1]);
  t.same(routeVersionsOf(ev('delete', r1, r1)), [r1]);
  t.same(routeVersionsOf(ev('update', r2, r1)), [r1, r2], 'both the old and the new selection');
  t.same(routeVersionsOf(ev('update', withStatus, r1)), [], 'our own status write');
});

t.test('serviceChanged / routesReferencing', async (t) => {
  const a = svc('a', 'db', '10.96.0.10');
  t.ok(serviceChanged(ev('add', a)));
  t.ok(serviceChanged(ev('delete', a, a)));
  t.ok(serviceChanged(ev('update', svc('a', 'db', '10.96.0.11'), a)), 'recreated with a new ClusterIP');
  t.ok(serviceChanged(ev('update', { ...a, spec: { type: 'ExternalName', externalName: 'x.example' } }, a)), 'type change');
  t.notOk(serviceChanged(ev('update', { ...a, metadata: { ...a.metadata, labels: { x: 'y' }, resourceVersion: '2' } }, a)), 'labels only');
  const { caches } = world();
  t.same(
    routesReferencing(caches.routes.list(), 'a', 'db').map((r) => r.metadata?.name),
    ['blue'],
  );
  t.same(routesReferencing(caches.routes.list(), 'b', 'db'), [], 'namespace matters');
});

t.test('namespaceChanged, podsOwnedBy, ownerChanged, podChanged', async (t) => {
  const n = ns('b', { team: 'blue' });
  t.ok(namespaceChanged(ev('add', n)));
  t.notOk(namespaceChanged(ev('delete', n, n)), 'its pods go with it');
  t.ok(namespaceChanged(ev('update', ns('b', { team: 'red' }), n)));
  t.notOk(namespaceChanged(ev('update', { metadata: { ...n.metadata, annotations: { a: 'b' } } }, n)), 'annotations only');

  const { pods } = world();
  t.same(podsOwnedBy(pods, 'ReplicaSet', 'c', 'web-1'), ['c/c1']);
  t.same(podsOwnedBy(pods, 'ReplicaSet', 'a', 'web-1'), [], 'same name, other namespace');
  const rs: KubeObject = { metadata: { namespace: 'c', name: 'web-1', ownerReferences: [{ kind: 'Deployment', name: 'web' }] } };
  t.ok(ownerChanged(ev('add', rs)));
  t.ok(ownerChanged(ev('update', { metadata: { ...rs.metadata, ownerReferences: [] } }, rs)), 'orphaned');
  t.notOk(ownerChanged(ev('update', { metadata: { ...rs.metadata, resourceVersion: '9' } }, rs)));

  const p = slimPod(pod('a', 'p', { app: 'x' }));
  const bumped: CachedPod = { ...p, metadata: { ...p.metadata, resourceVersion: '2' } };
  t.ok(podChanged(ev('add', p)));
  t.notOk(podChanged(ev('update', bumped, p)), 'resourceVersion only (e.g. a container status update)');
  t.ok(podChanged(ev('update', { ...bumped, metadata: { ...bumped.metadata, labels: { app: 'y' } } }, p)), 'labels');
  t.ok(
    podChanged(ev('update', { ...bumped, metadata: { ...bumped.metadata, annotations: { 'routes.k8s.ovn.org/status': '{}' } } }, p)),
    'injector report',
  );
  t.ok(podChanged(ev('update', { ...bumped, status: { phase: 'Running' } }, p)), 'phase');
});

t.test('property: pods outside the mapped set keep the same plan', async (t) => {
  // Each case changes one object; the mapped pods must cover every pod whose plan changed.
  const cases: {
    name: string;
    change: (o: ReturnType<typeof objects>) => void;
    mapped: (w: ReturnType<typeof world>, before: ReturnType<typeof objects>, after: ReturnType<typeof objects>) => string[];
  }[] = [
    {
      name: 'Route include moved from namespace a to c',
      change: (o) => {
        o.routes[0] = route('to-a', { include: [{ namespaces: ['c'] }], route: [{ dst: '172.16.10.0/24', dev: 'eth1' }] });
      },
      mapped: (w, b, a) => podsSelectedBy(routeVersionsOf(ev('update', a.routes[0]!, b.routes[0]!)), w.pods, w.caches),
    },
    {
      name: 'Route moves to namespace a and wins a destination there by priority',
      change: (o) => {
        o.routes[2] = route('web-owned', {
          priority: 5,
          include: [{ namespaces: ['a'] }],
          route: [{ dst: '172.16.10.0/24', dev: 'eth0' }],
        });
      },
      mapped: (w, b, a) => podsSelectedBy(routeVersionsOf(ev('update', a.routes[2]!, b.routes[2]!)), w.pods, w.caches),
    },
    {
      name: 'Route deleted',
      change: (o) => {
        o.routes.splice(1, 1);
      },
      mapped: (w, b) => podsSelectedBy(routeVersionsOf(ev('delete', b.routes[1]!, b.routes[1]!)), w.pods, w.caches),
    },
    {
      name: 'Service recreated with a new ClusterIP',
      change: (o) => {
        o.services[0] = svc('a', 'db', '10.96.0.99');
      },
      mapped: (w) => podsSelectedBy(routesReferencing(w.caches.routes.list(), 'a', 'db'), w.pods, w.caches),
    },
    {
      name: 'Service deleted',
      change: (o) => {
        o.services.length = 0;
      },
      mapped: (w) => podsSelectedBy(routesReferencing(w.caches.routes.list(), 'a', 'db'), w.pods, w.caches),
    },
    {
      name: 'namespace c labelled team=blue',
      change: (o) => {
        o.namespaces[2] = ns('c', { team: 'blue' });
      },
      mapped: (w) => w.pods.list('c').map(podKey),
    },
    {
      name: 'namespace a opted out',
      change: (o) => {
        o.namespaces[0] = ns('a', { 'routes.k8s.ovn.org/inject': 'disabled' });
      },
      mapped: (w) => w.pods.list('a').map(podKey),
    },
    {
      name: 'ReplicaSet web-1 orphaned',
      change: (o) => {
        o.replicaSets[0] = { ...o.replicaSets[0]!, metadata: { ...o.replicaSets[0]!.metadata, ownerReferences: [] } };
      },
      mapped: (w) => podsOwnedBy(w.pods, 'ReplicaSet', 'c', 'web-1'),
    },
  ];
  for (const c of cases) {
    const before = objects();
    const after = objects();
    c.change(after);
    const w0 = world(before);
    const w1 = world(after);
    const diff = changed(w0.plans(), w1.plans());
    // Selections are computed against the caches in which the event is delivered (the new ones).
    const mapped = new Set(c.mapped(w1, before, after));
    t.ok(diff.length > 0, `${c.name}: the change does change some plan (${diff.join(', ')})`);
    t.same(
      diff.filter((k) => !mapped.has(k)),
      [],
      `${c.name}: every pod whose plan changed is mapped`,
    );
  }
});

t.test('negative control: the new selection alone would miss pods a Route edit drops', async (t) => {
  const before = objects();
  const after = objects();
  after.routes[0] = route('to-a', { include: [{ namespaces: ['c'] }], route: [{ dst: '172.16.10.0/24', dev: 'eth1' }] });
  const w1 = world(after);
  const diff = changed(world(before).plans(), w1.plans());
  const newOnly = new Set(podsSelectedBy([after.routes[0]], w1.pods, w1.caches));
  t.same(
    diff.filter((k) => !newOnly.has(k)),
    ['a/a1', 'a/a2'],
    'pods only the old spec selected',
  );
});
