// The admission handler through app.inject with AdmissionReview fixtures: stamping, the
// `~1` escaping of the annotation key, forged plans on CREATE and UPDATE, opted-out and
// hostNetwork pods, dryRun, and reinvocation (the patched pod admitted again gets no patch).
import t, { type Test } from 'tap';
import { Registry } from 'prom-client';
import { decodePlan, encodePlan, type PlanKey } from '../../core/plan-codec.js';
import { INJECT_LABEL, PLAN_ANNOTATION, type Plan, type Pod, type Route } from '../../core/types.js';
import { buildApp } from '../../webhook/admission/server.js';
import { cachesFromObjects } from '../../webhook/caches/caches.js';
import type { AdmissionReview, ValidReview } from '../../webhook/admission/review.js';
import { annotate, applyResponse, clusterCaches, clusterObjects, patchOps, reviewWith, testKey } from './helpers.js';

const CONTROLLER = 'system:serviceaccount:ovnkube-route:ovnkube-route-webhook';
const key = testKey();
const keys = [key];

function makeApp(mode: 'default' | 'opt-in' = 'default') {
  const caches = clusterCaches();
  return buildApp({
    admit: { caches, mode, keys, trustedUsers: [CONTROLLER] },
    readiness: () => ({ ready: caches.isSynced(), detail: '' }),
    registry: new Registry(),
  });
}
const app = makeApp();
t.teardown(() => app.close());

async function post(review: unknown, on = app): Promise<AdmissionReview> {
  const res = await on.inject({ method: 'POST', url: '/mutate', payload: review as object });
  if (res.statusCode !== 200) throw new Error(`/mutate answered ${res.statusCode}: ${res.body}`);
  return res.json() as AdmissionReview;
}

/** Admit, check the envelope of the answer, then admit the patched pod again (reinvocation). */
async function admitTwice(t: Test, review: ValidReview, on = app): Promise<{ answer: AdmissionReview; pod: Pod }> {
  const answer = await post(review, on);
  t.equal(answer.apiVersion, 'admission.k8s.io/v1');
  t.equal(answer.kind, 'AdmissionReview');
  t.equal(answer.response?.uid, review.request.uid, 'uid echoed');
  t.equal(answer.response?.allowed, true, 'allowed');
  const pod = applyResponse(review.request.object, answer);
  const again = await post({ ...review, request: { ...review.request, object: pod } }, on);
  t.same(patchOps(again.response), [], 'reinvocation with the patched pod yields no patch');
  return { answer, pod };
}

// What Route "target" of fixtures/cluster.yaml gives a pod in namespace default.
const TARGET_ROUTES: Plan['routes'] = [
  { dst: '10.86.69.17/32', dev: 'eth0' },
  { dst: '10.86.205.109/32', dev: 'eth1' },
  { dst: '10.124.0.0/16', dev: 'eth1', via: '10.124.2.1' },
  { dst: '172.16.10.0/24', dev: 'eth1' },
  { dst: '192.168.2.0/24', dev: 'eth0' },
];
const planIn = (pod: Pod): string | undefined => pod.metadata?.annotations?.[PLAN_ANNOTATION];
const signedFor = (plan: Plan, namespace: string, k: PlanKey = key) => encodePlan(plan, { key: k, namespace });
const expected = signedFor({ v: 1, routes: TARGET_ROUTES }, 'default');

t.test('a pod created by a ReplicaSet (generateName, no name, no uid, no annotations) is stamped', async (t) => {
  const review = reviewWith('review-create-replicaset-pod.json', () => {});
  const { answer, pod } = await admitTwice(t, review);
  t.equal(answer.response?.patchType, 'JSONPatch');
  const ops = patchOps(answer.response);
  t.same(ops, [{ op: 'add', path: '/metadata/annotations', value: { [PLAN_ANNOTATION]: expected } }], 'one op adds the annotations map');
  const decoded = decodePlan(planIn(pod)!, { namespace: 'default', keys, requireSignature: true });
  t.ok(decoded.ok && decoded.signed, 'the plan verifies for namespace default');
  t.same(decoded.ok && decoded.plan.routes, TARGET_ROUTES, 'the plan holds the target routes');
  t.notOk(decodePlan(planIn(pod)!, { namespace: 'kube-system', keys, requireSignature: true }).ok, 'and is bound to its namespace');
  t.same(pod.metadata?.labels, review.request.object && (review.request.object as Pod).metadata?.labels, 'nothing else changed');
});

t.test('the annotation key is escaped as ~1 when the pod already has annotations', async (t) => {
  const review = reviewWith(
    'review-update-pod.json',
    () => {},
    () => {},
  );
  const { answer, pod } = await admitTwice(t, review);
  const raw = Buffer.from(answer.response!.patch!, 'base64').toString();
  t.match(raw, '"path":"/metadata/annotations/routes.k8s.ovn.org~1plan"', 'the "/" of the key is ~1 in the JSON pointer');
  t.same(patchOps(answer.response), [{ op: 'add', path: '/metadata/annotations/routes.k8s.ovn.org~1plan', value: expected }]);
  t.equal(pod.metadata?.annotations?.['example.com/owner'], 'team-web', 'other annotations kept');
});

