// What the agent writes for a pod's plan on the real kernel: forged plans refused (and the
// netns left as it was), plan changes applied as a diff, opted-out and hostNetwork pods,
// drift repaired, the readiness condition, and cleanup when the pod is deleted.
import t from 'tap';
import { decodeInjectorStatus } from '../../core/injector-status.js';
import { encodePlan, planHash } from '../../core/plan-codec.js';
import { INJECT_LABEL, PLAN_ANNOTATION, READY_CONDITION, STATUS_ANNOTATION, type Plan, type Pod } from '../../core/types.js';
import { addEth1, routeLines } from '../util/netns.js';
import { rootUnavailable, tierGate } from '../util/tier.js';
import { MISSION_PLAN, ownedLines, startRig, stateFiles, testKey, until, type Rig } from './rig.js';

const statusOf = (rig: Rig, pod: Pod) =>
  decodeInjectorStatus(rig.api.pods.get(pod.metadata!.uid!)?.metadata?.annotations?.[STATUS_ANNOTATION]);
const conditionOf = (rig: Rig, pod: Pod) =>
  (
    (rig.api.pods.get(pod.metadata!.uid!)?.status as { conditions?: { type: string; status: string; reason: string }[] })?.conditions ?? []
  ).find((c) => c.type === READY_CONDITION);
const withPlan = (pod: Pod, value: string | undefined): Pod => {
  const p = structuredClone(pod);
  if (value === undefined) delete p.metadata!.annotations![PLAN_ANNOTATION];
  else p.metadata!.annotations![PLAN_ANNOTATION] = value;
  return p;
};

