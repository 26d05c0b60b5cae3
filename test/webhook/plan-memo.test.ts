// The plan memo of admission (webhook/plan.ts memoizedPlan, ClusterCaches.version()): pods
// with the same resolution inputs share one answer between two cache changes, and any change
// of a Route, Service, Namespace, ReplicaSet or Job, of the signing key or of the mode gives
// the next review the answer of the new state (each compared with desiredPlan computed afresh).
import t, { type Test } from 'tap';
import { decodePlan, type PlanKey } from '../../core/plan-codec.js';
import { PLAN_ANNOTATION, type KubeObject, type Namespace, type Pod, type Route, type Service } from '../../core/types.js';
import { admit, type AdmitDeps } from '../../webhook/admission/admission.js';
import type { ValidReview } from '../../webhook/admission/review.js';
import { cachesFromObjects } from '../../webhook/caches/caches.js';
import {
  desiredPlan,
  memoizedPlan,
  PLAN_MEMO_BYTES,
  PLAN_MEMO_KEY_MAX,
  PLAN_MEMO_SHARED_SIZE,
  PLAN_MEMO_SIZE,
  resolutionSubject,
} from '../../webhook/plan.js';
import { applyResponse, patchOps, testKey } from './helpers.js';

const route = (name: string, rv: string, spec: Route['spec']): Route => ({ metadata: { name, resourceVersion: rv }, spec });
const ns = (name: string, rv: string, labels: Record<string, string>): Namespace => ({ metadata: { name, resourceVersion: rv, labels } });
const svc = (name: string, rv: string, ip: string): Service => ({
  metadata: { name, namespace: 'default', resourceVersion: rv },
  spec: { type: 'ClusterIP', clusterIP: ip, clusterIPs: [ip] },
});
const owned = (kind: string, name: string, rv: string, ownerKind: string, owner: string): KubeObject => ({
  kind,
  metadata: { name, namespace: 'default', resourceVersion: rv, ownerReferences: [{ kind: ownerKind, name: owner, controller: true }] },
});

function world() {
  return cachesFromObjects({
    routes: [
      route('web', '1', { include: [{ owners: [{ kind: 'Deployment', name: 'web' }] }], route: [{ dst: '172.16.1.0/24', dev: 'eth1' }] }),
      route('svc', '1', { include: [{ namespaces: ['default'] }], svc: [{ namespace: 'default', name: 'api', dev: 'eth0' }] }),
      route('team', '1', {
        include: [{ namespaceSelector: { matchLabels: { team: 'a' } }, podSelector: { matchLabels: { tier: 'frontend' } } }],
        route: [{ dst: '172.16.2.0/24', dev: 'eth1' }],
      }),
      route('cron', '1', { include: [{ owners: [{ kind: 'CronJob', name: 'nightly' }] }], route: [{ dst: '172.16.3.0/24', dev: 'eth1' }] }),
    ],
    namespaces: [ns('default', '1', { team: 'a' })],
    services: [svc('api', '1', '10.96.0.5')],
    replicaSets: [owned('ReplicaSet', 'web-5f7c', '1', 'Deployment', 'web')],
    jobs: [owned('Job', 'nightly-1', '1', 'CronJob', 'nightly')],
  });
}

let uid = 0;
/** A pod CREATE review as the API server sends it for a workload's pod (generateName, no name). */
function review(labels: Record<string, string>, owner = { kind: 'ReplicaSet', name: 'web-5f7c' }, extra: Partial<Pod> = {}): ValidReview {
  const pod: Pod = {
    metadata: { generateName: `${owner.name}-`, namespace: 'default', labels, ownerReferences: [{ ...owner, controller: true }] },
    spec: { containers: [{ name: 'c', image: 'x' }] },
    ...extra,
  };
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid: `u-${++uid}`, kind: { group: '', version: 'v1', kind: 'Pod' }, namespace: 'default', operation: 'CREATE', object: pod },
  };
}

