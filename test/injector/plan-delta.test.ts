// A plan change written as its difference (planDelta) must be exactly what the whole
// comparison (resolveGateways + diffRoutes, then the effective-route check) would write and
// report, whenever planDelta answers at all. Checked here on 6000 random changes of random
// plans applied to random tables (foreign routes in the way, overlapping prefixes, gateways,
// metrics, missing devices, a default route taken over), and on hand-written cases where it
// must decline. On the real kernel: keeper-mirror.test.ts.
import t from 'tap';
import { kernelRoute, LINKS } from '../util/kernel-routes.js';
import { rng } from '../util/rng.js';
import type { Plan, PlanRoute } from '../../core/types.js';
import type { KernelRoute } from '../../injector/kernel/netlink-codec.js';
import {
  diffRoutes,
  itemOf,
  itemOfDesired,
  lookupProof,
  moreSpecificOverrides,
  planDelta,
  resolveGateways,
  type DesiredRoute,
  type PreviousApply,
  type RouteItem,
  type SavedDefault,
} from '../../injector/routes/diff.js';

const OURS = 111;
const kr = kernelRoute;
const CNI: KernelRoute[] = [
  kr('0.0.0.0/0', 'eth0', { via: '169.254.1.1', scope: 0, protocol: 4 }),
  kr('169.254.1.1/32', 'eth0', { protocol: 4 }),
  kr('10.124.2.0/24', 'eth1', { protocol: 2 }),
  kr('fd00:124:2::/64', 'eth1', { protocol: 2, scope: 0, priority: 256 }),
  kr('127.0.0.0/8', 'lo', { table: 255, type: 'LOCAL', scope: 254, protocol: 2 }),
];
/** The kernel route an apply of ours writes for `d`. */
const ours = (d: DesiredRoute): KernelRoute =>
  kr(d.dst, d.dev, {
    protocol: OURS,
    scope: d.scope,
    priority: d.metric ?? (d.family === 6 ? 1024 : 0),
    ...(d.via !== undefined ? { via: d.via } : {}),
    ...(d.src !== undefined ? { prefsrc: d.src } : {}),
    ...(d.mtu !== undefined ? { mtu: d.mtu } : {}),
    ...(d.advmss !== undefined ? { advmss: d.advmss } : {}),
  });
const main = (all: readonly KernelRoute[]): KernelRoute[] => all.filter((k) => k.table === 254);

/** Apply `plan` to `before` as the engine's whole comparison would (no failures): the table after and the result. */
function applyWhole(
  plan: Plan,
  before: KernelRoute[],
  owned: string[] = [],
): { after: KernelRoute[]; prev: PreviousApply; saved: SavedDefault[] } {
  const saved: SavedDefault[] = [];
  const gw = resolveGateways(plan, main(before), LINKS, OURS);
  const diff = diffRoutes({ plan: gw.plan, table: main(before), links: LINKS, protocol: OURS, saved: [], reclaim: new Set(owned) });
  let after = before.filter((k) => !diff.remove.includes(k) && !diff.replace.some((r) => r.have === k));
  const added: RouteItem[] = diff.add.map(itemOfDesired);
  const replaced = diff.replace.map(({ want, have }) => ({ ...itemOfDesired(want), from: { ...itemOf(have), protocol: have.protocol } }));
  const unchanged: RouteItem[] = diff.unchanged.map(itemOfDesired);
  const own = [...diff.ownedKept, ...diff.add.map((d) => d.dst), ...diff.replace.map((r) => r.want.dst)];
  after.push(...diff.add.map(ours), ...diff.replace.map((r) => ours(r.want)));
  const skipped = [...gw.skipped, ...diff.skipped];
  for (const a of diff.defaults) {
    if (a.kind === 'take-over') {
      const r = a.replacing;
      saved.push({
        family: a.want.family,
        route: r ? { dev: r.dev!, ...(r.via ? { via: r.via } : {}), protocol: r.protocol, scope: r.scope, priority: r.priority } : null,
      });
      if (a.replacing) {
        after = after.filter((k) => k !== a.replacing);
        replaced.push({ ...itemOfDesired(a.want), from: { ...itemOf(a.replacing), protocol: a.replacing.protocol } });
      } else added.push(itemOfDesired(a.want));
      after.push(ours(a.want));
      own.push(a.want.dst);
    } else if (a.kind === 'unchanged') {
      unchanged.push(itemOfDesired(a.want));
      if (a.owned) own.push(a.want.dst);
    } else if (a.kind === 'skip') skipped.push(a.item);
    else
      return {
        after,
        saved,
        prev: { plan, result: { added, replaced, unchanged, restored: [{ family: 4, dst: 'x' }], skipped, owned: own } },
      };
  }
  return { after, saved, prev: { plan, result: { added, replaced, unchanged, restored: [], skipped, owned: own.sort() } } };
}

