// sameSyncInputs (injector/pod.ts): whether a pod update asks anything new of the agent.
// Table cases for each part of a pod, then 4000 random pairs against the definition it replaced
// (a JSON of the pod less what the agent writes and the API's bookkeeping), which it must match
// wherever key order is kept; key order alone is no change.
import t from 'tap';
import { PLAN_ANNOTATION, READY_CONDITION, STATUS_ANNOTATION, type Pod } from '../../core/types.js';
import { sameSyncInputs } from '../../injector/pod.js';
import { rng } from '../util/rng.js';

/** The definition before: one string of the pod less the agent's own writes and the API's bookkeeping. */
function jsonInputs(pod: Pod): string {
  const {
    resourceVersion: _rv,
    managedFields: _mf,
    annotations,
    ...meta
  } = (pod.metadata ?? {}) as Record<string, unknown> & { annotations?: Record<string, string> };
  const { [STATUS_ANNOTATION]: _status, ...ann } = annotations ?? {};
  const st = (pod.status ?? {}) as { conditions?: { type?: string }[] };
  const conditions = st.conditions?.filter((c) => c?.type !== READY_CONDITION);
  return JSON.stringify([meta, ann, pod.spec, { ...st, conditions }]);
}

function basePod(): Pod {
  return {
    metadata: {
      name: 'web-0',
      namespace: 'default',
      uid: 'u1',
      resourceVersion: '10',
      labels: { app: 'web' },
      annotations: { [PLAN_ANNOTATION]: '{"v":1,"routes":[]}', [STATUS_ANNOTATION]: '{"v":1}', other: 'x' },
      managedFields: [{ manager: 'kubelet' }],
    },
    spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'i', ports: [{ containerPort: 80 }] }] },
    status: {
      phase: 'Running',
      podIP: '10.0.0.5',
      podIPs: [{ ip: '10.0.0.5' }],
      conditions: [
        { type: 'Ready', status: 'True' },
        { type: READY_CONDITION, status: 'False' },
      ],
    },
  } as Pod;
}

type Edit = (p: Record<string, any>) => void;

t.test('table', async (t) => {
  const cases: { name: string; edit: Edit; same: boolean }[] = [
    { name: 'the same object', edit: () => {}, same: true },
    {
      name: 'the echo of the agent status write',
      edit: (p) => ((p.metadata.annotations[STATUS_ANNOTATION] = '{"v":2}'), (p.metadata.resourceVersion = '11')),
      same: true,
    },
    { name: 'managedFields only', edit: (p) => (p.metadata.managedFields = [{ manager: 'ovnkube-route' }]), same: true },
    { name: 'the agent ready condition only', edit: (p) => (p.status.conditions[1].status = 'True'), same: true },
    { name: 'the agent ready condition removed', edit: (p) => p.status.conditions.pop(), same: true },
    { name: 'another condition', edit: (p) => (p.status.conditions[0].status = 'False'), same: false },
    { name: 'the plan annotation', edit: (p) => (p.metadata.annotations[PLAN_ANNOTATION] = '{"v":1,"routes":[{}]}'), same: false },
    { name: 'another annotation added', edit: (p) => (p.metadata.annotations.more = 'y'), same: false },
    {
      name: 'all annotations gone but the status',
      edit: (p) => (p.metadata.annotations = { [STATUS_ANNOTATION]: '{"v":1}' }),
      same: false,
    },
    { name: 'a label', edit: (p) => (p.metadata.labels.app = 'api'), same: false },
    { name: 'the pod IPs', edit: (p) => (p.status.podIPs = [{ ip: '10.0.0.6' }]), same: false },
    { name: 'the phase', edit: (p) => (p.status.phase = 'Succeeded'), same: false },
    { name: 'a nested spec value', edit: (p) => (p.spec.containers[0].ports[0].containerPort = 81), same: false },
    { name: 'an array grown', edit: (p) => p.spec.containers.push({ name: 'd' }), same: false },
    { name: 'an object for an array', edit: (p) => (p.spec.containers = { 0: p.spec.containers[0] }), same: false },
    { name: 'null for absent', edit: (p) => (p.spec.hostNetwork = null), same: false },
    { name: 'undefined for absent (as JSON)', edit: (p) => (p.spec.hostNetwork = undefined), same: true },
    { name: 'deletionTimestamp set', edit: (p) => (p.metadata.deletionTimestamp = '2026-01-01T00:00:00Z'), same: false },
    { name: 'no status at all', edit: (p) => delete p.status, same: false },
  ];
  for (const c of cases) {
    const a = basePod();
    const b = c.name === 'the same object' ? a : basePod();
    c.edit(b as Record<string, any>);
    t.equal(sameSyncInputs(a, b), c.same, c.name);
    t.equal(sameSyncInputs(b, a), c.same, `${c.name} (other way)`);
  }
  const a = basePod();
  const b = basePod();
  b.metadata!.labels = { app: 'web' }; // a new object, equal
  const reordered = basePod();
  reordered.metadata = { ...Object.fromEntries(Object.entries(reordered.metadata!).reverse()) };
  t.ok(sameSyncInputs(a, reordered), 'metadata keys in another order: no change');
  t.not(jsonInputs(a), jsonInputs(reordered), '(the JSON saw one)');
  t.ok(sameSyncInputs(a, b));
});

