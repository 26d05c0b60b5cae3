// Reporting: the status annotation and the ready condition are written only when they
// change, failures are retried, a pod that is gone is dropped, Events are deduplicated;
// and the pure status/condition computation for each outcome.
import { Registry } from 'prom-client';
import t from 'tap';
import { decodeInjectorStatus } from '../../core/injector-status.js';
import { planHash } from '../../core/plan-codec.js';
import { READY_CONDITION, STATUS_ANNOTATION, type Plan, type Pod } from '../../core/types.js';
import { silentLogger } from '../../platform/log.js';
import { createAgentMetrics } from '../../injector/metrics.js';
import { Reporter } from '../../injector/report/report.js';
import { readyCondition, statusBody, type PodOutcome } from '../../injector/report/status.js';
import type { ApplyResult } from '../../injector/routes/engine.js';
import { makePodObject, MemoryApi, MISSION_PLAN, testKey, until } from './rig.js';

function result(o: Partial<ApplyResult> = {}): ApplyResult {
  return {
    netns: '/var/run/netns/x',
    added: [],
    removed: [],
    replaced: [],
    restored: [],
    unchanged: [],
    skipped: [],
    owned: [],
    changed: false,
    ...o,
  };
}
const inPlace = (plan: Plan, r = result()): PodOutcome => ({ kind: 'applied', inForce: { plan, hash: planHash(plan), result: r } });

function setup() {
  const api = new MemoryApi();
  const registry = new Registry();
  const metrics = createAgentMetrics(registry);
  const reporter = new Reporter(api, 'node-1', metrics, silentLogger);
  api.onUpdate = (p) => reporter.observe(p);
  const failures = async (): Promise<number> =>
    (await registry.getSingleMetric('ovnkube_route_injector_failures_total')!.get()).values
      .filter((v) => v.labels.reason === 'report-error')
      .reduce((s, v) => s + v.value, 0);
  return { api, reporter, failures };
}

t.test('status and condition per outcome', async (t) => {
  const skipped = [
    { family: 4 as const, dst: '172.16.10.0/24', dev: 'eth1', reason: 'dev-missing' as const, detail: 'device eth1 is not in the netns' },
  ];
  t.same(statusBody(inPlace(MISSION_PLAN)), { plan: planHash(MISSION_PLAN), applied: 5, skipped: [] });
  t.match(statusBody(inPlace(MISSION_PLAN, result({ skipped }))), {
    applied: 4,
    skipped: [{ dst: '172.16.10.0/24', reason: 'dev-missing' }],
  });
  t.same(statusBody(inPlace({ v: 1, routes: [] })), { plan: '', applied: 0, skipped: [] }, 'the empty plan reports plan ""');
  const withDefault: Plan = { ...MISSION_PLAN, default: { dev: 'eth1', via: '10.124.2.1' } };
  t.equal(statusBody(inPlace(withDefault)).applied, 6, 'the default route counts as a route of the plan');
  t.match(statusBody({ kind: 'rejected', code: 'bad-signature', error: 'x' }), {
    plan: '',
    applied: 0,
    skipped: [{ dst: '*', reason: 'plan-rejected', detail: 'bad-signature: x' }],
  });
  const inForce = { plan: MISSION_PLAN, hash: planHash(MISSION_PLAN), result: result() };
  t.match(
    statusBody({ kind: 'rejected', code: 'unsigned', error: 'x', inForce }),
    { plan: planHash(MISSION_PLAN), applied: 5, skipped: [{ reason: 'plan-rejected' }] },
    'a refusal with a plan still in force reports that plan',
  );
  t.match(statusBody({ kind: 'refused', message: 'm' }), { skipped: [{ reason: 'netns-refused', detail: 'm' }] });
  t.match(statusBody({ kind: 'failed', message: 'm' }), { skipped: [{ reason: 'apply-error', detail: 'm' }] });
  t.match(readyCondition(inPlace(MISSION_PLAN)), { status: 'True', reason: 'RoutesInPlace' });
  t.match(readyCondition(inPlace({ v: 1, routes: [] })), { status: 'True', reason: 'NoRoutes' });
  t.match(readyCondition(inPlace(MISSION_PLAN, result({ skipped }))), {
    status: 'False',
    reason: 'RoutesSkipped',
    message: /172\.16\.10\.0\/24 dev eth1: dev-missing/,
  });
  t.match(readyCondition({ kind: 'rejected', code: 'unknown-key', error: 'e' }), { status: 'False', reason: 'PlanRejected' });
  t.match(readyCondition({ kind: 'refused', message: 'm' }), { status: 'False', reason: 'NetnsRefused' });
  t.match(readyCondition({ kind: 'failed', message: 'm' }), { status: 'False', reason: 'ApplyFailed' });
});

