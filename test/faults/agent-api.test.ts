// Faults of the API server, against the real agent binary and real netns (issue #16):
// - kube-apiserver stopped (connections refused) and started again;
// - the API endpoint made silent mid-run (a TCP front that accepts and never answers), then
//   answering again.
// Throughout, the agent keeps the routes it has (drift is repaired with no API at all),
// stays alive, retries with a log line, and once the API answers again catches up with
// everything that happened meanwhile: nothing is lost.
import t from 'tap';
import { withControlPlane } from '../cluster/tap.js';
import { SwitchableFront } from '../util/fake-api.js';
import { rootUnavailable, tierGate } from '../util/tier.js';
import { MISSION_PLAN, until } from '../agent/rig.js';
import { AgentProc, agentEnv, kubeconfigFor, ownRoutes, routedExactly, sandbox, setPlan, statusOf, wantLines } from './agent-proc.js';
import { planHash } from '../../core/plan-codec.js';
import type { Plan } from '../../core/types.js';

const EDITED: Plan = {
  v: 1,
  routes: [
    { dst: '10.86.69.17/32', dev: 'eth1' },
    { dst: '172.16.30.0/24', dev: 'eth1', via: '10.124.2.1' },
  ],
};
const retries = (a: AgentProc): number => a.lines('list/watch failed; retrying').length;

const cp = await withControlPlane(t);
if (cp && tierGate(t, 'netns', rootUnavailable())) {
  await t.test('kube-apiserver stopped, then started again', async (t) => {
    const env = await agentEnv(t, cp, 'faults-stop', 'stop-node');
    const agent = await AgentProc.start(env, { args: ['--api-timeout', '3s', '--log-level', 'debug'] });
    t.teardown(() => agent.stop('SIGKILL'));
    const a = await sandbox(t, env, 'a', MISSION_PLAN);
    await until('pod a routed and reported', async () => routedExactly(a) && (await statusOf(env, 'a'))?.applied === 5);

    const before = retries(agent);
    await cp.stopApiserver();
    await until('the agent noticed (a retry logged)', () => retries(agent) > before, 60_000);
    t.equal((await agent.get('/healthz')).status, 200, 'alive while it retries');
    a.ns.ip('route', 'del', '172.16.10.0/24');
    await until('drift repaired with the API server down', () => routedExactly(a), 30_000);
    t.same(ownRoutes(a.ns), wantLines(MISSION_PLAN), 'routes kept exactly');

    await cp.startApiserver();
    await until('ready again', async () => (await agent.get('/readyz')).status === 200, 90_000);
    const b = await sandbox(t, env, 'b', MISSION_PLAN);
    await setPlan(env, a, EDITED);
    await until('a new pod is routed', () => routedExactly(b), 60_000);
    await until('a plan edit is applied', () => routedExactly(a), 60_000);
    await until(
      'both reported',
      async () => (await statusOf(env, 'a'))?.plan === planHash(EDITED) && (await statusOf(env, 'b'))?.applied === 5,
      60_000,
    );
    t.equal(agent.running, true, 'the same agent process throughout');
    t.same(ownRoutes(a.ns), wantLines(EDITED));
    t.same(ownRoutes(b.ns), wantLines(MISSION_PLAN));
  });

  await t.test('the API endpoint made silent mid-run, then answering again', async (t) => {
    const env = await agentEnv(t, cp, 'faults-silent', 'silent-node');
    const front = new SwitchableFront({ host: '127.0.0.1', port: Number(new URL(cp.server).port) });
    const frontPort = await front.listen();
    t.teardown(() => front.close());
    front.forwardTo({ host: '127.0.0.1', port: Number(new URL(cp.server).port) });
    const kubeconfig = kubeconfigFor(cp.kc, `https://127.0.0.1:${frontPort}`, `${env.dir}/front.kubeconfig`);
    const agent = await AgentProc.start(env, {
      kubeconfig,
      args: ['--api-timeout', '3s', '--watch-idle-timeout', '5s', '--log-level', 'debug'],
    });
    t.teardown(() => agent.stop('SIGKILL'));
    const a = await sandbox(t, env, 'a', MISSION_PLAN);
    await until('pod a routed and reported', async () => routedExactly(a) && (await statusOf(env, 'a'))?.applied === 5);

    const before = retries(agent);
    front.freeze();
    await until(
      'the silence is noticed by the watchdog or a deadline, and retried',
      () =>
        agent
          .lines('list/watch failed; retrying')
          .slice(before)
          .some((l) => /no event or bookmark within 5 s|no answer|no complete answer/.test(String(l.error))),
      60_000,
    );
    t.equal((await agent.get('/healthz')).status, 200, 'alive while it retries');
    // Meanwhile, in the API (straight to the server): a new pod and a plan edit.
    const b = await sandbox(t, env, 'b', MISSION_PLAN);
    await setPlan(env, a, EDITED);
    a.ns.ip('route', 'del', '10.86.205.109');
    await until(
      'drift repaired while the API is silent (the old plan, still the one known)',
      () => ownRoutes(a.ns).includes('10.86.205.109 dev eth1 proto 111'),
      30_000,
    );

    front.forwardTo({ host: '127.0.0.1', port: Number(new URL(cp.server).port) });
    await until('the pod created during the silence is routed', () => routedExactly(b), 90_000);
    await until('the plan edit made during the silence is applied', () => routedExactly(a), 90_000);
    await until(
      'both reported',
      async () => (await statusOf(env, 'a'))?.plan === planHash(EDITED) && (await statusOf(env, 'b'))?.applied === 5,
      60_000,
    );
    t.ok(front.silentClosed + front.accepted > 0, 'the front was used');
    t.equal(agent.running, true, 'the same agent process throughout');
    const code = await agent.stop('SIGTERM');
    t.same(code, { code: 0, signal: null }, 'and it stops cleanly');
  });
}
