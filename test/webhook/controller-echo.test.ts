// The controller does not reconcile the watch's echo of its own plan patch: the echo carries
// exactly the annotation it wrote, nothing else of the pod changed, and no Route, Service,
// namespace or owner changed since it decided. Anything else (another change to the pod, a
// Route changed meanwhile) is still reconciled. The API here is a store that echoes patches
// as a watch would (the real API server is exercised in test/webhook-e2e/).
import fjp from 'fast-json-patch';
import t, { type Test } from 'tap';
import { decodePlan, encodePlan, planKeyFromSecret } from '../../core/plan-codec.js';
import { PLAN_ANNOTATION, type Pod, type Route } from '../../core/types.js';
import { cachesFromObjects } from '../../webhook/caches/caches.js';
import { Controller, type ControllerApi } from '../../webhook/controller/controller.js';
import { failureMetrics, numberedPods, TEST_CONTROLLER } from './helpers.js';
import { podStoreFromObjects, type CachedPod } from '../../webhook/caches/pods.js';
import type { ObjectStore } from '../../webhook/caches/store.js';

const key = planKeyFromSecret(Buffer.alloc(32, 5));
const route = (dst: string): Route => ({
  metadata: { name: 'r', resourceVersion: dst, generation: 1 },
  spec: { include: [{ namespaces: ['a'] }], route: [{ dst, dev: 'eth1' }] },
});

/** An API whose pod patches land in `pods` a tick later, as the watch would deliver them. */
function echoingApi(pods: ObjectStore<CachedPod>): ControllerApi & { patches: string[] } {
  let rv = 100;
  const patches: string[] = [];
  return {
    patches,
    async patchPod(namespace, name, ops) {
      patches.push(`${namespace}/${name}`);
      const cur = pods.get(name, namespace)!;
      const doc = fjp.applyPatch(structuredClone(cur) as unknown as Pod, ops as fjp.Operation[], true, false).newDocument as CachedPod;
      doc.metadata.resourceVersion = String(++rv);
      setImmediate(() => pods.upsert(doc));
      return doc;
    },
    async patchRouteStatus() {
      return {};
    },
    async createEvent() {
      return {};
    },
  };
}

function setup(t: Test, n: number) {
  const caches = cachesFromObjects({ routes: [route('10.9.0.0/16')], namespaces: [{ metadata: { name: 'a' } }] });
  const pods = podStoreFromObjects(numberedPods(n));
  const api = echoingApi(pods);
  const c = new Controller({
    caches,
    pods,
    api,
    ...TEST_CONTROLLER,
    keys: [key],
    concurrency: 2,
  });
  const reconciles: string[] = [];
  const real = c.reconcile.bind(c);
  c.reconcile = (k: string) => {
    reconciles.push(k);
    return real(k);
  };
  t.teardown(() => c.stop());
  return { c, caches, pods, api, reconciles };
}

/** Let echoes (setImmediate) arrive and the queue drain. */
async function settle(c: Controller): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setImmediate(r));
    await c.queue.idle();
  }
}

t.test('the echo of our own patch is not reconciled again', async (t) => {
  const { c, pods, api, reconciles } = setup(t, 10);
  await c.start();
  await settle(c);
  t.equal(api.patches.length, 10, 'every pod patched once');
  t.ok(
    [...Array(10).keys()].every((i) => pods.get(`p${i}`, 'a')!.metadata.annotations?.[PLAN_ANNOTATION]),
    'every pod carries a plan',
  );
  t.equal(reconciles.length, 10, 'one reconcile per pod: the echoes were not queued');
  t.equal(c.echoesSkipped, 10, 'ten echoes recognised');
});

