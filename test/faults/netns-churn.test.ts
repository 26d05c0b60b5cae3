// Netns churn (issue #16): 258 sandboxes created, routed, and deleted, six at a time,
// through the real agent binary and a real kube-apiserver. Each one is waited for by
// evidence (its routes exactly in place, then the agent's count of kept netns back down),
// and the agent's own open fds and resident memory are sampled as it goes.
// - fds: back to their level after the warm-up (every netns, socket and inotify fd of a
//   deleted pod is closed);
// - RSS: sampled after every six cycles; its slope is reported, and its floor (the lowest
//   sample of each third of the run) must not climb: V8 collects lazily, so RSS is a
//   sawtooth whose single samples say little, while a leak lifts the floor.
import t from 'tap';
import { withControlPlane } from '../cluster/tap.js';
import { rootUnavailable, tierGate } from '../util/tier.js';
import { until } from '../agent/rig.js';
import type { Plan } from '../../core/types.js';
import { AgentProc, agentEnv, removeSandbox, routedExactly, sandbox, slope } from './agent-proc.js';

// The agent's RSS grows for about its first 100 sandboxes and then stays flat (measured: 314 ->
// 371 MiB by cycle 96, then 371 -> 373 MiB by cycle 180; the same with MALLOC_ARENA_MAX=2, so
// not malloc arenas; in other runs the climb lasted up to ~170 cycles): the heap reaching its
// working size. A leak keeps growing after that, so the last third's floor is compared with
// the middle third's (8 MiB over ~44 cycles: about the sensitivity of the former 16 MiB over
// ~87), after a warm-up of 126 cycles. 258 cycles in all keeps the file well
// inside tap's 300 s on a loaded 2-core machine (300 cycles took up to 218 s there).
const CYCLES = 258;
const PARALLEL = 6;
const WARMUP = 126;
// eth0 only (a sandbox without eth1 is one veth cheaper to make): four host routes, a CIDR.
const PLAN: Plan = {
  v: 1,
  routes: [
    { dst: '10.86.69.17/32', dev: 'eth0' },
    { dst: '10.86.69.18/32', dev: 'eth0' },
    { dst: '192.168.2.0/24', dev: 'eth0' },
  ],
};

const cp = await withControlPlane(t);
if (cp && tierGate(t, 'netns', rootUnavailable())) {
  await t.test(`${CYCLES} sandboxes created, routed and deleted: fds and memory stay flat`, async (t) => {
    const env = await agentEnv(t, cp, 'faults-churn', 'churn-node');
    const agent = await AgentProc.start(env, { args: ['--log-level', 'warn'] });
    t.teardown(() => agent.stop('SIGKILL'));
    const samples: { cycle: number; fds: number; rssKb: number }[] = [];
    let done = 0;
    const one = async (i: number): Promise<void> => {
      const s = await sandbox(t, env, `churn-${i}`, PLAN, { eth1: false });
      await until(`churn-${i} routed`, () => routedExactly(s), 60_000);
      await removeSandbox(env, s);
      done++;
    };
    for (let c = 0; c < CYCLES; c += PARALLEL) {
      await Promise.all(Array.from({ length: Math.min(PARALLEL, CYCLES - c) }, (_, k) => one(c + k)));
      await until(
        'the agent let go of every deleted netns',
        async () => (await agent.metric('ovnkube_route_injector_netns_kept')) === 0,
        60_000,
      );
      samples.push({ cycle: done, fds: agent.fds(), rssKb: agent.rssKb() });
    }
    t.equal(done, CYCLES, 'every sandbox was routed and deleted');
    t.equal(await agent.metric('ovnkube_route_injector_pods_tracked'), 0, 'no pod left tracked');
    const after = samples.filter((s) => s.cycle >= WARMUP);
    const base = after[0]!;
    const last = samples[samples.length - 1]!;
    const rssSlope = slope(
      after.map((s) => s.cycle),
      after.map((s) => s.rssKb),
    );
    const fdSlope = slope(
      after.map((s) => s.cycle),
      after.map((s) => s.fds),
    );
    // RSS is a sawtooth (V8 collects lazily when memory is plentiful): a leak shows in its
    // lower envelope, the lowest sample of each third of the run after the warm-up.
    const third = Math.floor(after.length / 3);
    const floors = [0, 1, 2].map((k) => Math.min(...after.slice(k * third, k === 2 ? after.length : (k + 1) * third).map((s) => s.rssKb)));
    t.comment(
      `samples (cycle fds rssKiB), every 20th: ${samples
        .filter((_, i) => i % 5 === 0 || i === samples.length - 1)
        .map((s) => `${s.cycle} ${s.fds} ${s.rssKb}`)
        .join(' | ')}`,
    );
    t.comment(
      `after warm-up: fds ${base.fds} -> ${last.fds} (slope ${fdSlope.toFixed(3)}/cycle); RSS ${base.rssKb} -> ${last.rssKb} KiB (slope ${rssSlope.toFixed(1)} KiB/cycle), lowest per third ${floors.join(', ')} KiB`,
    );
    t.ok(last.fds <= base.fds + 2, `fds back to their level: ${base.fds} after the warm-up, ${last.fds} at the end`);
    t.ok(Math.max(...after.map((s) => s.fds)) <= base.fds + PARALLEL * 8, 'fds bounded by the pods alive at once');
    t.ok(
      floors[2]! <= floors[1]! + 8 * 1024,
      `RSS floor of the last third (${floors[2]} KiB) within 8 MiB of the middle third's (${floors[1]} KiB): the growth has stopped`,
    );
    t.same(await agent.stop('SIGTERM'), { code: 0, signal: null });
  });
}
