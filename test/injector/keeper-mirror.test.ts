// The keeper's mirror, on the real kernel: a plan change that follows only the keeper's own
// writes reads nothing from the netns (no dumps); the mirror it trusts is the last apply's
// reads kept current by the kernel's announcements of that apply's writes. These tests show
// that the mirror equals a fresh dump (IPv4 and IPv6, added, removed and replaced routes,
// the default route taken over), that anything other than an echo ends it (a foreign route,
// an event not read yet), and that the event socket reports drops and unread events.
import { execFileSync } from 'node:child_process';
import t, { type Test } from 'tap';
import type { Plan } from '../../core/types.js';
import { subscribeNetns } from '../../injector/kernel/netlink-events.js';
import { RtnlClient } from '../../injector/kernel/netlink.js';
import { applyPlan, type KernelView, type SavedDefault } from '../../injector/routes/engine.js';
import { RouteKeeper } from '../../injector/routes/keeper.js';
import { makePod, MISSION_PLAN, routeLines } from '../util/netns.js';
import { rootUnavailable, tierGate } from '../util/tier.js';
import { until } from '../util/until.js';

const ours = (lines: string[]): string[] => lines.filter((l) => l.endsWith('proto 111'));

/** What a fresh dump of the netns says, in a comparable form (as the mirror gives it). */
async function dumped(path: string): Promise<{ routes: string[]; rules: string[]; links: string[] }> {
  const c = RtnlClient.open(path);
  try {
    const links = await c.listLinks();
    const routes = await c.listRoutes({ table: 'any', links });
    const rules = await c.listRules();
    return comparable({ links, routes, rules });
  } finally {
    c.close();
  }
}
function comparable(v: KernelView): { routes: string[]; rules: string[]; links: string[] } {
  return {
    routes: v.routes.map((r) => JSON.stringify(r, Object.keys(r).sort())).sort(),
    rules: v.rules.map((r) => JSON.stringify(r, Object.keys(r).sort())).sort(),
    links: v.links.map((l) => JSON.stringify(l)).sort(),
  };
}

/** Wait until the keeper's mirror is complete (every echo of its last apply came). */
async function mirrorReady(k: RouteKeeper): Promise<KernelView> {
  return until('the echoes of the last apply came and the mirror is complete', () => k.mirrorView);
}

/** Once the mirror is complete, it equals a fresh dump of the netns. */
async function mirrorIsDump(t: Test, k: RouteKeeper, path: string, what: string): Promise<void> {
  t.same(comparable(await mirrorReady(k)), await dumped(path), what);
}

const V6: Plan = {
  v: 1,
  routes: [...MISSION_PLAN.routes, { dst: 'fd00:200::/64', dev: 'eth1' }, { dst: 'fd00:201::/64', dev: 'eth1', via: 'fd00:124::1' }],
  default: { dev: 'eth1', via: '10.124.2.1' },
};

t.test('a plan change after only our own writes reads nothing, and the mirror equals a fresh dump', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t, { ipv6: true });
  // The kernel adds each link's IPv6 link-local routes on its own once the link is up: let it
  // finish, so that the only changes from here on are the keeper's (mirror and dump compared).
  await until("the kernel's link-local routes of eth0 and eth1 are in", () => {
    const all = pod.ip('-6', 'route', 'show', 'table', 'all');
    return ['eth0', 'eth1'].every((d) => all.includes(`fe80::/64 dev ${d}`) && all.includes(`ff00::/8 dev ${d}`));
  });
  const k = new RouteKeeper(pod.path, V6, { onReport: () => {}, debounceMs: 10, resyncMs: 0 });
  t.teardown(() => k.close());
  const first = await k.start();
  t.same(first?.skipped, [], 'the start wrote everything');
  t.equal(k.mirroredApplies, 0, 'a start reads the netns');
  await mirrorIsDump(t, k, pod.path, 'after the start (adds, the default taken over): mirror = dump');

  // Change: one route removed, one added per family, one replaced (another device), default kept.
  const next: Plan = {
    ...V6,
    routes: [
      ...V6.routes.filter((r) => r.dst !== '192.168.2.0/24' && r.dst !== 'fd00:200::/64' && r.dst !== '172.16.10.0/24'),
      { dst: '172.16.10.0/24', dev: 'eth0' },
      { dst: '172.30.0.0/16', dev: 'eth1' },
      { dst: 'fd00:202::/64', dev: 'eth1' },
    ],
  };
  const r = await k.setPlan(next);
  t.equal(k.mirroredApplies, 1, 'the plan change trusted the mirror');
  t.same(r?.skipped, [], 'nothing skipped');
  t.same(r?.added.map((x) => x.dst).sort(), ['172.30.0.0/16', 'fd00:202::/64']);
  t.same(r?.removed.map((x) => x.dst).sort(), ['192.168.2.0/24', 'fd00:200::/64']);
  t.same(
    r?.replaced.map((x) => x.dst),
    ['172.16.10.0/24'],
  );
  t.ok(ours(routeLines(pod)).includes('172.16.10.0/24 dev eth0 proto 111'), 'the replace is in the kernel');
  await mirrorIsDump(t, k, pod.path, 'after the change: mirror = dump');
  // A dump-based apply of the same plan finds nothing to do: the mirror-based one was exact.
  const check = await applyPlan(pod.path, next);
  t.equal(check.changed, false, 'a fresh apply from a dump changes nothing');

  // Back to the first plan, through the mirror again.
  await k.setPlan(V6);
  t.equal(k.mirroredApplies, 2, 'the second change trusted the mirror too');
  await mirrorIsDump(t, k, pod.path, 'after the second change: mirror = dump');
  t.equal((await applyPlan(pod.path, V6)).changed, false, 'and the kernel holds the plan exactly');
});