t.test('an echo that also changes something else, or a world that moved, is reconciled', async (t) => {
  const { c, caches, pods, api, reconciles } = setup(t, 2);
  await c.start();
  await settle(c);
  const before = reconciles.length;
  // Pod p0: a label arrives together with the (already written) plan: not a pure echo.
  const p0 = pods.get('p0', 'a')!;
  pods.upsert({ ...p0, metadata: { ...p0.metadata, resourceVersion: '500', labels: { x: 'y' } } });
  await settle(c);
  t.equal(reconciles.length, before + 1, 'a real pod change is reconciled');
  // The Route changes: both pods are re-planned and patched; the echoes of those patches are
  // skipped again only because no other change happened after the decision.
  (caches.routes as ObjectStore<Route>).upsert(route('10.10.0.0/16'));
  await settle(c);
  t.equal(api.patches.length, 4, 'both pods patched again for the new Route');
  t.equal(c.echoesSkipped, 4, 'and their echoes skipped');
  // A write decided before a Route change is echoed after it: reconciled, not skipped.
  const slow = setup(t, 1);
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const patchPod = slow.api.patchPod.bind(slow.api);
  slow.api.patchPod = async (ns, name, ops) => {
    await gate;
    return patchPod(ns, name, ops);
  };
  await slow.c.start();
  await new Promise((r) => setImmediate(r));
  (slow.caches.routes as ObjectStore<Route>).upsert(route('10.11.0.0/16'));
  release();
  await settle(slow.c);
  t.comment(`patches: ${slow.api.patches.length}`);
  t.ok(slow.api.patches.length >= 2, 'the stale plan was written, then the new one');
  t.equal(slow.c.echoesSkipped, 1, 'only the echo of the patch decided after the Route change was skipped');
  t.equal(
    slow.pods.get('p0', 'a')!.metadata.annotations?.[PLAN_ANNOTATION]?.includes('10.11.0.0/16'),
    true,
    "the pod ends with the new Route's plan",
  );
});

t.test('a patch that admission stored as another plan is retried: no echo would bring the pod back', async (t) => {
  // Key rotation, step 3: this replica signs with `next` and still accepts `key`. Its patch is
  // admitted by a replica of the previous ReplicaSet that knows only `key`: that replica
  // re-signs the same plan with `key`, which is the pod's value already, so the API server
  // stores no change, answers with the pod as it was, and sends no watch event.
  const next = planKeyFromSecret(Buffer.alloc(32, 6));
  const caches = cachesFromObjects({ routes: [route('10.9.0.0/16')], namespaces: [{ metadata: { name: 'a' } }] });
  const oldPlan = encodePlan({ v: 1, routes: [{ dst: '10.9.0.0/16', dev: 'eth1' }] }, { key, namespace: 'a' });
  const pods = podStoreFromObjects([
    { metadata: { namespace: 'a', name: 'p0', uid: '0', resourceVersion: '1', annotations: { [PLAN_ANNOTATION]: oldPlan } }, spec: {} },
  ]);
  const api = echoingApi(pods);
  const patchPod = api.patchPod.bind(api);
  let rewritten = 0;
  api.patchPod = async (ns, name, ops) => {
    if (rewritten < 2) {
      rewritten++;
      api.patches.push(`${ns}/${name} (rewritten by admission)`);
      return structuredClone(pods.get(name, ns)!);
    }
    return patchPod(ns, name, ops);
  };
  const failures: string[] = [];
  const c = new Controller({
    caches,
    pods,
    api,
    ...TEST_CONTROLLER,
    keys: [next, key],
    concurrency: 1,
    metrics: failureMetrics(failures),
  });
  t.teardown(() => c.stop());
  await c.start();
  const signedBy = (k: typeof key) =>
    decodePlan(pods.get('p0', 'a')!.metadata.annotations![PLAN_ANNOTATION]!, { namespace: 'a', keys: [k], requireSignature: true }).ok;
  const deadline = Date.now() + 30_000;
  while (!signedBy(next) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.comment(api.patches.join(', '));
  t.ok(signedBy(next), "the pod ends signed with the controller's signing key");
  t.equal(rewritten, 2, 'after two patches that admission rewrote');
  t.same(failures, ['rewritten', 'rewritten'], 'each counted as a patch failure of reason rewritten');
});
