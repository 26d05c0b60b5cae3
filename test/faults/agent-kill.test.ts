// The agent killed with SIGKILL in the middle of its applies (issue #16), then started
// again: every pod ends with exactly its plan's routes, nothing duplicated, and the
// original default routes it had saved before replacing them are still restorable.
//
// The kill is timed by evidence, not by a sleep: this test listens to the route events of
// every pod netns and sends SIGKILL on the first route the agent writes (proto 111), with
// 12 pods of 300 routes each to write; then it checks the kill did land mid-apply (some
// but not all routes in place).
import t from 'tap';
import { subscribeNetns, type NetnsSubscription } from '../../injector/kernel/netlink-events.js';
import { RTPROT_OVNKUBE_ROUTE } from '../../injector/routes/engine.js';
import type { Plan } from '../../core/types.js';
import { withControlPlane } from '../cluster/tap.js';
import { routeLines } from '../util/netns.js';
import { rootUnavailable, tierGate } from '../util/tier.js';
import { stateFiles, until } from '../agent/rig.js';
import {
  AgentProc,
  agentEnv,
  bigPlan,
  ownRoutes,
  wantLines,
  routedExactly,
  sandbox,
  setPlan,
  statusOf,
  type Sandbox,
} from './agent-proc.js';

const PODS = 12;
const ROUTES = 300;
const DEFAULT = { dev: 'eth1', via: '10.124.2.1' };

const cp = await withControlPlane(t);
if (cp && tierGate(t, 'netns', rootUnavailable())) {
  await t.test('SIGKILL mid-apply, then a restart: exactly the plans, nothing duplicated', async (t) => {
    const env = await agentEnv(t, cp, 'faults-kill', 'kill-node');
    const boxes: Sandbox[] = [];
    for (let i = 0; i < PODS; i++) {
      const plan: Plan = { ...bigPlan(ROUTES, i), ...(i % 3 === 0 ? { default: DEFAULT } : {}) };
      boxes.push(await sandbox(t, env, `p${i}`, plan));
    }
    const total = boxes.reduce((n, b) => n + b.plan.routes.length + (b.plan.default ? 1 : 0), 0);

    let agent: AgentProc | undefined;
    let killedAt = -1;
    const subs: NetnsSubscription[] = boxes.map((b) =>
      subscribeNetns(b.ns.path, (ev) => {
        if (killedAt < 0 && agent && ev.kind === 'route' && ev.action === 'new' && ev.route.protocol === RTPROT_OVNKUBE_ROUTE) {
          killedAt = Date.now();
          agent.child.kill('SIGKILL');
        }
      }),
    );
    t.teardown(() => {
      for (const s of subs) s.close();
    });
    agent = await AgentProc.start(env, { ready: false });
    const ended = await agent.exited;
    for (const s of subs) s.close();
    t.equal(ended.signal, 'SIGKILL', 'killed on its first route write');
    const owned = boxes.reduce(
      (n, b) => n + ownRoutes(b.ns).length + (routeLines(b.ns).some((l) => l.startsWith('default') && l.endsWith('proto 111')) ? 1 : 0),
      0,
    );
    t.ok(owned > 0 && owned < total, `killed mid-apply: ${owned} of ${total} routes were in place`);

    const again = await AgentProc.start(env, { args: ['--log-level', 'info'] });
    t.teardown(() => again.stop('SIGKILL'));
    await until('every pod has exactly its plan', () => boxes.every(routedExactly), 120_000).catch((e: Error) => {
      for (const b of boxes.filter((x) => !routedExactly(x))) {
        const have = ownRoutes(b.ns);
        const want = wantLines(b.plan);
        t.comment(
          `${b.name}: missing ${JSON.stringify(want.filter((l) => !have.includes(l)).slice(0, 5))}, extra ${JSON.stringify(have.filter((l) => !want.includes(l)).slice(0, 5))}, lines ${routeLines(b.ns).length}`,
        );
      }
      t.comment(
        again.log
          .split('\n')
          .filter((l) => /warn|error/.test(l))
          .slice(0, 10)
          .join('\n'),
      );
      throw e;
    });
    await until(
      'every pod reported applied',
      async () => {
        for (const b of boxes) {
          const st = await statusOf(env, b.name);
          if (st?.applied !== wantLines(b.plan).length || st.skipped.length !== 0) return false;
        }
        return true;
      },
      60_000,
    );
    for (const b of boxes) {
      const lines = routeLines(b.ns);
      const defaults = lines.filter((l) => l.startsWith('default'));
      t.same(
        defaults,
        b.plan.default ? ['default via 10.124.2.1 dev eth1 proto 111'] : ['default via 169.254.1.1 dev eth0'],
        `${b.name}: one default route, the right one`,
      );
    }
    t.equal(
      stateFiles(env.stateDir).length,
      boxes.filter((b) => b.plan.default).length,
      'one saved original default per pod whose default was replaced',
    );

    // The originals saved across the kill are what a plan without a default puts back.
    const withDefault = boxes.filter((b) => b.plan.default);
    for (const b of withDefault) await setPlan(env, b, bigPlan(ROUTES, boxes.indexOf(b)));
    await until(
      'original default routes restored',
      () => withDefault.every((b) => routeLines(b.ns).includes('default via 169.254.1.1 dev eth0') && routedExactly(b)),
      60_000,
    );
    await until('saved defaults forgotten', () => stateFiles(env.stateDir).length === 0, 30_000);
    t.same(await again.stop('SIGTERM'), { code: 0, signal: null });
  });
}
