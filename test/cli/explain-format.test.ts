// The text forms of explain and of plan --all (pure formatting, from core's real trace).
import t from 'tap';
import { formatExplanation, type Explanation } from '../../bin/commands/explain.js';
import { formatTable, tableRows } from '../../bin/commands/plan.js';
import { encodeInjectorStatus } from '../../core/injector-status.js';
import { encodePlan, planHash, planKeyFromSecret } from '../../core/plan-codec.js';
import { resolvePlan } from '../../core/resolve.js';
import { tracePlan } from '../../core/trace.js';
import { PLAN_ANNOTATION, STATUS_ANNOTATION, type Plan, type Pod, type Route } from '../../core/types.js';

const routes: Route[] = [
  {
    metadata: { name: 'a' },
    spec: {
      route: [{ dst: '172.16.10.0/24', dev: 'eth1' }],
      defaultRoute: { dev: 'eth1', via: '10.124.2.1' },
      include: [{ namespaces: ['shop'] }],
    },
  },
  { metadata: { name: 'b' }, spec: { route: [{ dst: '172.16.10.0/24', dev: 'eth0' }] } },
];
const ctx = { routes, namespace: { metadata: { name: 'shop' } }, service: () => undefined, owners: [], mode: 'default' as const };
const pod: Pod = { metadata: { namespace: 'shop', name: 'web' }, spec: { nodeName: 'n1' } };
const key = planKeyFromSecret(Buffer.alloc(32, 7));

function explanation(over: Partial<Explanation> = {}): Explanation {
  const trace = tracePlan(pod, ctx);
  const plan = trace.resolution.kind === 'plan' ? trace.resolution.plan : undefined;
  return {
    pod: 'shop/web',
    node: 'n1',
    context: 'c',
    server: 'https://k',
    mode: { mode: 'default', from: '--mode' },
    trace,
    ...(plan ? { plan, planHash: planHash(plan) } : {}),
    annotation: { present: true, equalsResolved: true, planHash: plan ? planHash(plan) : '', plan, signature: 'ok', keyId: key.id },
    keys: { from: 'Secret x/y (plan.key)', ids: [key.id] },
    events: [],
    warnings: [],
    ...over,
  };
}

t.test('explain: sections in decision order, plan lines with their origin', async (t) => {
  const out = formatExplanation(explanation());
  t.equal(out.split('\n').slice(0, 2).join('\n'), 'Pod shop/web on node n1   (context c, https://k)\nMode: default (--mode)');
  const order = [
    'Gates:',
    'Routes (2):',
    'Conflicts (resolved):',
    'Plan (resolved now',
    'Annotation routes.k8s.ovn.org/plan:',
    'Agent report',
    'Events (ovnkube-route):',
  ];
  const at = order.map((h) => out.indexOf(h));
  t.ok(
    at.every((x, i) => x >= 0 && (i === 0 || x > at[i - 1]!)),
    'every section, in order',
  );
  t.match(
    out,
    /  172\.16\.10\.0\/24 dev eth1 +from Route a spec\.route\[0\]\n  default dev eth1 via 10\.124\.2\.1 +from Route a spec\.defaultRoute\n/,
  );
  t.match(
    out,
    /destination 172\.16\.10\.0\/24: Route b \(spec\.route\[0\], priority 0\) wants eth0, Route a \(spec\.route\[0\], priority 0\) wins with eth1/,
  );
  t.match(out, /  none \(is the agent running on node n1\? pods without a plan get no report\)/);
});

t.test('explain: a differing annotation lists the lines, a refused signature says why', async (t) => {
  const old: Plan = { v: 1, routes: [{ dst: '172.16.10.0/24', dev: 'eth0' }] };
  const out = formatExplanation(
    explanation({
      annotation: {
        present: true,
        equalsResolved: false,
        planHash: planHash(old),
        plan: old,
        signature: 'no',
        error: 'unknown-key: plan is signed with key abc',
      },
    }),
  );
  t.match(
    out,
    /DIFFERS from the plan resolved now \(annotation hash [0-9a-f]{16}\)\n    - 172\.16\.10\.0\/24 dev eth0 +\(in the annotation, not resolved now\)\n    \+ 172\.16\.10\.0\/24 dev eth1 +\(resolved now, not in the annotation\)\n    \+ default dev eth1 via 10\.124\.2\.1/,
  );
  t.match(out, /signature: REFUSED: unknown-key: plan is signed with key abc/);
  const unchecked = formatExplanation(
    explanation({ annotation: { present: true, equalsResolved: true, signature: 'unchecked', error: 'plan key not readable: forbidden' } }),
  );
  t.match(unchecked, /signature: NOT CHECKED \(plan key not readable: forbidden\)/);
});

t.test('plan --all table: plan, annotation, signing key, agent', async (t) => {
  const res = resolvePlan(pod, ctx);
  if (res.kind !== 'plan') throw new Error('expected a plan');
  const stamped: Pod = {
    ...pod,
    metadata: {
      ...pod.metadata,
      annotations: {
        [PLAN_ANNOTATION]: encodePlan(res.plan, { key, namespace: 'shop' }),
        [STATUS_ANNOTATION]: encodeInjectorStatus({ plan: planHash(res.plan), applied: 2, skipped: [], node: 'n1', time: 't' }),
      },
    },
  };
  const bare: Pod = { metadata: { namespace: 'shop', name: 'new' }, spec: { nodeName: 'n1' } };
  const host: Pod = { metadata: { namespace: 'shop', name: 'h' }, spec: { hostNetwork: true } };
  const text = formatTable(
    tableRows(
      [stamped, bare, host],
      new Map([
        [stamped, res],
        [bare, resolvePlan(bare, ctx)],
        [host, resolvePlan(host, ctx)],
      ]),
    ),
  );
  const h = planHash(res.plan);
  t.equal(
    text,
    [
      'POD       NODE  PLAN                   ROUTES  ANNOTATION  SIGNED BY     AGENT',
      `shop/web  n1    ${h}       2       =           ${key.id}  annotation's plan: 2 applied, 0 skipped`,
      `shop/new  n1    ${h}       2       absent      -             -`,
      'shop/h          skipped: host-network  0       -           -             -',
    ].join('\n') + '\n',
  );
});
