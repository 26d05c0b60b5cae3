// The route engine on the real kernel: the mission's target table, idempotence, plan
// changes, foreign routes, collisions, default route save/replace/restore, IPv6.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Plan } from '../../core/types.js';
import { RtnlClient } from '../../injector/kernel/netlink.js';
import { applyPlan, restoreDefault, RTPROT_OVNKUBE_ROUTE, type ApplyResult } from '../../injector/routes/engine.js';
import { SavedDefaultStore } from '../../injector/routes/saved.js';
import { makePod, MISSION_PLAN, MISSION_TABLE, routeLines } from '../util/netns.js';
import { rootUnavailable, tierGate } from '../util/tier.js';

const P = String(RTPROT_OVNKUBE_ROUTE);

const DEMO_PLAN = MISSION_PLAN;
const TARGET = MISSION_TABLE;

const dsts = (items: { dst: string }[]): string[] => items.map((i) => i.dst).sort();

t.test('the target table from the demo plan, read back two ways; a second apply changes nothing', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const before = routeLines(pod);
  const res = await applyPlan(pod.path, DEMO_PLAN);
  t.same(dsts(res.added), dsts(DEMO_PLAN.routes), 'every plan route added');
  t.same(res.skipped, []);
  t.ok(res.changed);
  t.same(routeLines(pod), TARGET, 'ip -j route shows exactly the target table');
  const c = RtnlClient.open(pod.path);
  t.teardown(() => c.close());
  const owned = (await c.listRoutes({ family: 4 })).filter((r) => r.protocol === RTPROT_OVNKUBE_ROUTE);
  t.same(
    owned.map((r) => `${r.dst}${r.via ? ` via ${r.via}` : ''} dev ${r.dev} scope ${r.scope}`).sort(),
    [
      '10.124.0.0/16 via 10.124.2.1 dev eth1 scope 0',
      '10.86.205.109/32 dev eth1 scope 253',
      '10.86.69.17/32 dev eth0 scope 253',
      '172.16.10.0/24 dev eth1 scope 253',
      '192.168.2.0/24 dev eth0 scope 253',
    ],
    'netlink: link routes are scope link, the gateway route scope universe',
  );
  t.ok(
    before.every((l) => routeLines(pod).includes(l)),
    'the CNI routes are untouched',
  );

  const again = await applyPlan(pod.path, DEMO_PLAN);
  t.notOk(again.changed, 'second apply: nothing changed');
  t.same([again.added, again.removed, again.replaced, again.restored], [[], [], [], []]);
  t.same(dsts(again.unchanged), dsts(DEMO_PLAN.routes));
  t.same(again.owned, dsts(DEMO_PLAN.routes), 'owned reports the routes of ours');
  t.same(routeLines(pod), TARGET);
});

t.test('plan changes apply the exact diff', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  await applyPlan(pod.path, DEMO_PLAN);
  const next: Plan = {
    v: 1,
    routes: [
      { dst: '10.86.69.17/32', dev: 'eth1' }, // moved to the other NIC
      { dst: '10.124.0.0/16', dev: 'eth1', via: '10.124.2.254' }, // new gateway
      { dst: '172.16.10.0/24', dev: 'eth1' }, // same
      { dst: '172.16.11.0/24', dev: 'eth0' }, // new
      // 10.86.205.109/32 and 192.168.2.0/24 dropped
    ],
  };
  const res = await applyPlan(pod.path, next);
  t.same(dsts(res.added), ['172.16.11.0/24']);
  t.same(dsts(res.removed), ['10.86.205.109/32', '192.168.2.0/24']);
  t.same(
    res.replaced.map((r) => `${r.dst} ${r.from.dev}${r.from.via ? ` ${r.from.via}` : ''} -> ${r.dev}${r.via ? ` ${r.via}` : ''}`).sort(),
    ['10.124.0.0/16 eth1 10.124.2.1 -> eth1 10.124.2.254', '10.86.69.17/32 eth0 -> eth1'],
  );
  t.same(dsts(res.unchanged), ['172.16.10.0/24']);
  t.same(routeLines(pod), [
    '10.124.0.0/16 via 10.124.2.254 dev eth1 proto ' + P,
    '10.124.2.0/24 dev eth1 proto kernel',
    '10.86.69.17 dev eth1 proto ' + P,
    '169.254.1.1 dev eth0',
    '172.16.10.0/24 dev eth1 proto ' + P,
    '172.16.11.0/24 dev eth0 proto ' + P,
    'default via 169.254.1.1 dev eth0',
  ]);
  const empty = await applyPlan(pod.path, { v: 1, routes: [] });
  t.equal(empty.removed.length, 4, 'an empty plan removes every route of ours');
  t.same(
    routeLines(pod),
    ['10.124.2.0/24 dev eth1 proto kernel', '169.254.1.1 dev eth0', 'default via 169.254.1.1 dev eth0'],
    'and only those: the CNI routes stay',
  );
});

