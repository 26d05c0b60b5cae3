// Restarts and vanishing netns on the real kernel: a new agent on the same node (same CNI
// cache, same state dir) converges with no duplicates and no losses, restores a default
// route replaced before the restart, and cleans up after pods deleted while it was down;
// a netns deleted in the middle of an apply is let go cleanly.
import t from 'tap';
import { encodePlan, planHash } from '../../core/plan-codec.js';
import { PLAN_ANNOTATION, STATUS_ANNOTATION, type Plan } from '../../core/types.js';
import { ipRoutes, makePod, onFirstCall, routeLines } from '../util/netns.js';
import { rootUnavailable, tierGate } from '../util/tier.js';
import { makePodObject, MISSION_PLAN, ownedLines, startRig, stateFiles, until, writeCacheFile } from './rig.js';

const WITH_DEFAULT: Plan = { ...MISSION_PLAN, default: { dev: 'eth1', via: '10.124.2.1' } };

t.test('restart', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;

  t.test('a new agent converges with no duplicates and restores the default route saved before', async (t) => {
    const first = await startRig(t);
    const { pod: ns } = makePod(t);
    const { pod: ns2 } = makePod(t);
    const pod = first.apply(makePodObject({ name: 'keep', plan: WITH_DEFAULT, key: first.key }));
    const leaving = first.apply(makePodObject({ name: 'leaving', plan: WITH_DEFAULT, key: first.key }));
    writeCacheFile(first.cacheDir, pod, ns.path);
    writeCacheFile(first.cacheDir, leaving, ns2.path);
    await until(
      'both plans in place',
      () =>
        routeLines(ns).includes('default via 10.124.2.1 dev eth1 proto 111') &&
        routeLines(ns2).includes('default via 10.124.2.1 dev eth1 proto 111'),
    );
    await until('the first agent reported', () =>
      first.api.pods.get(pod.metadata!.uid!)?.metadata?.annotations?.[STATUS_ANNOTATION]?.includes('"applied":6'),
    );
    const before = routeLines(ns);
    t.equal(stateFiles(first.stateDir).length, 2, 'two original default routes saved');
    first.stop();

    // While no agent runs: one pod is deleted (its state must go at the next start).
    const second = await startRig(t, { cacheDir: first.cacheDir, stateDir: first.stateDir, keys: [first.key] });
    second.apply(first.api.pods.get(pod.metadata!.uid!)!); // the first list of the new agent holds only "keep"
    second.agent.podsSynced();
    t.equal(stateFiles(second.stateDir).length, 1, 'the state of the pod deleted while down is removed once the pod list is in');
    await until('the new agent applied the plan', () => second.agent.view(pod.metadata!.uid!)?.planHash);
    await second.agent.settled();
    t.same(second.api.writes, [], 'the status report the first agent wrote is still true: not rewritten');
    t.same(routeLines(ns), before, 'the table is exactly as before the restart');
    const owned = ipRoutes(ns)
      .filter((r) => r.protocol === '111')
      .map((r) => r.dst);
    t.equal(new Set(owned).size, owned.length, 'no duplicate routes');
    t.equal(await second.metric('ovnkube_route_injector_routes_applied_total'), 0, 'nothing needed writing');

    const noDefault = structuredClone(second.api.pods.get(pod.metadata!.uid!)!);
    noDefault.metadata!.annotations![PLAN_ANNOTATION] = encodePlan(MISSION_PLAN, { namespace: 'default', key: first.key });
    second.apply(noDefault);
    await until('the original default route is back', () => routeLines(ns).includes('default via 169.254.1.1 dev eth0'));
    t.notOk(
      routeLines(ns).some((l) => l.startsWith('default via 10.124.2.1')),
      'ours is gone',
    );
    // The kernel shows the original back before the apply has finished and reported.
    await until('the apply reported', () => second.agent.view(pod.metadata!.uid!)?.planHash === planHash(MISSION_PLAN));
    t.equal(await second.metric('ovnkube_route_injector_routes_restored_total', { kind: 'default' }), 1, 'counted as a default restore');
    t.same(stateFiles(second.stateDir), [], 'nothing saved any more');
    t.equal(ownedLines(routeLines(ns)).length, 5, 'the other routes stay');
  });

  t.test('a netns deleted in the middle of an apply is let go; the agent carries on', async (t) => {
    const rig = await startRig(t);
    const { pod: ns } = makePod(t);
    // 400 routes and a default: the netns is deleted when the apply makes its first write
    // (after its reads), and the apply writes all of them into the dying namespace (its socket
    // keeps it alive) before it finds the path gone.
    const routes = Array.from({ length: 400 }, (_, i) => ({ dst: `10.200.${i >> 8}.${i & 255}/32`, dev: 'eth0' }));
    const plan: Plan = { v: 1, routes, default: { dev: 'eth1', via: '10.124.2.1' } };
    let deletedAt = -1;
    onFirstCall(t, 'addRoute', () => {
      deletedAt = ownedCount();
      ns.del(); // synchronous: the agent's apply is mid-way
    });
    const ownedCount = (): number => {
      try {
        return ownedLines(routeLines(ns)).length;
      } catch {
        return -1;
      }
    };
    const pod = rig.apply(makePodObject({ name: 'vanish', plan, key: rig.key }));
    writeCacheFile(rig.cacheDir, pod, ns.path);
    await until(
      'the netns vanished and was let go',
      async () => (await rig.metric('ovnkube_route_injector_failures_total', { reason: 'netns-gone' })) >= 1,
    );
    t.equal(deletedAt, 0, 'deleted while the apply ran: after its reads, before its first write');
    await rig.agent.settled();
    t.equal(rig.agent.view(pod.metadata!.uid!)?.kept, false, 'no keeper left for it');
    t.same(stateFiles(rig.stateDir), [], 'its state is removed');
    // The agent is fine: another pod is served.
    const { ns: other } = rig.sandbox({ name: 'next', plan: MISSION_PLAN });
    await until('the next pod is served', () => ownedLines(routeLines(other)).length === 5);
    t.pass('served');
  });

  t.test('a kept netns that is deleted is released at once (netns dir watch)', async (t) => {
    const rig = await startRig(t);
    const { ns, pod } = rig.sandbox({ name: 'kept', plan: WITH_DEFAULT });
    await until('plan in place', () => ownedLines(routeLines(ns)).length === 6);
    t.equal(stateFiles(rig.stateDir).length, 1);
    ns.del();
    await until('released', () => rig.agent.view(pod.metadata!.uid!)?.kept === false);
    t.same(stateFiles(rig.stateDir), [], 'state removed');
    t.equal(await rig.metric('ovnkube_route_injector_netns_kept'), 0);
  });
});