/** The destinations of the plan admission stamps on the review's pod ([] for none), checked against desiredPlan afresh. */
function stamped(t: Test, r: ValidReview, deps: AdmitDeps, keys: readonly PlanKey[] = deps.keys): string[] {
  const value = applyResponse(r.request.object, admit(r, deps).review).metadata?.annotations?.[PLAN_ANNOTATION];
  const fresh = desiredPlan(r.request.object as Pod, deps.caches, { mode: deps.mode, keys: deps.keys });
  t.equal(value, fresh.action === 'set' ? fresh.value : undefined, 'admission stamps what desiredPlan computes afresh');
  if (value === undefined) return [];
  const d = decodePlan(value, { namespace: 'default', keys: [...keys], requireSignature: true });
  if (!d.ok) throw new Error(`stamped plan does not verify: ${d.error}`);
  return d.plan.routes.map((x) => x.dst);
}

const web = { app: 'web', tier: 'frontend' };

t.test('pods with the same inputs share one answer until the caches change', async (t) => {
  const caches = world();
  const opts = { mode: 'default' as const, keys: [testKey()] };
  const a = memoizedPlan(review(web).request.object as Pod, 'default', caches, opts);
  const b = memoizedPlan(review(web).request.object as Pod, 'default', caches, opts);
  t.equal(a, b, 'the second pod of the workload gets the answer computed for the first');
  t.equal(a.action, 'set');
  const other = memoizedPlan(review({ app: 'web' }).request.object as Pod, 'default', caches, opts);
  t.not(other, a, 'other labels: another answer');
  caches.store('services').upsert(svc('api', '1', '10.96.0.99'));
  t.equal(
    memoizedPlan(review(web).request.object as Pod, 'default', caches, opts),
    a,
    'an echo with the same resourceVersion is no change',
  );
  caches.store('services').upsert(svc('api', '2', '10.96.0.5'));
  const c = memoizedPlan(review(web).request.object as Pod, 'default', caches, opts);
  t.not(c, a, 'after a change the answer is computed again');
  t.same(c, a, '(to the same plan here: the ClusterIP is the same)');
});

t.test('a changed Route, Service, Namespace, ReplicaSet or Job changes the next answer', async (t) => {
  const caches = world();
  const deps: AdmitDeps = { caches, mode: 'default', keys: [testKey()] };
  const all = ['10.96.0.5/32', '172.16.1.0/24', '172.16.2.0/24'];
  t.same(stamped(t, review(web), deps), all, 'the owner, namespace and team Routes');
  t.same(stamped(t, review(web), deps), all, 'again, from the memo');

  caches
    .store('routes')
    .upsert(
      route('web', '2', { include: [{ owners: [{ kind: 'Deployment', name: 'web' }] }], route: [{ dst: '172.16.9.0/24', dev: 'eth1' }] }),
    );
  t.same(stamped(t, review(web), deps), ['10.96.0.5/32', '172.16.2.0/24', '172.16.9.0/24'], 'Route web edited: its new CIDR');

  caches.store('routes').remove(route('team', '1', {}));
  t.same(stamped(t, review(web), deps), ['10.96.0.5/32', '172.16.9.0/24'], 'Route team deleted: its CIDR is gone');

  caches.store('routes').upsert(
    route('team', '3', {
      include: [{ namespaceSelector: { matchLabels: { team: 'a' } } }],
      route: [{ dst: '172.16.4.0/24', dev: 'eth0' }],
    }),
  );
  t.same(stamped(t, review(web), deps), ['10.96.0.5/32', '172.16.4.0/24', '172.16.9.0/24'], 'Route team added again');

  caches.store('services').upsert(svc('api', '2', '10.96.0.77'));
  t.same(stamped(t, review(web), deps), ['10.96.0.77/32', '172.16.4.0/24', '172.16.9.0/24'], 'Service api got a new ClusterIP');

  caches.store('namespaces').upsert(ns('default', '2', { team: 'b' }));
  t.same(stamped(t, review(web), deps), ['10.96.0.77/32', '172.16.9.0/24'], 'namespace relabelled: the team Route no longer selects it');

  caches.store('replicasets').upsert(owned('ReplicaSet', 'web-5f7c', '2', 'Deployment', 'web-v2'));
  t.same(stamped(t, review(web), deps), ['10.96.0.77/32'], 'ReplicaSet now owned by another Deployment: the owner Route no longer selects');

  const cronPod = () => review({ job: 'x' }, { kind: 'Job', name: 'nightly-1' });
  t.same(stamped(t, cronPod(), deps), ['10.96.0.77/32', '172.16.3.0/24'], 'a CronJob pod');
  caches.store('jobs').upsert(owned('Job', 'nightly-1', '2', 'CronJob', 'weekly'));
  t.same(stamped(t, cronPod(), deps), ['10.96.0.77/32'], 'its Job now owned by another CronJob');

  caches.store('namespaces').upsert(ns('default', '3', { team: 'b', 'routes.k8s.ovn.org/inject': 'disabled' }));
  t.same(stamped(t, review(web), deps), [], 'namespace opted out: no plan');
});