const POOL = [
  ...Array.from({ length: 40 }, (_, i) => `172.16.${i}.0/24`),
  ...Array.from({ length: 12 }, (_, i) => `fd00:${i + 1}::/64`),
  '172.16.0.0/16',
  '10.96.0.0/12',
  '10.96.0.10/32',
  '10.1.0.0/16',
  '10.124.2.0/24',
  '169.254.1.1/32',
  'fd00:1::/48',
];

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

function randomRoute(r: (n: number) => number, dst: string): PlanRoute {
  const six = dst.includes(':');
  const dev = r(16) === 0 ? 'eth9' : r(3) === 0 ? 'eth0' : 'eth1';
  const route: PlanRoute = { dst, dev };
  const v = r(8);
  if (v === 0) route.via = six ? 'fd00:124:2::1' : dev === 'eth0' ? '169.254.1.1' : '10.124.2.1';
  if (v === 1) route.via = 'gateway';
  if (r(8) === 0) route.metric = 100 + r(3);
  if (r(8) === 0) route.mtu = 1400;
  return route;
}

t.test('6000 random changes: planDelta is the whole comparison whenever it answers', async (t) => {
  const r = rng(20261201);
  let answered = 0;
  let declined = 0;
  let failures = 0;
  for (let i = 0; i < 6000; i++) {
    // The table before the last apply: the CNI's, and foreign routes at some destinations.
    const before = [...CNI];
    for (let k = r(4) === 0 ? 1 + r(2) : 0; k > 0; k--) {
      const dst = POOL[r(POOL.length)]!;
      if (!before.some((x) => x.dst === dst))
        before.push(kr(dst, r(2) ? 'eth0' : 'eth1', { protocol: 4, priority: dst.includes(':') ? 1024 : 0 }));
    }
    const picked = [...new Set(Array.from({ length: 3 + r(6) }, () => POOL[r(POOL.length)]!))];
    const plan0: Plan = { v: 1, routes: picked.map((d) => randomRoute(r, d)) };
    if (r(3) === 0) plan0.default = { dev: 'eth1', via: '10.124.2.1' };
    const { after, prev, saved } = applyWhole(plan0, before);
    // The change: routes kept, dropped, altered; new ones; the default kept or not.
    const next: Plan = { v: 1, routes: [] };
    for (const route of plan0.routes) {
      const c = r(10);
      if (c < 7) next.routes.push(route);
      else if (c === 7) next.routes.push({ ...route, dev: route.dev === 'eth0' ? 'eth1' : 'eth0' });
    }
    for (let k = r(4); k > 0; k--) {
      const dst = POOL[r(POOL.length)]!;
      if (!next.routes.some((x) => x.dst === dst)) next.routes.push(randomRoute(r, dst));
    }
    if (plan0.default && r(5) > 0) next.default = plan0.default;
    else if (!plan0.default && r(10) === 0) next.default = { dev: 'eth0', via: '169.254.1.1' };

    const d = planDelta(prev, next, after, LINKS, OURS);
    // Frozen plans (the agent's: decodeSignedPlan's) have the plans' part of the answer
    // remembered per pair: asked twice, the answer is that of unfrozen copies.
    const f0 = deepFreeze(structuredClone(prev.plan));
    const f1 = deepFreeze(structuredClone(next));
    const again = [planDelta({ ...prev, plan: f0 }, f1, after, LINKS, OURS), planDelta({ ...prev, plan: f0 }, f1, after, LINKS, OURS)];
    if (again.some((x) => JSON.stringify(x) !== JSON.stringify(d))) {
      failures++;
      if (failures <= 5) t.fail(`case ${i}: frozen plans answered otherwise`);
    }
    if (!d) {
      declined++;
      continue;
    }
    answered++;
    const gw = resolveGateways(next, main(after), LINKS, OURS, saved);
    const whole = diffRoutes({
      plan: gw.plan,
      table: main(after),
      links: LINKS,
      protocol: OURS,
      saved,
      reclaim: new Set(prev.result.owned),
    });
    const defaults = whole.defaults.filter((a) => a.kind !== 'forget');
    const problems: string[] = [];
    const same = (what: string, a: unknown, b: unknown): void => {
      if (JSON.stringify(a) !== JSON.stringify(b)) problems.push(`${what}: delta ${JSON.stringify(a)}, whole ${JSON.stringify(b)}`);
    };
    same('gateway skips', [], gw.skipped);
    same('replaced', [], whole.replace);
    same('skipped', [], whole.skipped);
    same(
      'default actions',
      [],
      defaults.filter((a) => a.kind !== 'unchanged'),
    );
    same('added', d.add, whole.add);
    same('removed', d.remove, whole.remove);
    const wholeUnchanged = [
      ...whole.unchanged.map(itemOfDesired),
      ...defaults.flatMap((a) => (a.kind === 'unchanged' ? [itemOfDesired(a.want)] : [])),
    ];
    same('in place', d.unchanged, wholeUnchanged);
    const wholeOwned = [...whole.ownedKept, ...defaults.flatMap((a) => (a.kind === 'unchanged' && a.owned ? [a.want.dst] : []))].sort();
    same('owned', [...d.ownedKept].sort(), wholeOwned);
    // The effective-route check of the routes that stay answers as before the change: the
    // delta checks only the new routes.
    const changed = [...after.filter((k) => !d.remove.includes(k)), ...d.add.map(ours)];
    const proofBefore = lookupProof(after, OURS);
    const proofAfter = lookupProof(changed, OURS);
    const overridesAfter = moreSpecificOverrides(main(changed), OURS);
    for (const route of gw.plan.routes) {
      if (d.add.some((x) => x.dst === route.dst)) continue;
      if (proofBefore(route) !== proofAfter(route)) problems.push(`the proof for ${route.dst} changed`);
      if (overridesAfter(route).length !== moreSpecificOverrides(main(after), OURS)(route).length)
        problems.push(`overrides of ${route.dst} changed`);
    }
    if (problems.length) {
      failures++;
      if (failures <= 5) t.fail(`case ${i}: ${problems.join('; ')}\n  plan0 ${JSON.stringify(plan0)}\n  next ${JSON.stringify(next)}`);
    }
  }
  t.equal(failures, 0, `no difference in ${answered} changes answered as a difference (${declined} declined)`);
  t.ok(answered >= 500 && declined >= 500, `both paths taken often: ${answered} answered, ${declined} declined`);
});