t.test('written only when the body changes; never for pods that use nothing of ours', async (t) => {
  const { api, reporter } = setup();
  const key = testKey();
  const pod = api.put(makePodObject({ name: 'a', plan: MISSION_PLAN, key, readinessGate: true }));
  reporter.report(pod, inPlace(MISSION_PLAN));
  await reporter.idle();
  t.equal(api.writes.length, 2, 'status annotation and condition written');
  const st = decodeInjectorStatus(api.pods.get(pod.metadata!.uid!)!.metadata!.annotations![STATUS_ANNOTATION]);
  t.match(st, { plan: planHash(MISSION_PLAN), applied: 5, node: 'node-1' });
  t.ok(st!.time, 'with a time');
  reporter.report(api.pods.get(pod.metadata!.uid!)!, inPlace(MISSION_PLAN, result({ changed: true })));
  await reporter.idle();
  t.equal(api.writes.length, 2, 'the same body again: no write');
  const firstTransition = (api.writes[1]!.body as { lastTransitionTime: string }).lastTransitionTime;
  reporter.report(
    api.pods.get(pod.metadata!.uid!)!,
    inPlace(MISSION_PLAN, result({ skipped: [{ family: 4, dst: '10.86.69.17/32', dev: 'eth0', reason: 'collision', detail: 'd' }] })),
  );
  await reporter.idle();
  t.equal(api.writes.length, 4, 'a changed body: both rewritten');
  t.match(api.writes[3]!.body, { type: READY_CONDITION, status: 'False', reason: 'RoutesSkipped' });
  t.not((api.writes[3]!.body as { lastTransitionTime: string }).lastTransitionTime, undefined);
  t.ok(firstTransition, 'transition times are set');

  const plain = api.put(makePodObject({ name: 'b' }));
  reporter.report(plain, inPlace({ v: 1, routes: [] }));
  await reporter.idle();
  t.equal(api.writes.filter((w) => w.pod.uid === plain.metadata!.uid).length, 0, 'no plan, no report, no gate: nothing written');
});

t.test('someone else overwriting the report gets it corrected at the next report', async (t) => {
  const { api, reporter } = setup();
  const pod = api.put(makePodObject({ name: 'a', plan: MISSION_PLAN, key: testKey() }));
  reporter.report(pod, inPlace(MISSION_PLAN));
  await reporter.idle();
  const tampered = structuredClone(api.pods.get(pod.metadata!.uid!)!);
  tampered.metadata!.annotations![STATUS_ANNOTATION] = '{"v":1,"plan":"ffff","applied":99,"skipped":[],"node":"x","time":""}';
  reporter.observe(api.put(tampered));
  reporter.report(api.pods.get(pod.metadata!.uid!)!, inPlace(MISSION_PLAN));
  await reporter.idle();
  t.match(decodeInjectorStatus(api.pods.get(pod.metadata!.uid!)!.metadata!.annotations![STATUS_ANNOTATION]), {
    plan: planHash(MISSION_PLAN),
    applied: 5,
  });
});

t.test('failures are retried; a pod that is gone is dropped', async (t) => {
  const { api, reporter, failures } = setup();
  const pod = api.put(makePodObject({ name: 'a', plan: MISSION_PLAN, key: testKey() }));
  api.failWrites = 1;
  reporter.report(pod, inPlace(MISSION_PLAN));
  await until('written after a retry', () => api.writes.length === 1, 10_000);
  t.equal(await failures(), 1, 'the failed write is counted');
  const gone: Pod = makePodObject({ name: 'gone', plan: MISSION_PLAN, key: testKey() });
  reporter.report(gone, inPlace(MISSION_PLAN));
  await reporter.idle();
  t.equal(await failures(), 1, 'a 404 is not a failure to retry');
});

t.test('events are deduplicated per pod, reason and message', async (t) => {
  const { api, reporter } = setup();
  const pod = api.put(makePodObject({ name: 'a' }));
  reporter.warn(pod, 'PlanRejected', 'one');
  reporter.warn(pod, 'PlanRejected', 'one');
  reporter.warn(pod, 'PlanRejected', 'two');
  reporter.warn(pod, 'NetnsRefused', 'one');
  await new Promise((r) => setImmediate(r));
  t.same(
    api.events.map((e) => `${e.reason}:${e.message}`),
    ['PlanRejected:one', 'PlanRejected:two', 'NetnsRefused:one'],
  );
  t.match(api.events[0], { type: 'Warning', pod: { name: 'a', namespace: 'default', uid: pod.metadata!.uid } });
});