t.test('a new signing key or mode is a new memo', async (t) => {
  const caches = world();
  const k1 = testKey();
  const k2 = testKey();
  const deps: AdmitDeps = { caches, mode: 'default', keys: [k1] };
  t.ok(stamped(t, review(web), deps).length > 0, 'signed with key 1');
  const rotated: AdmitDeps = { ...deps, keys: [k2, k1] };
  t.ok(stamped(t, review(web), rotated, [k2]).length > 0, 'after rotation the plan verifies with key 2 alone');
  const again = memoizedPlan(review(web).request.object as Pod, 'default', caches, { mode: 'default', keys: [k1] });
  t.equal(
    again.action === 'set' && decodePlan(again.value, { namespace: 'default', keys: [k1], requireSignature: true }).ok,
    true,
    'back to key 1: signed with it',
  );
  t.same(stamped(t, review(web), { ...deps, mode: 'opt-in' }), [], 'opt-in mode: this pod is not opted in');
  t.ok(stamped(t, review(web), deps).length > 0, 'default mode again');
});

t.test('what the pod carries besides its resolution inputs does not matter; its inputs do', async (t) => {
  const caches = world();
  const deps: AdmitDeps = { caches, mode: 'default', keys: [testKey()] };
  const opts = { mode: deps.mode, keys: deps.keys };
  const pods: Pod[] = [
    review(web).request.object as Pod,
    review({ ...web, extra: 'x' }).request.object as Pod,
    review({ app: 'web' }).request.object as Pod,
    review({ ...web, 'routes.k8s.ovn.org/inject': 'disabled' }).request.object as Pod,
    review(web, { kind: 'Job', name: 'nightly-1' }).request.object as Pod,
    review(web, undefined, { spec: { hostNetwork: true, containers: [] } }).request.object as Pod,
    { metadata: { name: 'web-0', namespace: 'default', labels: web }, spec: {} },
    { metadata: { name: 'web-0', namespace: 'default', labels: web, annotations: { a: 'b' } }, spec: { nodeName: 'n1' } },
  ];
  for (const [i, pod] of pods.entries()) {
    const full = desiredPlan(pod, caches, opts);
    const m = memoizedPlan(pod, 'default', caches, opts);
    t.same(
      m.action === 'set' ? m.value : m.reason,
      full.action === 'set' ? full.value : full.reason,
      `pod ${i}: as desiredPlan of the whole pod`,
    );
    t.same(
      desiredPlan(resolutionSubject(pod, 'default'), caches, opts).resolution,
      full.resolution,
      `pod ${i}: the projection resolves as the pod`,
    );
  }
  const missingNs = review(web).request.object as Pod;
  delete missingNs.metadata!.namespace;
  const m = memoizedPlan(missingNs, 'default', caches, opts);
  t.equal(m.action, 'set', 'a CREATE object without its namespace is resolved in the namespace given');
  const reasons = pods.map((p) => memoizedPlan(p, 'default', caches, opts)).map((a) => (a.action === 'set' ? 'set' : a.reason));
  t.same(reasons, ['set', 'set', 'set', 'opted-out', 'set', 'host-network', 'set', 'set']);
});