t.test('a change that only adds and removes routes is written as its difference, with the same result', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  // Pod A through a keeper (the mirror, then the difference); pod B, its twin, through whole
  // applies that read the netns: the same writes must give the same result and tables.
  const { pod: a } = makePod(t);
  const { pod: b } = makePod(t);
  const plan0: Plan = {
    v: 1,
    routes: [
      { dst: '172.16.10.0/24', dev: 'eth1' },
      { dst: '10.96.0.0/12', dev: 'eth0', via: 'gateway' },
      { dst: '172.16.20.0/24', dev: 'eth1', via: '10.124.2.1', metric: 50 },
    ],
    default: { dev: 'eth1', via: '10.124.2.1' },
  };
  const next: Plan = {
    ...plan0,
    routes: [
      plan0.routes[1]!,
      plan0.routes[2]!,
      { dst: '172.16.30.0/24', dev: 'eth1', mtu: 1400 },
      { dst: '172.16.31.0/24', dev: 'eth0' },
      // A gateway reachable only through a route the same change adds, listed after it: the
      // routes without a gateway are written first, as a whole apply writes them.
      { dst: '172.16.40.0/24', dev: 'eth1', via: '10.50.0.1' },
      { dst: '10.50.0.0/24', dev: 'eth1' },
    ],
  };
  const saved: SavedDefault[] = [];
  const k = new RouteKeeper(a.path, plan0, { onReport: () => {}, debounceMs: 10, resyncMs: 0 });
  t.teardown(() => k.close());
  t.same((await k.start())?.skipped, [], 'the start wrote everything');
  await mirrorReady(k);
  const b0 = await applyPlan(b.path, plan0, { saveDefault: (s) => void saved.push(s) });
  const viaDelta = await k.setPlan(next);
  t.equal(k.deltaApplies, 1, 'the change was written as its difference');
  const whole = await applyPlan(b.path, next, { savedDefault: saved, reclaim: b0.owned });
  const comparable = (r: typeof whole | null | undefined): unknown => r && { ...r, netns: '' };
  t.same(comparable(viaDelta), comparable(whole), 'the same result as a whole apply that read the netns');
  t.same(ours(routeLines(a)), ours(routeLines(b)), 'the same routes in both netns');
  await mirrorIsDump(t, k, a.path, 'and the mirror equals a fresh dump');
  t.equal(
    (await applyPlan(a.path, next, { savedDefault: k.savedDefaults, reclaim: viaDelta!.owned })).changed,
    false,
    'a fresh apply changes nothing',
  );
  // A change the difference cannot say (a route changes device): the whole comparison.
  await mirrorReady(k);
  await k.setPlan({ ...next, routes: [...next.routes.slice(0, 3), { dst: '172.16.31.0/24', dev: 'eth1' }] });
  t.equal(k.deltaApplies, 1, 'a replace goes through the whole comparison');
  t.equal(k.mirroredApplies, 2, 'from the mirror all the same');
});

