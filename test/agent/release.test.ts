// Releasing a pod, or stopping the agent, while a keeper's apply is in flight, on the real
// kernel. The release (or stop) must leave no fd behind at once, not when the apply would
// have ended: an agent with pod churn must not carry sockets of pods it let go, nor write to
// their netns afterwards. (This is the burst test's "8 fds left open": the last wave of
// pods still had their echo re-apply running when they were released.)
import t from 'tap';
import type { Plan } from '../../core/types.js';
import { fdsOpenedSince, fdTable, makePod, onFirstCall, routeLines } from '../util/netns.js';
import { rootUnavailable, tierGate } from '../util/tier.js';
import { makePodObject, MISSION_PLAN, ownedLines, startRig, stateFiles, until, writeCacheFile } from './rig.js';

const WITH_DEFAULT: Plan = { ...MISSION_PLAN, default: { dev: 'eth1', via: '10.124.2.1' } };

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
    // The repair's first request (its dump of the links) is the moment: the pod is deleted
    // there, with the repair in flight (see onFirstCall).
    let during: string[] | null = null;
    let after: string[] = [];
    let applying = false;
    onFirstCall(t, 'listLinks', () => {
      during = fdsOpenedSince(before);
      applying = rig.agent.view(uid)?.applying === true;
      rig.remove(pod); // the release runs synchronously in here (a deleted pod's sync never awaits)
      after = fdsOpenedSince(before);
    });
    ns.ip('route', 'del', '172.16.10.0/24'); // drift: the keeper re-applies after its debounce
    await until('the repair apply began', () => during !== null);
    t.equal(during!.length, 2, `event socket + the keeper's client: ${during!.join(', ')}`);
    t.ok(applying, 'the agent saw the repair in flight');
    t.same(after, [], 'no fd of the released pod is left open');
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
    // (The CNI cache index may still hold a cache file open for reading: not the agent's.)
    const agentFds = (): string[] => fdsOpenedSince(before).filter((x) => !x.includes(rig.cacheDir));
    // The first apply's first request (its dump of the links): its event socket and its client
    // are open, nothing is written yet. The agent stops there.
    let during: string[] | null = null;
    let after: string[] = [];
    onFirstCall(t, 'listLinks', () => {
      during = agentFds();
      rig.agent.stop();
      after = agentFds();
    });
    const pod = rig.apply(makePodObject({ name: 'starting', plan: WITH_DEFAULT, key: rig.key }));
    writeCacheFile(rig.cacheDir, pod, ns.path);
    await until('the first apply began', () => during !== null);
    t.equal(during!.length, 2, `event socket + the keeper's client: ${during!.join(', ')}`);
    t.same(after, [], 'stop() closed them itself');
    await rig.agent.settled(); // the sync that started the keeper has returned
    t.same(ownedLines(routeLines(ns)), [], 'nothing written after stop');
    t.same(agentFds(), []);
  });
});
