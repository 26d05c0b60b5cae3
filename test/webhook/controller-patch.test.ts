// The controller's pod patch (webhook/controller/patch.ts) and pod slimming (webhook/caches/pods.ts):
// every patch is applied with fast-json-patch (RFC 6902, validated) to a FULL pod, as the
// API server would, so we see that other annotations survive and that the `test` guards
// refuse a pod that changed meanwhile. API error classification is a table.
import t from 'tap';
import fjp from 'fast-json-patch';
import { PLAN_ANNOTATION, STATUS_ANNOTATION, type Pod } from '../../core/types.js';
import { planPatch } from '../../webhook/controller/patch.js';
import { classifyApiError } from '../../platform/api-errors.js';
import { podIsDone, slimPod, splitPodKey, podKey } from '../../webhook/caches/pods.js';

const fullPod = (annotations?: Record<string, string>): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name: 'web-1',
    namespace: 'default',
    uid: 'u-1',
    resourceVersion: '41',
    labels: { app: 'web' },
    ...(annotations ? { annotations } : {}),
    ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d4f9', uid: 'rs-1', controller: true }],
    managedFields: [{ manager: 'kubectl' }],
  } as Pod['metadata'],
  spec: { nodeName: 'node-1', containers: [{ name: 'c', image: 'x' }] },
  status: { phase: 'Running', podIP: '10.0.0.5' },
});

const apply = (doc: Pod, ops: fjp.Operation[]): Pod => fjp.applyPatch(structuredClone(doc), ops, true, false).newDocument;
const testFails = (doc: Pod, ops: fjp.Operation[]): string => {
  try {
    apply(doc, ops);
    return 'applied';
  } catch (e) {
    return (e as { name?: string }).name ?? String(e);
  }
};

t.test('slimPod keeps what the controller reads, and says whether the pod has annotations', async (t) => {
  const full = fullPod({
    'kubectl.kubernetes.io/last-applied-configuration': 'x'.repeat(5000),
    [PLAN_ANNOTATION]: 'p',
    [STATUS_ANNOTATION]: 's',
  });
  (full.metadata as Record<string, unknown>).deletionTimestamp = new Date('2026-01-01T00:00:00Z');
  const s = slimPod(full);
  t.same(s, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'web-1',
      namespace: 'default',
      uid: 'u-1',
      resourceVersion: '41',
      labels: { app: 'web' },
      annotations: { [PLAN_ANNOTATION]: 'p', [STATUS_ANNOTATION]: 's' },
      ownerReferences: [{ kind: 'ReplicaSet', name: 'web-7d4f9', controller: true }],
      deletionTimestamp: '2026-01-01T00:00:00.000Z',
    },
    spec: { nodeName: 'node-1' },
    status: { phase: 'Running' },
  });
  t.ok(podIsDone(s), 'being deleted');
  t.same(slimPod(fullPod({ other: 'x' })).metadata.annotations, {}, 'only foreign annotations: an empty map, not none');
  t.notOk('annotations' in slimPod(fullPod()).metadata, 'no annotations at all');
  t.same(slimPod({ metadata: { name: 'h', namespace: 'n' }, spec: { hostNetwork: true } }).spec, { hostNetwork: true });
  t.notOk(podIsDone(slimPod(fullPod())));
  t.ok(podIsDone(slimPod({ ...fullPod(), status: { phase: 'Succeeded' } })));
  t.equal(podKey(s), 'default/web-1');
  t.same(splitPodKey('default/web-1'), { namespace: 'default', name: 'web-1' });
});

t.test('set a plan on a pod with other annotations: added by key, guarded by resourceVersion', async (t) => {
  const full = fullPod({ 'example.com/keep': 'me' });
  const ops = planPatch(slimPod(full), 'PLAN');
  t.same(
    ops,
    [
      { op: 'test', path: '/metadata/uid', value: 'u-1' },
      { op: 'test', path: '/metadata/resourceVersion', value: '41' },
      { op: 'add', path: '/metadata/annotations/routes.k8s.ovn.org~1plan', value: 'PLAN' },
    ],
    '`/` escaped as ~1',
  );
  const out = apply(full, ops!);
  t.same(out.metadata?.annotations, { 'example.com/keep': 'me', [PLAN_ANNOTATION]: 'PLAN' }, 'the other annotation survives');
  t.equal(
    testFails({ ...full, metadata: { ...full.metadata, resourceVersion: '42' } }, ops!),
    'TEST_OPERATION_FAILED',
    'refused once the pod changed',
  );
});