t.test('foreign routes: never touched; equal ones count as in place; different ones are collisions', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  pod.ip('route', 'add', '172.16.10.0/24', 'dev', 'eth0', 'proto', 'static'); // in the way of the plan
  pod.ip('route', 'add', '192.168.2.0/24', 'dev', 'eth0', 'proto', 'static'); // exactly what the plan wants
  pod.ip('route', 'add', '10.200.0.0/16', 'dev', 'eth1', 'proto', 'static'); // unrelated
  const plan: Plan = { v: 1, routes: [...DEMO_PLAN.routes, { dst: '10.99.0.0/16', dev: 'eth1', via: '10.55.0.1' }] };
  const res = await applyPlan(pod.path, plan);
  const skipped = Object.fromEntries(res.skipped.map((s) => [s.dst, s.reason]));
  t.same(skipped, { '172.16.10.0/24': 'collision', '10.99.0.0/16': 'gateway-unreachable' });
  t.match(res.skipped.find((s) => s.dst === '172.16.10.0/24')?.detail, /foreign route is in the way: 172\.16\.10\.0\/24 dev eth0 proto 4/);
  t.ok(
    res.unchanged.some((u) => u.dst === '192.168.2.0/24'),
    'an equal foreign route is in place',
  );
  t.notOk(res.owned.includes('192.168.2.0/24'), 'but it is not ours');
  const lines = routeLines(pod);
  t.ok(lines.includes('172.16.10.0/24 dev eth0 proto static'), 'colliding foreign route kept');
  t.ok(lines.includes('192.168.2.0/24 dev eth0 proto static'), 'equal foreign route kept as it was');
  t.ok(lines.includes('10.200.0.0/16 dev eth1 proto static'), 'unrelated foreign route kept');
  await applyPlan(pod.path, { v: 1, routes: [] });
  t.same(routeLines(pod).filter((l) => l.includes('static')).length, 3, 'an empty plan deletes none of them');
});

t.test('an owned route changed with `ip route change` (protocol rewritten) is reclaimed', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const first = await applyPlan(pod.path, DEMO_PLAN);
  pod.ip('route', 'change', '172.16.10.0/24', 'dev', 'eth0');
  const plain = await applyPlan(pod.path, DEMO_PLAN);
  t.same(
    plain.skipped.map((s) => s.reason),
    ['collision'],
    'without history it looks like a foreign route',
  );
  const res = await applyPlan(pod.path, DEMO_PLAN, { reclaim: first.owned });
  t.same(
    res.replaced.map((r) => `${r.dst} ${r.from.dev} -> ${r.dev}`),
    ['172.16.10.0/24 eth0 -> eth1'],
  );
  t.same(routeLines(pod), TARGET);
});

t.test('default route: saved durably, replaced, restored after a restart', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const dir = mkdtempSync(join(tmpdir(), 'ovr-state-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const plan: Plan = { ...DEMO_PLAN, default: { dev: 'eth1', via: '10.124.2.1' } };
  let store = new SavedDefaultStore(dir, 'pod-a');
  const order: string[] = [];
  const res = await applyPlan(pod.path, plan, {
    savedDefault: store.load(),
    saveDefault: (s) => {
      order.push(`save: default is ${routeLines(pod).find((l) => l.startsWith('default'))}`);
      store.save(s);
    },
  });
  t.same(order, ['save: default is default via 169.254.1.1 dev eth0'], 'saved while the original was still in place');
  t.same(
    res.replaced.map((r) => `${r.dst} ${r.from.dev} ${r.from.via} -> ${r.dev} ${r.via}`),
    ['0.0.0.0/0 eth0 169.254.1.1 -> eth1 10.124.2.1'],
  );
  t.ok(routeLines(pod).includes('default via 10.124.2.1 dev eth1 proto ' + P));
  t.equal(routeLines(pod).filter((l) => l.startsWith('default')).length, 1, 'replaced, not added beside');
  t.same(readdirSync(dir), ['pod-a.default-v4.json']);
  const again = await applyPlan(pod.path, plan, {
    savedDefault: store.load(),
    saveDefault: () => {
      t.fail('must not save again');
    },
  });
  t.notOk(again.changed, 'idempotent with the default route too');

  // "Restart": a new store object reads the file back; the plan no longer sets a default.
  store = new SavedDefaultStore(dir, 'pod-a');
  const saved = store.load();
  t.same(saved, [{ family: 4, route: { dev: 'eth0', via: '169.254.1.1', protocol: 3, scope: 0, priority: 0 } }]);
  const back = await applyPlan(pod.path, DEMO_PLAN, { savedDefault: saved, forgetDefault: (f) => store.forget(f) });
  t.same(
    back.restored.map((r) => `${r.dst} ${r.dev} ${r.via}`),
    ['0.0.0.0/0 eth0 169.254.1.1'],
  );
  t.same(routeLines(pod), TARGET, 'the original default route is back, exactly (protocol too)');
  t.same(readdirSync(dir), [], 'and the saved copy is forgotten');
});

t.test('default route: a save that fails leaves the original in place', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const res = await applyPlan(
    pod.path,
    { v: 1, routes: [], default: { dev: 'eth1', via: '10.124.2.1' } },
    {
      saveDefault: () => {
        throw new Error('disk full');
      },
    },
  );
  t.same(
    res.skipped.map((s) => s.reason),
    ['error'],
  );
  t.match(res.skipped[0]?.detail, /could not be saved.*disk full/);
  t.ok(routeLines(pod).includes('default via 169.254.1.1 dev eth0'));
});