t.test('it declines what only the whole comparison can say', async (t) => {
  const base: Plan = {
    v: 1,
    routes: [
      { dst: '172.16.1.0/24', dev: 'eth1' },
      { dst: '172.16.2.0/24', dev: 'eth1', via: '10.124.2.1' },
    ],
  };
  const { after, prev } = applyWhole(base, [...CNI]);
  const change = (routes: PlanRoute[], extra: Partial<Plan> = {}): Plan => ({ v: 1, routes, ...extra });
  const ok = planDelta(prev, change([...base.routes, { dst: '172.16.3.0/24', dev: 'eth0' }]), after, LINKS, OURS);
  t.same(
    ok?.add.map((d) => d.dst),
    ['172.16.3.0/24'],
    'a plain add is answered',
  );
  const cases: [string, Plan, KernelRoute[]?, PreviousApply?][] = [
    ['nothing changes (the whole check is as cheap)', base],
    ['a route changes device (a replace)', change([{ dst: '172.16.1.0/24', dev: 'eth0' }, base.routes[1]!])],
    ['a route changes metric', change([{ ...base.routes[0]!, metric: 5 }, base.routes[1]!])],
    ['an added route via gateway', change([...base.routes, { dst: '172.16.3.0/24', dev: 'eth1', via: 'gateway' }])],
    ['an added route on a missing device', change([...base.routes, { dst: '172.16.3.0/24', dev: 'eth7' }])],
    ['an added route where a foreign one is', change([...base.routes, { dst: '10.124.2.0/24', dev: 'eth0' }])],
    ['an added route inside a plan route', change([...base.routes, { dst: '172.16.1.128/25', dev: 'eth0' }])],
    ['an added route around a plan route', change([...base.routes, { dst: '172.16.0.0/16', dev: 'eth0' }])],
    ['a default route appears', change(base.routes, { default: { dev: 'eth1', via: '10.124.2.1' } })],
    ['a plan route to a default destination', change([...base.routes, { dst: '0.0.0.0/0', dev: 'eth1', via: '10.124.2.1' }])],
    ['symmetric return paths', change(base.routes, { symmetric: ['eth1'] })],
    ['a destination twice', change([...base.routes, { dst: '172.16.3.0/24', dev: 'eth0' }, { dst: '172.16.3.0/24', dev: 'eth1' }])],
    [
      'a removed destination someone else holds too',
      change([base.routes[1]!]),
      [...after, kr('172.16.1.0/24', 'eth0', { protocol: 4, priority: 5 })],
    ],
    [
      'the last apply skipped something',
      change([...base.routes, { dst: '172.16.3.0/24', dev: 'eth0' }]),
      undefined,
      { ...prev, result: { ...prev.result, skipped: [{ family: 4, dst: '172.16.9.0/24', reason: 'collision', detail: 'x' }] } },
    ],
  ];
  for (const [what, plan, table, p] of cases) t.equal(planDelta(p ?? prev, plan, table ?? after, LINKS, OURS), null, what);

  // One pair of frozen plans (its plans' part remembered) asked about with tables and last
  // results that decide otherwise: each answer is that of its own table and result.
  const p0 = deepFreeze(structuredClone(base));
  const p1 = deepFreeze(change([...base.routes, { dst: '172.16.3.0/24', dev: 'eth0' }]));
  const from = { ...prev, plan: p0 };
  const skippedBefore: PreviousApply = {
    ...from,
    result: { ...prev.result, skipped: [{ family: 4 as const, dst: '172.16.9.0/24', reason: 'collision', detail: 'x' }] },
  };
  for (let round = 0; round < 2; round++) {
    t.same(
      planDelta(from, p1, after, LINKS, OURS)?.add.map((d) => d.dst),
      ['172.16.3.0/24'],
      `round ${round}: answered`,
    );
    t.equal(
      planDelta(from, p1, [...after, kr('172.16.3.0/24', 'eth1', { protocol: 4 })], LINKS, OURS),
      null,
      `round ${round}: a foreign route at the added destination`,
    );
    t.equal(planDelta(skippedBefore, p1, after, LINKS, OURS), null, `round ${round}: the last apply skipped something`);
    t.equal(
      planDelta(
        from,
        p1,
        after,
        LINKS.filter((l) => l.name !== 'eth0'),
        OURS,
      ),
      null,
      `round ${round}: the added route's device is gone`,
    );
  }
});
