// Releasing a pod, or stopping the agent, while a keeper's apply is in flight, on the real
// kernel. The release (or stop) must leave no fd behind at once, not when the apply would
// have ended: an agent with pod churn must not carry sockets of pods it let go, nor write to
// their netns afterwards. (This is the burst test's "8 fds left open": the last wave of
// pods still had their echo re-apply running when they were released.)
import { setImmediate as nextTurn } from 'node:timers/promises';
import t from 'tap';
import type { Plan } from '../../core/types.js';
import { fdsOpenedSince, fdTable, makePod, routeLines } from '../util/netns.js';
import { rootUnavailable, tierGate } from '../util/tier.js';
import { makePodObject, MISSION_PLAN, ownedLines, startRig, stateFiles, until, writeCacheFile } from './rig.js';

const WITH_DEFAULT: Plan = { ...MISSION_PLAN, default: { dev: 'eth1', via: '10.124.2.1' } };

/**
 * Check `cond` once per event-loop turn (after the poll phase) until it holds. An apply
 * needs a turn per netlink dump (four before its first write), so an apply seen starting
 * here is still in flight.
 */
async function everyTurnUntil(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: still not so after ${ms} ms`);
    await nextTurn();
  }
}

t.test('release and stop racing applies', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;

  t.test("a pod deleted while its keeper repairs drift: the repair's socket is closed by the release itself", async (t) => {
    const rig = await startRig(t, { keeper: { debounceMs: 10 } });
    const { pod: ns } = makePod(t);
    const before = fdTable();
    const pod = rig.apply(makePodObject({ name: 'churn', plan: WITH_DEFAULT, key: rig.key }));
    writeCacheFile(rig.cacheDir, pod, ns.path);
    await until('plan in place', () => ownedLines(routeLines(ns)).length === 6);
    // Quiet: no apply in flight; the keeper holds its event socket and its client.
    const uid = pod.metadata!.uid!;
    await until('no apply in flight', () => rig.agent.view(uid)?.applying !== true);
    t.equal(stateFiles(rig.stateDir).length, 1, 'the original default route is saved');
    ns.ip('route', 'del', '172.16.10.0/24'); // drift: the keeper re-applies after its debounce
    await everyTurnUntil('the repair apply is in flight', () => rig.agent.view(uid)?.applying === true);
    const during = fdsOpenedSince(before);
    t.equal(during.length, 2, `event socket + the keeper's client: ${during.join(', ')}`);
    rig.remove(pod); // the release runs synchronously in here (a deleted pod's sync never awaits)
    t.same(fdsOpenedSince(before), [], 'no fd of the released pod is left open');
    t.equal(rig.agent.size, 0, 'released');
    t.same(stateFiles(rig.stateDir), [], 'state removed');
    await rig.agent.settled();
    t.same(fdsOpenedSince(before), [], 'still none later');
    t.same(stateFiles(rig.stateDir), [], 'and no state written again');
  });

  t.test('the agent stopped while a first apply is in flight: no fd left, nothing written after stop', async (t) => {
    const rig = await startRig(t);
    const { pod: ns } = makePod(t);
    const before = fdTable();
    const pod = rig.apply(makePodObject({ name: 'starting', plan: WITH_DEFAULT, key: rig.key }));
    writeCacheFile(rig.cacheDir, pod, ns.path);
    // kept is set right before the keeper starts: its event socket and its client are open.
    await everyTurnUntil('the keeper is starting', () => rig.agent.view(pod.metadata!.uid!)?.kept === true);
    // (The CNI cache index may still hold a cache file open for reading: not the agent's.)
    const agentFds = (): string[] => fdsOpenedSince(before).filter((x) => !x.includes(rig.cacheDir));
    const during = agentFds();
    t.equal(during.length, 2, `event socket + the keeper's client: ${during.join(', ')}`);
    rig.agent.stop();
    t.same(agentFds(), [], 'stop() closed them itself');
    await rig.agent.settled(); // the sync that started the keeper has returned
    t.same(ownedLines(routeLines(ns)), [], 'nothing written after stop');
    t.same(agentFds(), []);
  });
});