t.test('default route: none before ours, so restoring removes ours; without a saved copy ours stays', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  pod.ip('route', 'del', 'default');
  let saved: { family: 4 | 6; route: null }[] = [];
  const res = await applyPlan(
    pod.path,
    { v: 1, routes: [], default: { dev: 'eth0', via: '169.254.1.1' } },
    {
      saveDefault: (s) => {
        saved = [s as { family: 4; route: null }];
      },
    },
  );
  t.same(dsts(res.added), ['0.0.0.0/0']);
  t.same(saved, [{ family: 4, route: null }]);
  const lost = await applyPlan(pod.path, { v: 1, routes: [] });
  t.same(
    lost.skipped.map((s) => s.reason),
    ['default-not-restorable'],
    'state lost: reported, ours left in place',
  );
  t.ok(routeLines(pod).includes('default via 169.254.1.1 dev eth0 proto ' + P));
  const c = RtnlClient.open(pod.path);
  t.teardown(() => c.close());
  const r = await restoreDefault(c, saved);
  t.same(dsts(r.removed), ['0.0.0.0/0'], 'restoreDefault removes ours when there was none');
  t.notOk(routeLines(pod).some((l) => l.startsWith('default')));
});

t.test('IPv6 routes, a v6 default route, idempotence', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t, { ipv6: true });
  const plan: Plan = {
    v: 1,
    routes: [
      { dst: '10.86.69.17/32', dev: 'eth0' },
      { dst: '2001:db8:86::/64', dev: 'eth1' },
      { dst: '2001:db8:124::/48', dev: 'eth1', via: 'fd00:124::1' },
      { dst: 'fd00:86::1/128', dev: 'eth0' },
    ],
    default: { dev: 'eth1', via: 'fd00:124::1' },
  };
  const saved: unknown[] = [];
  const res = await applyPlan(pod.path, plan, {
    saveDefault: (s) => {
      saved.push(s);
    },
  });
  t.same(res.skipped, []);
  t.same(dsts(res.added), ['10.86.69.17/32', '2001:db8:124::/48', '2001:db8:86::/64', '::/0', 'fd00:86::1/128']);
  t.same(saved, [{ family: 6, route: null }], 'there was no v6 default before');
  const v6 = routeLines(pod, 6);
  for (const l of [
    '2001:db8:86::/64 dev eth1 proto ' + P,
    '2001:db8:124::/48 via fd00:124::1 dev eth1 proto ' + P,
    'fd00:86::1 dev eth0 proto ' + P,
    'default via fd00:124::1 dev eth1 proto ' + P,
  ])
    t.ok(v6.includes(l), `ip -6 shows ${l}`);
  t.ok(routeLines(pod).includes('default via 169.254.1.1 dev eth0'), 'the v4 default is not touched by a v6 default');
  const again = await applyPlan(pod.path, plan, { savedDefault: saved as never });
  t.notOk(again.changed, 'second apply changes nothing (IPv6 scope reads back as universe)');
  const back = await applyPlan(pod.path, { v: 1, routes: plan.routes }, { savedDefault: saved as never });
  t.same(dsts(back.removed), ['::/0'], 'dropping the v6 default removes ours (there was none)');
});

t.test('a dev that is missing is skipped and reported; the rest is applied', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t, { eth1: false });
  const res: ApplyResult = await applyPlan(pod.path, DEMO_PLAN);
  t.same(dsts(res.added), ['10.86.69.17/32', '192.168.2.0/24']);
  t.same(res.skipped.map((s) => `${s.dst} ${s.reason}`).sort(), [
    '10.124.0.0/16 dev-missing',
    '10.86.205.109/32 dev-missing',
    '172.16.10.0/24 dev-missing',
  ]);
});