t.test('plans', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;

  t.test('forged plans are refused: Event, metric, status; no routes', async (t) => {
    const rig = await startRig(t);
    const other = testKey();
    const cases: [string, (ns: string) => string, string][] = [
      ['unsigned', (ns) => encodePlan(MISSION_PLAN, { namespace: ns }), 'unsigned'],
      ['signed with a key we do not hold', (ns) => encodePlan(MISSION_PLAN, { namespace: ns, key: other }), 'unknown-key'],
      ['signed for another namespace', () => encodePlan(MISSION_PLAN, { namespace: 'kube-system', key: rig.key }), 'bad-signature'],
      [
        'a routes list edited after signing',
        (ns) => encodePlan(MISSION_PLAN, { namespace: ns, key: rig.key }).replace('172.16.10.0/24', '172.16.99.0/24'),
        'bad-signature',
      ],
      ['not JSON', () => '{"v":1,', 'malformed-json'],
    ];
    for (const [what, value, code] of cases) {
      const { ns, pod } = rig.sandbox({ name: `forged-${code}`, planValue: value('default') });
      await until(`${what}: PlanRejected event`, () => rig.api.eventsOf(pod.metadata!.uid!, 'PlanRejected').length === 1);
      t.match(rig.api.eventsOf(pod.metadata!.uid!, 'PlanRejected')[0]!.message, code, `${what}: the event names the reason`);
      t.match(statusOf(rig, pod), { plan: '', applied: 0, skipped: [{ dst: '*', reason: 'plan-rejected' }] }, `${what}: reported`);
      await rig.agent.settled();
      t.same(ownedLines(routeLines(ns)), [], `${what}: no routes written`);
      t.equal(
        await rig.metric('ovnkube_route_injector_plans_rejected_total', { code }),
        code === 'bad-signature' && what.startsWith('a routes') ? 2 : 1,
        `${what}: counted`,
      );
    }
  });

  t.test('a forged update leaves the routes of the last verified plan in place (and kept)', async (t) => {
    const rig = await startRig(t);
    const { ns, pod } = rig.sandbox({ name: 'freeze', plan: MISSION_PLAN });
    await until('plan in place', () => ownedLines(routeLines(ns)).length === 5);
    const forged: Plan = { v: 1, routes: [{ dst: '10.0.0.0/8', dev: 'eth1' }] };
    rig.apply(withPlan(rig.api.pods.get(pod.metadata!.uid!)!, encodePlan(forged, { namespace: 'default', key: testKey() })));
    await until('refused', () => rig.api.eventsOf(pod.metadata!.uid!, 'PlanRejected').length === 1);
    await rig.agent.settled();
    t.equal(ownedLines(routeLines(ns)).length, 5, 'the routes of the verified plan stay');
    t.notOk(
      routeLines(ns).some((l) => l.startsWith('10.0.0.0/8')),
      'nothing of the forged plan',
    );
    t.match(
      statusOf(rig, pod),
      { plan: planHash(MISSION_PLAN), skipped: [{ reason: 'plan-rejected' }] },
      'status: old plan in force, refusal listed',
    );
    ns.ip('route', 'del', '172.16.10.0/24');
    await until('drift repaired under the last verified plan', () => routeLines(ns).includes('172.16.10.0/24 dev eth1 proto 111'));
    t.pass('the keeper still keeps the verified plan');
  });

  t.test('plan changes: exact diff, no restart', async (t) => {
    const rig = await startRig(t);
    const { ns, pod } = rig.sandbox({ name: 'change', plan: MISSION_PLAN });
    ns.ip('route', 'add', '198.51.100.0/24', 'dev', 'eth0'); // a foreign route, never touched
    await until('plan in place', () => ownedLines(routeLines(ns)).length === 5);
    const next: Plan = {
      v: 1,
      routes: [
        { dst: '10.86.69.17/32', dev: 'eth1' }, // moved to the other NIC
        { dst: '172.16.10.0/24', dev: 'eth1' }, // unchanged
        { dst: '172.16.20.0/24', dev: 'eth1', via: '10.124.2.1' }, // new
      ],
    };
    rig.apply(withPlan(rig.api.pods.get(pod.metadata!.uid!)!, encodePlan(next, { namespace: 'default', key: rig.key })));
    const want = [
      '10.86.69.17 dev eth1 proto 111',
      '172.16.10.0/24 dev eth1 proto 111',
      '172.16.20.0/24 via 10.124.2.1 dev eth1 proto 111',
    ];
    await until('new plan in place', () => JSON.stringify(ownedLines(routeLines(ns))) === JSON.stringify(want));
    t.ok(
      routeLines(ns).includes('198.51.100.0/24 dev eth0 proto kernel') ||
        routeLines(ns).some((l) => l.startsWith('198.51.100.0/24 dev eth0')),
      'the foreign route is still there',
    );
    await until('status names the new plan', () => statusOf(rig, pod)?.plan === planHash(next));
    t.equal(await rig.metric('ovnkube_route_injector_routes_removed_total'), 3, '3 stale routes removed');
    rig.apply(withPlan(rig.api.pods.get(pod.metadata!.uid!)!, undefined));
    await until('no plan: routes of ours gone', () => ownedLines(routeLines(ns)).length === 0);
    await until('status says no plan', () => statusOf(rig, pod)?.plan === '');
    t.ok(
      routeLines(ns).some((l) => l.startsWith('198.51.100.0/24')),
      'the foreign route survives the empty plan',
    );
    await rig.agent.settled();
    t.equal(rig.agent.view(pod.metadata!.uid!)?.kept, false, "the empty plan's keeper retired");
  });

  t.test('opted-out and hostNetwork pods get no routes', async (t) => {
    const rig = await startRig(t);
    const { ns, pod } = rig.sandbox({ name: 'optout', plan: MISSION_PLAN });
    await until('plan in place', () => ownedLines(routeLines(ns)).length === 5);
    const out = structuredClone(rig.api.pods.get(pod.metadata!.uid!)!);
    out.metadata!.labels = { [INJECT_LABEL]: 'disabled' };
    rig.apply(out);
    await until('opted out: routes removed although the plan annotation is there', () => ownedLines(routeLines(ns)).length === 0);
    t.equal(rig.agent.view(pod.metadata!.uid!)?.reason, 'opted-out', 'the reason is recorded');
    const { ns: hostLike, pod: hn } = rig.sandbox({ name: 'hostnet', plan: MISSION_PLAN, hostNetwork: true });
    await rig.agent.settled(); // the pod was synced (its view below says it was looked at)
    t.same(ownedLines(routeLines(hostLike)), [], 'hostNetwork pod: nothing written');
    t.same(
      rig.agent.view(hn.metadata!.uid!),
      { uid: hn.metadata!.uid, kept: false, reason: 'host-network' },
      'hostNetwork pod: its netns is not even looked up',
    );
  });

  t.test('readiness condition and a device that appears later', async (t) => {
    const rig = await startRig(t);
    const { p, pod } = rig.sandbox({ name: 'gate', plan: MISSION_PLAN, readinessGate: true, eth1: false });
    await until('condition False: routes skipped', () => conditionOf(rig, pod)?.reason === 'RoutesSkipped');
    t.match(conditionOf(rig, pod), { status: 'False' });
    t.match(statusOf(rig, pod), { applied: 2, skipped: [{ reason: 'dev-missing', dev: 'eth1' }] }, 'status lists what is missing');
    t.equal(await rig.metric('ovnkube_route_injector_injection_latency_seconds'), 0, 'no latency observed while routes are missing');
    addEth1(p);
    await until('condition True once eth1 appears', () => conditionOf(rig, pod)?.status === 'True');
    t.match(conditionOf(rig, pod), { reason: 'RoutesInPlace' });
    t.match(statusOf(rig, pod), { plan: planHash(MISSION_PLAN), applied: 5, skipped: [] });
    t.equal(ownedLines(routeLines(p.pod)).length, 5);
    t.equal(await rig.metric('ovnkube_route_injector_injection_latency_seconds'), 1, 'latency observed once in place');
    const writes = rig.api.writes.length;
    rig.apply(structuredClone(rig.api.pods.get(pod.metadata!.uid!)!)); // an unrelated update
    await rig.agent.settled(); // the update was synced...
    await rig.reporter.idle(); // ...and every report it caused was written
    t.equal(rig.api.writes.length, writes, 'nothing rewritten when nothing changed');
  });

  t.test('drift is restored and counted', async (t) => {
    const rig = await startRig(t);
    const { ns, pod } = rig.sandbox({ name: 'drift', plan: MISSION_PLAN });
    await until('plan in place', () => ownedLines(routeLines(ns)).length === 5);
    ns.ip('route', 'del', '10.86.69.17/32');
    await until('restored', () => routeLines(ns).includes('10.86.69.17 dev eth0 proto 111'));
    // The kernel shows the route back before the apply has finished and reported.
    await until(
      'one drift repair counted',
      async () => (await rig.metric('ovnkube_route_injector_routes_restored_total', { kind: 'drift' })) === 1,
    );
    t.equal(await rig.metric('ovnkube_route_injector_routes_applied_total'), 5, 'a repair is not counted as a plan apply');
  });

  t.test('an update of only what the agent writes needs no sync; a status changed by someone else is written back', async (t) => {
    const rig = await startRig(t);
    const { pod } = rig.sandbox({ name: 'echo', plan: MISSION_PLAN });
    const applied = (): boolean => statusOf(rig, pod)?.plan === planHash(MISSION_PLAN) && statusOf(rig, pod)?.applied === 5;
    await until('status says applied', applied);
    await rig.agent.settled();
    const runs = rig.agent.syncRuns;
    const writes = rig.api.writes.length;
    // Someone else overwrites the status annotation: the pod is otherwise the same.
    const stored = rig.api.pods.get(pod.metadata!.uid!)!;
    const forged = structuredClone(stored);
    forged.metadata!.annotations![STATUS_ANNOTATION] = JSON.stringify({
      v: 1,
      plan: '',
      applied: 99,
      skipped: [],
      node: rig.nodeName,
      time: '2026-01-01T00:00:00Z',
    });
    rig.apply(forged);
    await until('the status is written back', applied);
    await rig.agent.settled();
    t.equal(rig.api.writes.length, writes + 1, 'one write: the status back');
    t.equal(rig.agent.syncRuns, runs, 'no sync for the change, nor for the echo of the write');
    // Anything else about the pod is a sync.
    const relabelled = structuredClone(rig.api.pods.get(pod.metadata!.uid!)!);
    relabelled.metadata!.labels = { ...relabelled.metadata!.labels, tier: 'web' };
    rig.apply(relabelled);
    await rig.agent.settled();
    t.ok(rig.agent.syncRuns > runs, 'a label change is synced');
  });

  t.test('pod deletion: keeper stopped, state removed', async (t) => {
    const rig = await startRig(t);
    const plan: Plan = { ...MISSION_PLAN, default: { dev: 'eth1', via: '10.124.2.1' } };
    const { ns, pod } = rig.sandbox({ name: 'gone', plan });
    await until('default replaced', () => routeLines(ns).includes('default via 10.124.2.1 dev eth1 proto 111'));
    t.equal(stateFiles(rig.stateDir).length, 1, 'the original default route is saved');
    rig.remove(pod);
    await rig.agent.settled();
    t.same(stateFiles(rig.stateDir), [], 'state removed');
    t.equal(rig.agent.view(pod.metadata!.uid!), undefined, 'pod forgotten');
    t.equal(await rig.metric('ovnkube_route_injector_netns_kept'), 0, 'no keeper left');
    t.equal(await rig.metric('ovnkube_route_injector_pods_tracked'), 0);
  });
  // Issue #16, defect 2: a foreign route overriding ours was neither repaired nor reported.
  t.test('a foreign route that takes precedence over ours: status and ready condition say collision; gone: applied again', async (t) => {
    const rig = await startRig(t);
    const { ns, pod } = rig.sandbox({ name: 'overridden', plan: MISSION_PLAN, readinessGate: true });
    await until(
      'applied',
      () => statusOf(rig, pod)?.applied === MISSION_PLAN.routes.length && statusOf(rig, pod)?.skipped.length === 0,
      20_000,
    );
    ns.ip('route', 'prepend', '172.16.10.0/24', 'dev', 'eth0');
    const st = await until('collision reported', () => statusOf(rig, pod)?.skipped.find((s) => s.reason === 'collision'), 20_000);
    t.match(st, {
      dst: '172.16.10.0/24',
      dev: 'eth1',
      reason: 'collision',
      detail: /traffic to 172\.16\.10\.0 takes 172\.16\.10\.0\/24 dev eth0/,
    });
    t.equal(statusOf(rig, pod)?.applied, MISSION_PLAN.routes.length - 1);
    await until('ready condition False', () => conditionOf(rig, pod)?.status === 'False', 20_000);
    ns.ip('route', 'del', '172.16.10.0/24', 'dev', 'eth0');
    await until('applied again once the foreign route is gone', () => statusOf(rig, pod)?.skipped.length === 0, 20_000);
    await until('ready condition True', () => conditionOf(rig, pod)?.status === 'True', 20_000);
  });
  // The rig's keepers have no periodic resync (resyncMs 0): the route event alone must do it.
  t.test(
    'a more specific foreign route inside ours is seen from its route event: status, Event, metric; gone: applied again',
    async (t) => {
      const rig = await startRig(t);
      const { ns, pod } = rig.sandbox({ name: 'narrower', plan: MISSION_PLAN, readinessGate: true });
      const uid = pod.metadata!.uid!;
      await until(
        'applied',
        () => statusOf(rig, pod)?.applied === MISSION_PLAN.routes.length && statusOf(rig, pod)?.skipped.length === 0,
        20_000,
      );
      const before = await rig.metric('ovnkube_route_injector_routes_skipped_total', { reason: 'collision' });
      ns.ip('route', 'add', '172.16.10.128/25', 'dev', 'eth0');
      const st = await until('collision reported', () => statusOf(rig, pod)?.skipped.find((s) => s.reason === 'collision'), 20_000);
      t.match(st, {
        dst: '172.16.10.0/24',
        dev: 'eth1',
        reason: 'collision',
        detail: /more specific route: 172\.16\.10\.128\/25 dev eth0/,
      });
      await until('ready condition False', () => conditionOf(rig, pod)?.status === 'False', 20_000);
      await until(
        'a RoutesSkipped Event names it',
        () => rig.api.eventsOf(uid, 'RoutesSkipped').find((e) => /172\.16\.10\.0\/24 dev eth1: collision/.test(e.message)),
        20_000,
      );
      t.equal(await rig.metric('ovnkube_route_injector_routes_skipped_total', { reason: 'collision' }), before + 1, 'counted once');
      t.ok(routeLines(ns).includes('172.16.10.0/24 dev eth1 proto 111'), 'ours stays in the table, not forced');
      ns.ip('route', 'del', '172.16.10.128/25', 'dev', 'eth0');
      await until('applied again once the foreign route is gone', () => statusOf(rig, pod)?.skipped.length === 0, 20_000);
      await until('ready condition True', () => conditionOf(rig, pod)?.status === 'True', 20_000);
    },
  );
});