const other = testKey();
const forgeries: [string, string, boolean][] = [
  ['an unsigned plan', JSON.stringify({ v: 1, routes: [{ dst: '0.0.0.0/0', dev: 'eth1' }] }), false],
  ['a plan signed with another key', signedFor({ v: 1, routes: [{ dst: '10.0.0.0/8', dev: 'eth1' }] }, 'default', other), false],
  ['our plan signed for another namespace', signedFor({ v: 1, routes: TARGET_ROUTES }, 'kube-system'), false],
  ['a plan with a tampered route', expected.replace('172.16.10.0/24', '172.16.11.0/24'), false],
  ['text that is no plan at all', 'route everything via eth1 please', false],
  [
    'a validly signed plan copied from another pod of the namespace',
    signedFor({ v: 1, routes: [{ dst: '10.0.0.0/8', dev: 'eth1' }] }, 'default'),
    true,
  ],
];

t.test('a forged plan never survives CREATE', async (t) => {
  for (const [what, value, signed] of forgeries) {
    const review = reviewWith('review-create-replicaset-pod.json', (p) => annotate(p, PLAN_ANNOTATION, value));
    const { answer, pod } = await admitTwice(t, review);
    t.same(
      patchOps(answer.response),
      [{ op: 'replace', path: '/metadata/annotations/routes.k8s.ovn.org~1plan', value: expected }],
      `${what}: replaced`,
    );
    t.equal(planIn(pod), expected, `${what}: the pod carries the computed plan`);
    t.equal(answer.response?.warnings?.length ?? 0, signed ? 0 : 1, `${what}: ${signed ? 'no warning' : 'the author is warned'}`);
  }
});

t.test('UPDATE: the plan annotation cannot be altered after creation', async (t) => {
  for (const [what, value] of forgeries) {
    const review = reviewWith(
      'review-update-pod.json',
      (p) => annotate(p, PLAN_ANNOTATION, value),
      (o) => annotate(o, PLAN_ANNOTATION, expected),
    );
    const { pod } = await admitTwice(t, review);
    t.equal(planIn(pod), expected, `${what} written by an update is replaced`);
  }
  const removed = reviewWith(
    'review-update-pod.json',
    () => {},
    (o) => annotate(o, PLAN_ANNOTATION, expected),
  );
  t.equal(planIn((await admitTwice(t, removed)).pod), expected, 'removing the plan by an update puts it back');

  const labelOnly = reviewWith(
    'review-update-pod.json',
    (p) => {
      annotate(p, PLAN_ANNOTATION, expected);
      p.metadata!.labels!.tier = 'front';
    },
    (o) => annotate(o, PLAN_ANNOTATION, expected),
  );
  t.same(patchOps((await post(labelOnly)).response), [], 'an unrelated update of a stamped pod gets no patch');

  const optOut = reviewWith(
    'review-update-pod.json',
    (p) => {
      annotate(p, PLAN_ANNOTATION, expected);
      p.metadata!.labels![INJECT_LABEL] = 'disabled';
    },
    (o) => annotate(o, PLAN_ANNOTATION, expected),
  );
  t.same(
    patchOps((await admitTwice(t, optOut)).answer.response),
    [{ op: 'remove', path: '/metadata/annotations/routes.k8s.ovn.org~1plan' }],
    'opting a running pod out removes its plan',
  );
});

t.test('UPDATE by the trusted controller identity', async (t) => {
  const newer = signedFor({ v: 1, routes: [{ dst: '10.86.205.109/32', dev: 'eth1' }] }, 'default');
  const asController = (value: string | undefined) =>
    reviewWith(
      'review-update-pod.json',
      (p, r) => {
        r.request.userInfo = { username: CONTROLLER };
        annotate(p, PLAN_ANNOTATION, value);
      },
      (o) => annotate(o, PLAN_ANNOTATION, expected),
    );
  t.same(patchOps((await post(asController(newer))).response), [], 'a verified plan it writes is let through as-is');
  t.same(patchOps((await post(asController(undefined))).response), [], 'and so is its removal of a plan');
  const forged = await post(asController(forgeries[0]![1]));
  t.same(
    patchOps(forged.response),
    [{ op: 'replace', path: '/metadata/annotations/routes.k8s.ovn.org~1plan', value: expected }],
    'but an unverifiable value is replaced even from that identity',
  );
  const asAlice = reviewWith(
    'review-update-pod.json',
    (p) => annotate(p, PLAN_ANNOTATION, newer),
    (o) => annotate(o, PLAN_ANNOTATION, expected),
  );
  t.same(
    patchOps((await post(asAlice)).response).map((o) => o.op),
    ['replace'],
    'the same verified value from anyone else is replaced',
  );
  const caches = clusterCaches();
  const blank = buildApp({
    admit: { caches, mode: 'default', keys, trustedUsers: [''] },
    readiness: () => ({ ready: true, detail: '' }),
    registry: new Registry(),
  });
  t.teardown(() => blank.close());
  const anonymous = reviewWith(
    'review-update-pod.json',
    (p, r) => {
      delete r.request.userInfo;
      annotate(p, PLAN_ANNOTATION, newer);
    },
    (o) => annotate(o, PLAN_ANNOTATION, expected),
  );
  t.same(
    patchOps((await post(anonymous, blank)).response).map((o) => o.op),
    ['replace'],
    'an empty trusted name never matches a request without a user',
  );
});

