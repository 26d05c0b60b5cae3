// A burst of 200 pods on one node, on the real kernel: 200 netns with two veths each, 200
// CNI cache files written at once. Every pod gets exactly its plan, at most `maxParallel`
// netns are set up at the same time, every pod is reported, and deleting them all leaves
// no keeper, no state and no open socket behind. Times are printed as comments (figures,
// not assertions: the machine is shared and noisy).
import t from 'tap';
import { decodeInjectorStatus } from '../../core/injector-status.js';
import { planHash } from '../../core/plan-codec.js';
import { STATUS_ANNOTATION, type Plan } from '../../core/types.js';
import { fdsOpenedSince, fdTable, openFds } from '../util/netns.js';
import { rootUnavailable, tierGate } from '../util/tier.js';
import { makePodNetnsBatch, ownedRoutes } from './batch-netns.js';
import { makePodObject, MISSION_PLAN, startRig, stateFiles, until, writeCacheFile } from './rig.js';

const N = 200;
const MAX_PARALLEL = 8;

t.test('a burst of 200 pods on one node', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const rig = await startRig(t, { maxParallel: MAX_PARALLEL });
  // Taken with the rig up and no pod yet: nothing of the agent's is in flight here.
  const fds = openFds();
  const fdsBefore = fdTable();
  let t0 = Date.now();
  const { paths, names } = makePodNetnsBatch(t, N);
  t.comment(`created ${N} netns with 2 veths each in ${Date.now() - t0} ms`);

  const plan: Plan = { ...MISSION_PLAN, default: { dev: 'eth1', via: '10.124.2.1' } };
  const pods = paths.map((_, i) => rig.apply(makePodObject({ name: `burst-${i}`, plan, key: rig.key })));
  await rig.agent.settled();
  t0 = Date.now();
  pods.forEach((p, i) => writeCacheFile(rig.cacheDir, p, paths[i]!));
  const hash = planHash(plan);
  const applied = (): number =>
    pods.filter((p) => {
      const s = decodeInjectorStatus(rig.api.pods.get(p.metadata!.uid!)?.metadata?.annotations?.[STATUS_ANNOTATION]);
      return s?.plan === hash && s.applied === 6 && s.skipped.length === 0;
    }).length;
  await until('every pod reports its plan in place', () => applied() === N, 120_000);
  const burstMs = Date.now() - t0;
  const lat = await rig.registry.getSingleMetric('ovnkube_route_injector_injection_latency_seconds')!.get();
  const count = lat.values.find((v) => (v as { metricName?: string }).metricName?.endsWith('_count'))?.value ?? 0;
  const sum = lat.values.find((v) => (v as { metricName?: string }).metricName?.endsWith('_sum'))?.value ?? 0;
  t.comment(
    `burst: ${N} pods in place ${burstMs} ms after their cache files were written; mean injection latency ${Math.round((sum / count) * 1000)} ms; at most ${rig.agent.maxParallelSeen} netns set up at once`,
  );
  t.equal(count, N, 'one injection latency per pod');
  t.ok(rig.agent.maxParallelSeen <= MAX_PARALLEL, `concurrency bounded (${rig.agent.maxParallelSeen} <= ${MAX_PARALLEL})`);
  t.ok(rig.agent.maxParallelSeen > 1, 'pods were set up in parallel');

  const wrong = names.filter((n) => {
    const dsts = ownedRoutes(n)
      .map((r) => r.dst)
      .sort();
    return (
      JSON.stringify(dsts) !==
      JSON.stringify(['10.124.0.0/16', '10.86.205.109', '10.86.69.17', '172.16.10.0/24', '192.168.2.0/24', 'default'])
    );
  });
  t.same(wrong, [], "every netns holds exactly its plan's routes, none twice");
  t.equal(stateFiles(rig.stateDir).length, N, 'one saved default route per pod');
  t.equal(await rig.metric('ovnkube_route_injector_netns_kept'), N);

  t0 = Date.now();
  for (const p of pods) rig.remove(p);
  await until('every pod released', () => rig.agent.size === 0, 60_000);
  t.comment(`released ${N} pods in ${Date.now() - t0} ms`);
  t.same(stateFiles(rig.stateDir), [], 'all state removed');
  t.equal(await rig.metric('ovnkube_route_injector_netns_kept'), 0, 'no keeper left');
  // Released keepers must not leave an apply's socket open (close() aborts an apply in flight).
  t.ok(
    openFds() <= fds + 2,
    `no sockets or fds left open (${openFds()} now, ${fds} before; opened since: ${fdsOpenedSince(fdsBefore).join(', ') || 'none'})`,
  );
});