t.test('set a plan on a pod without annotations: the map is added, on that version only', async (t) => {
  const full = fullPod();
  const ops = planPatch(slimPod(full), 'PLAN')!;
  t.same(ops.slice(2), [{ op: 'add', path: '/metadata/annotations', value: { [PLAN_ANNOTATION]: 'PLAN' } }]);
  t.same(apply(full, ops).metadata?.annotations, { [PLAN_ANNOTATION]: 'PLAN' });
  // Someone annotated the pod meanwhile: replacing the map would drop theirs, so the guard refuses.
  const later = {
    ...fullPod({ 'example.com/new': 'x' }),
    metadata: { ...fullPod({ 'example.com/new': 'x' }).metadata, resourceVersion: '42' },
  };
  t.equal(testFails(later, ops), 'TEST_OPERATION_FAILED');
});

t.test('replace or remove a plan: guarded by its current value, other changes allowed', async (t) => {
  const full = fullPod({ [PLAN_ANNOTATION]: 'OLD', 'example.com/keep': 'me' });
  const replace = planPatch(slimPod(full), 'NEW')!;
  t.same(replace, [
    { op: 'test', path: '/metadata/uid', value: 'u-1' },
    { op: 'test', path: '/metadata/annotations/routes.k8s.ovn.org~1plan', value: 'OLD' },
    { op: 'replace', path: '/metadata/annotations/routes.k8s.ovn.org~1plan', value: 'NEW' },
  ]);
  const movedOn = { ...full, metadata: { ...full.metadata, resourceVersion: '99', labels: { app: 'other' } } };
  t.equal(apply(movedOn, replace).metadata?.annotations?.[PLAN_ANNOTATION], 'NEW', 'a newer resourceVersion does not matter');
  const raced = fullPod({ [PLAN_ANNOTATION]: 'SOMEONE-ELSE', 'example.com/keep': 'me' });
  t.equal(testFails(raced, replace), 'TEST_OPERATION_FAILED', 'a concurrent plan change is never clobbered');

  const remove = planPatch(slimPod(full), undefined)!;
  t.same(remove.at(-1), { op: 'remove', path: '/metadata/annotations/routes.k8s.ovn.org~1plan' });
  t.same(apply(full, remove).metadata?.annotations, { 'example.com/keep': 'me' });
  t.equal(planPatch(slimPod(full), 'OLD'), null, 'already right: no patch');
  t.equal(planPatch(slimPod(fullPod()), undefined), null, 'no plan wanted, none there: no patch');
});

t.test('a pod re-created under the same name is never patched', async (t) => {
  const ops = planPatch(slimPod(fullPod({ [PLAN_ANNOTATION]: 'OLD' })), 'NEW')!;
  const recreated = fullPod({ [PLAN_ANNOTATION]: 'OLD' });
  recreated.metadata!.uid = 'u-2';
  t.equal(testFails(recreated, ops), 'TEST_OPERATION_FAILED');
});

t.test('classifyApiError', async (t) => {
  const api = (code: number, message: string) => ({ code, body: JSON.stringify({ kind: 'Status', message }) });
  const cases: [unknown, string, string][] = [
    [api(404, 'pods "x" not found'), 'gone', 'not-found'],
    [api(409, 'the object has been modified'), 'retry', 'conflict'],
    // What kube-apiserver answers when a `test` fails (or a path is gone): a bare 422.
    [
      {
        code: 422,
        body: JSON.stringify({
          kind: 'Status',
          status: 'Failure',
          message: 'the server rejected our request due to an error in our request',
          reason: 'Invalid',
          details: {},
          code: 422,
        }),
      },
      'retry',
      'conflict',
    ],
    [api(422, 'metadata.annotations: Too long: must have at most 262144 bytes'), 'retry', 'invalid'],
    [api(429, 'too many requests'), 'retry', 'throttled'],
    [api(403, 'forbidden'), 'retry', 'forbidden'],
    [api(500, 'etcdserver: request timed out'), 'retry', 'server'],
    [new Error('connect ECONNREFUSED 127.0.0.1:6443'), 'retry', 'network'],
    [{ code: 404, body: { message: 'object body' } }, 'gone', 'not-found'],
  ];
  for (const [err, action, reason] of cases) {
    const f = classifyApiError(err);
    t.match(f, { action, reason }, `${f.status} ${f.message}`);
  }
  t.equal(
    classifyApiError(api(409, 'the object has been modified')).message,
    'the object has been modified',
    'message from the Status body',
  );
});