// Issue #16, defect 2: what matters is where the kernel sends the traffic. A foreign route
// that takes precedence over ours leaves ours in the table; it must be reported.
t.test('a foreign route that overrides ours is reported as a collision, and ours is in effect again once it goes', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t, { ipv6: true });
  const plan: Plan = { v: 1, routes: [...DEMO_PLAN.routes, { dst: 'fd00:99::/64', dev: 'eth1' }] };
  const first = await applyPlan(pod.path, plan);
  t.same(first.skipped, [], 'all in effect at first');

  // IPv4: `ip route prepend` puts a foreign route of the same dst and metric before ours.
  pod.ip('route', 'prepend', '172.16.10.0/24', 'dev', 'eth0');
  // IPv6: a foreign route with a lower metric than ours (1024).
  pod.ip('-6', 'route', 'add', 'fd00:99::/64', 'dev', 'eth0', 'metric', '100');
  // Not a collision: a foreign route that loses (higher metric).
  pod.ip('route', 'add', '192.168.2.0/24', 'dev', 'eth1', 'metric', '500');
  const res = await applyPlan(pod.path, plan);
  t.same(res.skipped.map((s) => `${s.dst} ${s.reason}`).sort(), ['172.16.10.0/24 collision', 'fd00:99::/64 collision']);
  t.match(
    res.skipped.find((s) => s.dst === '172.16.10.0/24')?.detail,
    /^our route is in the table but traffic to 172\.16\.10\.0 takes 172\.16\.10\.0\/24 dev eth0 proto 3 metric 0$/,
  );
  t.match(res.skipped.find((s) => s.dst === 'fd00:99::/64')?.detail, /takes fd00:99::\/64 dev eth0 proto 3 metric 100$/);
  t.ok(routeLines(pod).includes(`172.16.10.0/24 dev eth1 proto ${P}`), 'ours is still in the table (not forced over the foreign one)');
  t.notOk(res.changed, 'nothing rewritten');

  pod.ip('route', 'del', '172.16.10.0/24', 'dev', 'eth0');
  pod.ip('-6', 'route', 'del', 'fd00:99::/64', 'dev', 'eth0', 'metric', '100');
  const after = await applyPlan(pod.path, plan);
  t.same(after.skipped, [], 'in effect again once the foreign routes are gone');
});

// Issue #16, defect 2 remainder: a more specific foreign route inside one of our
// destinations takes part of its traffic whatever the metric (longest prefix wins).
t.test('a more specific foreign route to another device inside ours is a collision; one to the same device is not', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t, { ipv6: true });
  const plan: Plan = { v: 1, routes: [...DEMO_PLAN.routes, { dst: 'fd00:99::/64', dev: 'eth1' }] };
  t.same(
    (await applyPlan(pod.path, plan)).skipped,
    [],
    'all in effect at first (10.124.2.0/24 dev eth1 inside 10.124.0.0/16 via eth1 is no collision)',
  );

  pod.ip('route', 'add', '172.16.10.128/25', 'dev', 'eth0'); // part of 172.16.10.0/24 -> eth0
  pod.ip('route', 'add', 'blackhole', '192.168.2.64/26'); // part of 192.168.2.0/24 dropped
  pod.ip('-6', 'route', 'add', 'fd00:99::/80', 'dev', 'eth0'); // part of fd00:99::/64 -> eth0
  pod.ip('route', 'add', '10.124.7.0/24', 'via', '10.124.2.9', 'dev', 'eth1'); // same device: steers nothing away
  const res = await applyPlan(pod.path, plan);
  t.same(res.skipped.map((s) => `${s.dst} ${s.reason}`).sort(), [
    '172.16.10.0/24 collision',
    '192.168.2.0/24 collision',
    'fd00:99::/64 collision',
  ]);
  t.match(
    res.skipped.find((s) => s.dst === '172.16.10.0/24')?.detail,
    /part of its traffic takes a more specific route: 172\.16\.10\.128\/25 dev eth0 proto 3/,
  );
  t.match(res.skipped.find((s) => s.dst === '192.168.2.0/24')?.detail, /192\.168\.2\.64\/26 proto 3 metric 0 type BLACKHOLE/);
  t.notOk(res.changed, 'nothing rewritten, nothing foreign touched');
  t.ok(
    routeLines(pod).some((l) => l.startsWith('172.16.10.128/25 dev eth0')),
    'the foreign route stays',
  );
  t.ok(routeLines(pod).includes(`172.16.10.0/24 dev eth1 proto ${P}`), 'ours stays');

  pod.ip('route', 'del', '172.16.10.128/25', 'dev', 'eth0');
  pod.ip('route', 'del', 'blackhole', '192.168.2.64/26');
  pod.ip('-6', 'route', 'del', 'fd00:99::/80', 'dev', 'eth0');
  t.same((await applyPlan(pod.path, plan)).skipped, [], 'in effect again once they are gone');
});