t.test('random pairs agree with the JSON definition', async (t) => {
  const r = rng(12);
  const pick = <T>(xs: readonly T[]): T => xs[r(xs.length)]!;
  const values = ['a', 'b', '', '0', 'True', 'False', 1, 0, true, false, null] as const;
  // A pod, then a copy with 0-3 edits at random paths (existing keys changed in place, so key
  // order is kept; new keys are added at the end of both sides' order).
  let differences = 0;
  let sameCount = 0;
  for (let i = 0; i < 4000; i++) {
    const a = basePod() as Record<string, any>;
    if (r(2)) a.metadata.labels[`l${r(3)}`] = pick(values);
    if (r(2)) a.status.conditions.push({ type: pick(['PodScheduled', READY_CONDITION, 'Ready']), status: pick(['True', 'False']) });
    const b = structuredClone(a);
    const edits = r(4);
    for (let e = 0; e < edits; e++) {
      switch (r(9)) {
        case 0:
          b.metadata.annotations[STATUS_ANNOTATION] = `{"v":${r(3)}}`;
          break;
        case 1:
          b.metadata.resourceVersion = String(r(100));
          break;
        case 2:
          b.metadata.labels[`l${r(3)}`] = pick(values);
          break;
        case 3:
          b.metadata.annotations[pick([PLAN_ANNOTATION, 'other', 'more'])] = pick(['x', 'y', '{"v":1,"routes":[]}']);
          break;
        case 4: {
          const c = b.status.conditions[r(b.status.conditions.length)];
          c.status = pick(['True', 'False']);
          break;
        }
        case 5:
          b.status.podIPs[0].ip = pick(['10.0.0.5', '10.0.0.6']);
          break;
        case 6:
          b.spec.containers[0].ports[0].containerPort = pick([80, 81]);
          break;
        case 7:
          b.metadata.managedFields = [{ manager: pick(['kubelet', 'agent']) }];
          break;
        default:
          b.status.phase = pick(['Running', 'Pending']);
      }
    }
    const want = jsonInputs(a as Pod) === jsonInputs(b as Pod);
    if (want) sameCount++;
    if (sameSyncInputs(a as Pod, b as Pod) !== want || sameSyncInputs(b as Pod, a as Pod) !== want) differences++;
  }
  t.equal(differences, 0, 'no difference over 4000 pairs');
  t.ok(sameCount > 400 && sameCount < 3600, `both answers are exercised (${sameCount} of 4000 the same)`);
});
