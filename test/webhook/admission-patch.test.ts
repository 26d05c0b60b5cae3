// planPatch (webhook/admission/admission.ts) writes the JSON Patch of admission directly; it
// must give exactly what fast-json-patch's compare() gives for the pod and the pod as decided
// (the plan annotation set, replaced or removed; the readiness gate added), in the same order,
// for every shape of metadata, annotations, spec and readinessGates, and key order.
import t from 'tap';
import fjp from 'fast-json-patch';
import { PLAN_ANNOTATION, READY_CONDITION, type Pod } from '../../core/types.js';
import { planPatch } from '../../webhook/admission/admission.js';

/** The pod as admission decides it, built the way it was before planPatch (shallow copies). */
function decided(pod: Pod, value: string | undefined, gate: boolean): Pod {
  let out: Pod = pod;
  const annotations = pod.metadata?.annotations;
  if (!(value === undefined && annotations?.[PLAN_ANNOTATION] === undefined)) {
    const next = { ...annotations };
    if (value === undefined) delete next[PLAN_ANNOTATION];
    else next[PLAN_ANNOTATION] = value;
    out = { ...pod, metadata: { ...pod.metadata, annotations: next } };
  }
  if (gate) {
    const gates = Array.isArray(out.spec?.readinessGates) ? (out.spec.readinessGates as unknown[]) : [];
    out = { ...out, spec: { ...(out.spec as object), readinessGates: [...gates, { conditionType: READY_CONDITION }] } };
  }
  return out;
}

const metadatas: (Record<string, unknown> | undefined)[] = [
  undefined,
  { namespace: 'default' },
  { generateName: 'web-', annotations: {} },
  { annotations: { other: 'x' } },
  { annotations: { [PLAN_ANNOTATION]: 'old' } },
  { annotations: { [PLAN_ANNOTATION]: 'new', other: 'x' } },
  { labels: { a: 'b' }, annotations: { z: '1', [PLAN_ANNOTATION]: 'old', a: '2' } },
];
const specs: unknown[] = [
  undefined,
  {},
  { containers: [{ name: 'c' }] },
  { readinessGates: [] },
  { readinessGates: [{ conditionType: 'other' }] },
  { readinessGates: [{ conditionType: 'a' }, { conditionType: 'b' }], containers: [] },
  { readinessGates: 'not a list' },
  { readinessGates: null },
  { readinessGates: { conditionType: 'x' } },
  'not an object',
  null,
  [1, 2],
];
// Where metadata and spec sit among the pod's keys (compare() orders its operations by them).
const orders = [
  ['apiVersion', 'kind', 'metadata', 'spec', 'status'],
  ['spec', 'metadata'],
  ['kind', 'spec', 'status', 'metadata'],
];

function pod(order: string[], metadata: unknown, spec: unknown): Pod {
  const p: Record<string, unknown> = {};
  for (const k of order) {
    if (k === 'metadata') {
      if (metadata !== undefined) p.metadata = structuredClone(metadata);
    } else if (k === 'spec') {
      if (spec !== undefined) p.spec = structuredClone(spec);
    } else p[k] = k === 'status' ? {} : 'v1';
  }
  return p as Pod;
}

t.test('planPatch gives compare() operations for every shape', async (t) => {
  let cases = 0;
  let two = 0;
  const shapes = orders.flatMap((order) =>
    metadatas.flatMap((metadata) =>
      specs.flatMap((spec) =>
        [undefined, 'new', '{"v":1}'].flatMap((value) => [false, true].map((gate) => ({ order, metadata, spec, value, gate }))),
      ),
    ),
  );
  for (const { order, metadata, spec, value, gate } of shapes) {
    const p = pod(order, metadata, spec);
    const before = JSON.stringify(p);
    const want = fjp.compare(p, decided(p, value, gate));
    const got = planPatch(p, value, gate);
    const what = `keys ${order.join(',')}, metadata ${JSON.stringify(metadata)}, spec ${JSON.stringify(spec)}, value ${String(value)}, gate ${gate}`;
    if (JSON.stringify(got) !== JSON.stringify(want)) t.same(got, want, what);
    if (JSON.stringify(p) !== before) t.fail(`${what}: the pod was changed`);
    cases++;
    if (want.length === 2) two++;
  }
  t.equal(cases, 3 * metadatas.length * specs.length * 3 * 2);
  t.ok(two > 50, `the order of two operations is checked (${two} cases)`);
});

t.test('the operations apply to the pod and give the pod as decided', async (t) => {
  const p = pod(orders[0]!, metadatas[3], specs[4]);
  const ops = planPatch(p, 'signed', true);
  t.same(fjp.applyPatch(structuredClone(p), ops, true, false).newDocument, decided(p, 'signed', true));
  t.same(ops, [
    { op: 'add', path: '/spec/readinessGates/1', value: { conditionType: READY_CONDITION } },
    { op: 'add', path: '/metadata/annotations/routes.k8s.ovn.org~1plan', value: 'signed' },
  ]);
  t.same(planPatch(pod(orders[0]!, metadatas[5], undefined), 'new', false), [], 'the same value: no operation');
});
