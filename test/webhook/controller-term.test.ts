// The Controller's term handling from plain objects, where no API write is due (the API
// writes themselves are exercised against the real kube-apiserver in test/webhook-e2e/):
// pods that already carry their plan are reconciled without a single write, their records
// feed the Route aggregates; a term ended before the caches synced never begins.
import t from 'tap';
import { planKeyFromSecret } from '../../core/plan-codec.js';
import { PLAN_ANNOTATION, type Pod, type Route } from '../../core/types.js';
import { cachesFromObjects } from '../../webhook/caches/caches.js';
import { Controller, type ControllerApi } from '../../webhook/controller/controller.js';
import { desiredPlan } from '../../webhook/plan.js';
import { podStoreFromObjects, type CachedPod } from '../../webhook/caches/pods.js';
import { ObjectStore } from '../../webhook/caches/store.js';

const key = planKeyFromSecret(Buffer.alloc(32, 3));
const routes: Route[] = [
  {
    metadata: { name: 'r', resourceVersion: '1', generation: 1 },
    spec: { include: [{ namespaces: ['a'] }], route: [{ dst: '10.9.0.0/16', dev: 'eth1' }] },
  },
];
const caches = cachesFromObjects({ routes, namespaces: [{ metadata: { name: 'a' } }, { metadata: { name: 'b' } }] });

/** An API that records every call and refuses it: these tests expect none. */
function noWrites(): ControllerApi & { calls: string[] } {
  const calls: string[] = [];
  const refuse = (what: string) => async () => {
    calls.push(what);
    throw new Error(`unexpected API call: ${what}`);
  };
  return { calls, patchPod: refuse('patchPod'), patchRouteStatus: refuse('patchRouteStatus'), createEvent: refuse('createEvent') };
}

const options = (pods: ObjectStore<CachedPod>, api: ControllerApi) => ({
  caches,
  pods,
  api,
  mode: 'default' as const,
  keys: [key],
  identity: 'test',
  patchQps: 100,
  patchBurst: 10,
  concurrency: 2,
  resyncPeriodMs: 0,
  // Longer than the test: no status flush (it would write) happens.
  statusDelayMs: 3_600_000,
});

t.test('pods already carrying their plan: reconciled with no write, counted in the aggregate', async (t) => {
  const bare: Pod[] = [
    { metadata: { namespace: 'a', name: 'p1', uid: '1', resourceVersion: '1' }, spec: {} },
    { metadata: { namespace: 'a', name: 'p2', uid: '2', resourceVersion: '1' }, spec: {} },
    { metadata: { namespace: 'b', name: 'q1', uid: '3', resourceVersion: '1' }, spec: {} },
  ];
  const stamped = bare.map((p) => {
    const d = desiredPlan(p, caches, { mode: 'default', keys: [key] });
    return d.action === 'set' ? { ...p, metadata: { ...p.metadata, annotations: { [PLAN_ANNOTATION]: d.value } } } : p;
  });
  const api = noWrites();
  const c = new Controller(options(podStoreFromObjects(stamped), api));
  await c.start();
  await c.queue.idle();
  t.same(api.calls, [], 'no write');
  t.equal(c.index.size, 3, 'every pod reconciled');
  t.match(c.index.aggregate('r'), { matchedPods: 2, appliedPods: 0 });
  for (const p of stamped) t.same(await c.reconcile(`${p.metadata!.namespace}/${p.metadata!.name}`), 'done');
  t.equal(await c.reconcile('a/gone'), 'done', 'a pod that no longer exists is done');
  await c.stop();
  t.equal(c.index.size, 0, 'a new term starts from nothing');
  t.notOk(c.isRunning());
});

t.test('a term that ends before the caches sync never begins', async (t) => {
  const pods = new ObjectStore<CachedPod>('pods');
  const api = noWrites();
  const c = new Controller(options(pods, api));
  const starting = c.start();
  t.ok(c.isRunning());
  await c.stop();
  pods.replace([{ metadata: { namespace: 'a', name: 'p1', uid: '1', resourceVersion: '1' }, spec: {} } as CachedPod]);
  await starting;
  t.equal(c.queue.depth, 0, 'nothing queued');
  t.equal(c.index.size, 0, 'nothing reconciled');
  t.same(api.calls, []);
});