t.test('hostNetwork and opted-out pods get no patch, unless they carry a plan', async (t) => {
  const cases: [string, (p: Pod, r: ValidReview) => void][] = [
    [
      'hostNetwork pod',
      (p) => {
        p.spec!.hostNetwork = true;
      },
    ],
    [
      'pod labelled inject=disabled',
      (p) => {
        p.metadata!.labels![INJECT_LABEL] = 'disabled';
      },
    ],
    [
      'pod in a namespace labelled inject=disabled',
      (p, r) => {
        p.metadata!.namespace = 'legacy';
        r.request.namespace = 'legacy';
      },
    ],
  ];
  for (const [what, edit] of cases) {
    const { answer } = await admitTwice(t, reviewWith('review-create-replicaset-pod.json', edit));
    t.same(patchOps(answer.response), [], `${what}: no patch`);
    t.notOk(answer.response?.patchType, `${what}: no patchType`);
    const forged = await admitTwice(
      t,
      reviewWith('review-create-replicaset-pod.json', (p, r) => {
        edit(p, r);
        annotate(p, PLAN_ANNOTATION, expected);
      }),
    );
    t.same(
      patchOps(forged.answer.response),
      [{ op: 'remove', path: '/metadata/annotations/routes.k8s.ovn.org~1plan' }],
      `${what} with a plan: removed`,
    );
  }
});

t.test('opt-in mode stamps only pods opted in by label', async (t) => {
  const optIn = makeApp('opt-in');
  t.teardown(() => optIn.close());
  const plain = await post(
    reviewWith('review-create-replicaset-pod.json', () => {}),
    optIn,
  );
  t.same(patchOps(plain.response), [], 'a pod without the label: no patch');
  const labelled = await admitTwice(
    t,
    reviewWith('review-create-replicaset-pod.json', (p) => {
      p.metadata!.labels![INJECT_LABEL] = 'enabled';
    }),
    optIn,
  );
  t.equal(planIn(labelled.pod), expected, 'a pod labelled inject=enabled: stamped');
  const inTeam = await admitTwice(
    t,
    reviewWith('review-create-replicaset-pod.json', (p, r) => {
      p.metadata!.namespace = 'team-a';
      r.request.namespace = 'team-a';
    }),
    optIn,
  );
  t.equal(
    planIn(inTeam.pod),
    signedFor({ v: 1, routes: TARGET_ROUTES }, 'team-a'),
    'a pod in a namespace labelled inject=enabled: stamped, signed for that namespace',
  );
});

t.test('dryRun requests get exactly the same answer', async (t) => {
  for (const edit of [() => {}, (p: Pod) => annotate(p, PLAN_ANNOTATION, forgeries[0]![1])]) {
    const real = await post(reviewWith('review-create-replicaset-pod.json', edit));
    const dry = await post(
      reviewWith('review-create-replicaset-pod.json', (p, r) => {
        edit(p);
        r.request.dryRun = true;
      }),
    );
    t.same(dry, real, 'same response');
  }
});

t.test('a namespace missing from the pod object is taken from the request', async (t) => {
  const review = reviewWith('review-create-replicaset-pod.json', (p) => {
    delete p.metadata!.namespace;
  });
  const { answer, pod } = await admitTwice(t, review);
  t.equal(planIn(pod), expected, 'stamped and signed for request.namespace');
  t.notOk(
    patchOps(answer.response).some((o) => o.path.includes('namespace')),
    'the patch does not add metadata.namespace',
  );
});

t.test('a pod whose Routes depend on its final name is left to the controller', async (t) => {
  const byNameRoute: Route = {
    metadata: { name: 'by-name' },
    spec: { route: [{ dst: '172.16.10.0/24', dev: 'eth1' }], include: [{ pods: ['default/web-7d4f9-a*'] }] },
  };
  const caches = cachesFromObjects({ ...clusterObjects(), routes: [byNameRoute] });
  const byName = buildApp({
    admit: { caches, mode: 'default', keys },
    readiness: () => ({ ready: true, detail: '' }),
    registry: new Registry(),
  });
  t.teardown(() => byName.close());
  const { answer } = await admitTwice(
    t,
    reviewWith('review-create-replicaset-pod.json', () => {}),
    byName,
  );
  t.same(patchOps(answer.response), [], 'no plan while the name is unknown');
  const named = await admitTwice(
    t,
    reviewWith('review-create-replicaset-pod.json', (p) => {
      p.metadata!.name = 'web-7d4f9-abcde';
    }),
    byName,
  );
  t.equal(
    planIn(named.pod),
    signedFor({ v: 1, routes: [{ dst: '172.16.10.0/24', dev: 'eth1' }] }, 'default'),
    'stamped once the name is known',
  );
});