t.test('symmetric return paths (rules, a table of their own) through the mirror', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const sym: Plan = { ...MISSION_PLAN, symmetric: ['eth1'] };
  const k = new RouteKeeper(pod.path, sym, { onReport: () => {}, debounceMs: 10, resyncMs: 0 });
  t.teardown(() => k.close());
  const first = await k.start();
  t.ok((first?.symmetric?.added.length ?? 0) >= 2, 'the start wrote the rule and the table');
  await mirrorIsDump(t, k, pod.path, 'after the start: mirror = dump (rules and table included)');
  // Without the symmetric paths: the rule and the table's routes go, through the mirror.
  const r = await k.setPlan(MISSION_PLAN);
  t.equal(k.mirroredApplies, 1, 'the change trusted the mirror');
  t.ok((r?.symmetric?.removed.length ?? 0) >= 2, 'the rule and the table removed');
  await mirrorIsDump(t, k, pod.path, 'after removing them: mirror = dump');
  // And back.
  await k.setPlan(sym);
  t.equal(k.mirroredApplies, 2, 'the change back trusted the mirror');
  await mirrorIsDump(t, k, pod.path, 'after writing them again: mirror = dump');
  t.equal((await applyPlan(pod.path, sym)).changed, false, 'a fresh apply from a dump changes nothing');
});

t.test('anything but our own echoes ends the mirror: the next plan change reads the netns', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const k = new RouteKeeper(pod.path, MISSION_PLAN, { onReport: () => {}, debounceMs: 10, resyncMs: 0 });
  t.teardown(() => k.close());
  await k.start();
  await mirrorReady(k);

  // A foreign route nowhere near the plan (no reason to re-apply), seen as an event.
  pod.ip('route', 'add', '192.0.2.0/24', 'dev', 'eth0');
  await until('the foreign route event ended the mirror', () => k.mirrorView === null);
  const plan2: Plan = { ...MISSION_PLAN, routes: [...MISSION_PLAN.routes, { dst: '172.31.0.0/16', dev: 'eth1' }] };
  const r = await k.setPlan(plan2);
  t.equal(k.mirroredApplies, 0, 'the change after a foreign event read the netns');
  t.same(
    r?.added.map((x) => x.dst),
    ['172.31.0.0/16'],
  );
  await mirrorIsDump(t, k, pod.path, 'its reads (with the foreign route) are the new mirror');

  // An event the keeper has not read yet: made while this code holds the event loop, then a
  // plan change at once (its check of the socket runs before its first await). It must not
  // trust the mirror: the foreign route sits where the plan now wants ours.
  const plan3: Plan = { ...plan2, routes: [...plan2.routes, { dst: '198.51.100.0/24', dev: 'eth1' }] };
  execFileSync('ip', ['-n', pod.name, 'route', 'add', '198.51.100.0/24', 'dev', 'eth0']);
  const r3 = await k.setPlan(plan3);
  t.equal(k.mirroredApplies, 0, 'an unread event in the socket: the change read the netns');
  t.same(
    r3?.skipped.map((s) => [s.dst, s.reason]),
    [['198.51.100.0/24', 'collision']],
    'so it saw the foreign route at the new destination (the mirror would have added ours)',
  );
  t.ok(routeLines(pod).includes('198.51.100.0/24 dev eth0'), 'the foreign route is left alone');
});

t.test('the event socket counts what the kernel dropped and what is not read yet', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  let seen = 0;
  // The smallest receive buffer the kernel allows: a burst made while the event loop is held overflows it.
  const sub = subscribeNetns(pod.path, () => seen++, { recvBufferSize: 1 });
  t.teardown(() => sub.close());
  t.same(sub.queue(), { rmem: 0, drops: 0 }, 'nothing yet');
  const batch = Array.from({ length: 200 }, (_, i) => `route add 192.0.2.${i}/32 dev eth0`).join('\n') + '\n';
  execFileSync('ip', ['-n', pod.name, '-batch', '-'], { input: batch });
  const q = sub.queue();
  t.ok(q.rmem > 0, `events wait unread while the loop is held (${q.rmem} bytes)`);
  t.ok(q.drops > 0, `the overflow is counted (${q.drops} dropped)`);
  await until('the queued events are read', () => sub.queue().rmem === 0 && seen > 0);
  t.ok(seen < 200, `fewer than the 200 events were delivered (${seen}): the rest were dropped`);
  t.ok(sub.queue().drops >= q.drops, 'reading does not reset the drop count (it counts since the socket opened)');
});