t.test('the memo is bounded; the plan annotation of a review is not an input', async (t) => {
  const caches = world();
  const opts = { mode: 'default' as const, keys: [testKey()] };
  // Pods that opted out: a skip is remembered by the pod's inputs only (never shared), so the
  // identity of the answer tells whether the entry was still held.
  const OUT = { 'routes.k8s.ovn.org/inject': 'disabled' };
  const first = review({ n: '0', ...OUT }).request.object as Pod;
  const a = memoizedPlan(first, 'default', caches, opts);
  t.equal(a.action === 'remove' && a.reason, 'opted-out');
  for (let i = 1; i <= PLAN_MEMO_SIZE; i++) memoizedPlan(review({ n: String(i) }).request.object as Pod, 'default', caches, opts);
  const b = memoizedPlan(first, 'default', caches, opts);
  t.not(b, a, 'the oldest entry was dropped once the memo was full');
  t.same(b, a, 'and computed again to the same answer');

  // Bounded in bytes too: pods with large labels fill the budget long before the entry count.
  const big = (i: number) => review({ n: String(i), pad: 'x'.repeat(PLAN_MEMO_KEY_MAX / 2), ...OUT }).request.object as Pod;
  const firstBig = memoizedPlan(big(0), 'default', caches, opts);
  t.equal(memoizedPlan(big(0), 'default', caches, opts), firstBig, 'a large pod is remembered');
  const fit = Math.ceil(PLAN_MEMO_BYTES / PLAN_MEMO_KEY_MAX);
  t.ok(fit < PLAN_MEMO_SIZE / 2, `about ${fit} such pods fill the byte budget`);
  for (let i = 1; i <= fit; i++) memoizedPlan(big(i), 'default', caches, opts);
  t.not(memoizedPlan(big(0), 'default', caches, opts), firstBig, 'dropped once the bytes were used up');
  const huge = () => review({ pad: 'x'.repeat(PLAN_MEMO_KEY_MAX) }).request.object as Pod;
  const h = memoizedPlan(huge(), 'default', caches, opts);
  t.not(memoizedPlan(huge(), 'default', caches, opts), h, 'inputs larger than the key bound are not remembered');
  t.same(memoizedPlan(huge(), 'default', caches, opts), h, 'but answered the same');
  const forged = review(web);
  (forged.request.object as Pod).metadata!.annotations = { [PLAN_ANNOTATION]: '{"v":1,"routes":[]}' };
  const ops = patchOps(admit(forged, { caches, ...opts }).review.response);
  t.equal(ops.length, 1);
  t.equal(ops[0]!.op, 'replace', 'a forged plan is replaced by the computed one');
});

t.test('pods with inputs of their own that the same Routes select share one plan, per namespace', async (t) => {
  const caches = cachesFromObjects({
    routes: [
      route('front', '1', {
        include: [{ podSelector: { matchLabels: { tier: 'frontend' } } }],
        route: [{ dst: '172.16.9.0/24', dev: 'eth1' }],
      }),
      route('db', '1', {
        include: [{ namespaces: ['a'], podSelector: { matchLabels: { role: 'db' } } }],
        route: [{ dst: '172.16.8.0/24', dev: 'eth0' }],
      }),
    ],
    namespaces: [ns('a', '1', {}), ns('b', '1', {})],
    services: [],
    replicaSets: [],
    jobs: [],
  });
  const key = testKey();
  const opts = { mode: 'default' as const, keys: [key] };
  // StatefulSet pods: a name and a pod-name label of their own, so no two share their inputs.
  let n = 0;
  const pod = (namespace: string, labels: Record<string, string>): Pod => {
    const name = `web-${n++}`;
    return { metadata: { name, namespace, labels: { ...labels, 'statefulset.kubernetes.io/pod-name': name } }, spec: {} };
  };
  const answer = (p: Pod) => {
    const m = memoizedPlan(p, p.metadata!.namespace!, caches, opts);
    const fresh = desiredPlan(p, caches, opts);
    t.same(
      m.action === 'set' ? m.value : m.reason,
      fresh.action === 'set' ? fresh.value : fresh.reason,
      `${p.metadata!.namespace}/${p.metadata!.name}: as desiredPlan computes afresh`,
    );
    return m;
  };
  const dsts = (a: ReturnType<typeof answer>, namespace: string): string[] => {
    if (a.action !== 'set') return [];
    const d = decodePlan(a.value, { namespace, keys: [key], requireSignature: true });
    if (!d.ok) throw new Error(d.error);
    return d.plan.routes.map((r) => r.dst);
  };
  const first = answer(pod('a', { tier: 'frontend' }));
  t.same(dsts(first, 'a'), ['172.16.9.0/24']);
  t.equal(answer(pod('a', { tier: 'frontend' })), first, 'another pod of its own, selected by the same Route: the same answer');
  const both = answer(pod('a', { tier: 'frontend', role: 'db' }));
  t.same(dsts(both, 'a'), ['172.16.8.0/24', '172.16.9.0/24'], 'selected by both Routes: its own plan');
  t.equal(answer(pod('a', { tier: 'frontend', role: 'db' })), both, 'and shared in turn');
  const inB = answer(pod('b', { tier: 'frontend' }));
  t.not(inB, first, 'the same Route in another namespace: another answer');
  t.same(dsts(inB, 'b'), ['172.16.9.0/24'], 'signed for that namespace');
  t.same(dsts(answer(pod('b', { tier: 'frontend', role: 'db' })), 'b'), ['172.16.9.0/24'], 'the db Route is for namespace a only');
  const out = answer(pod('a', { tier: 'frontend', 'routes.k8s.ovn.org/inject': 'disabled' }));
  t.equal(out.action === 'remove' && out.reason, 'opted-out', 'a pod that opted out is skipped before any Route is shared');
  const none = answer(pod('a', { tier: 'backend' }));
  t.equal(none.action === 'remove' && none.reason, 'no-route', 'no Route: a skip, whose reason names the pod');
  caches.store('routes').upsert(
    route('front', '2', {
      include: [{ podSelector: { matchLabels: { tier: 'frontend' } } }],
      route: [{ dst: '172.16.7.0/24', dev: 'eth1' }],
    }),
  );
  const edited = answer(pod('a', { tier: 'frontend' }));
  t.same(dsts(edited, 'a'), ['172.16.7.0/24'], 'after the Route is edited, the shared plan is the new one');
});

t.test('shared plans outlast a stream of pods with inputs of their own; they are bounded too', async (t) => {
  // One Route selecting frontend pods in every namespace: one shared plan per namespace.
  const namespaces = Array.from({ length: PLAN_MEMO_SHARED_SIZE + 1 }, (_, i) => ns(`n${i}`, '1', {}));
  const caches = cachesFromObjects({
    routes: [
      route('front', '1', {
        include: [{ podSelector: { matchLabels: { tier: 'frontend' } } }],
        route: [{ dst: '172.16.9.0/24', dev: 'eth1' }],
      }),
    ],
    namespaces,
    services: [],
    replicaSets: [],
    jobs: [],
  });
  const opts = { mode: 'default' as const, keys: [testKey()] };
  let n = 0;
  const ask = (namespace: string): ReturnType<typeof memoizedPlan> => {
    const name = `web-${n++}`; // a StatefulSet pod: inputs of its own
    const pod: Pod = { metadata: { name, namespace, labels: { tier: 'frontend', 'statefulset.kubernetes.io/pod-name': name } }, spec: {} };
    const a = memoizedPlan(pod, namespace, caches, opts);
    const fresh = desiredPlan(pod, caches, opts);
    if ((a.action === 'set' ? a.value : a.reason) !== (fresh.action === 'set' ? fresh.value : fresh.reason)) {
      t.fail(`${namespace}/${name}: not as desiredPlan computes afresh`);
    }
    return a;
  };
  const first = ask('n0');
  t.equal(first.action, 'set');
  // More pods of their own than the memo of pod inputs holds, all in one other namespace.
  for (let i = 0; i < PLAN_MEMO_SIZE + 10; i++) ask('n1');
  t.equal(ask('n0'), first, 'n0 still shares its plan after more distinct pods than the memo of pod inputs holds');
  // More shared plans than their bound: the oldest (n0's) goes, and is made again the same.
  for (let i = 1; i <= PLAN_MEMO_SHARED_SIZE; i++) ask(`n${i}`);
  const again = ask('n0');
  t.not(again, first, 'the oldest shared plan was dropped once more namespaces shared plans than the bound');
  t.same(again, first, 'and made again to the same answer');
});
