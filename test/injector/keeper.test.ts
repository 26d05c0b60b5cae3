// RouteKeeper on the real kernel: a dev that appears later, drift restored through route
// events, back-off against a fighter, and a netns that vanishes (mid-apply and later).
import t from 'tap';
import type { Plan } from '../../core/types.js';
import { isNetnsError } from '../../injector/kernel/netns.js';
import { applyPlan, RTPROT_OVNKUBE_ROUTE } from '../../injector/routes/engine.js';
import { RouteKeeper, type KeeperReport } from '../../injector/routes/keeper.js';
import { addEth1, makePod, MISSION_PLAN, openFds, routeLines } from '../util/netns.js';
import { rootUnavailable, tierGate } from '../util/tier.js';

const P = String(RTPROT_OVNKUBE_ROUTE);
const PLAN = MISSION_PLAN;

/** Collects a keeper's reports and lets a test wait for one that matches. */
function recorder() {
  const reports: KeeperReport[] = [];
  const waiters: (() => void)[] = [];
  return {
    reports,
    onReport: (r: KeeperReport) => {
      reports.push(r);
      for (const w of waiters.splice(0)) w();
    },
    async next(pred: (r: KeeperReport) => boolean, from = 0): Promise<KeeperReport> {
      for (;;) {
        const hit = reports.slice(from).find(pred);
        if (hit) return hit;
        await new Promise<void>((r) => waiters.push(r));
      }
    },
  };
}

t.test('a dev missing at first is applied when it appears (link event)', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const p = makePod(t, { eth1: false });
  const rec = recorder();
  const k = new RouteKeeper(p.pod.path, PLAN, { onReport: rec.onReport, debounceMs: 20, resyncMs: 0 });
  t.teardown(() => k.close());
  const first = await k.start();
  t.same(
    first?.skipped.map((s) => s.reason),
    ['dev-missing', 'dev-missing', 'dev-missing'],
  );
  const mark = rec.reports.length;
  addEth1(p);
  const r = await rec.next((x) => x.kind === 'applied' && x.result.added.length > 0, mark);
  t.equal(r.kind === 'applied' && r.trigger, 'event', 'applied because of the link event, not a timer');
  t.same(r.kind === 'applied' && r.result.added.map((a) => a.dst).sort(), ['10.124.0.0/16', '10.86.205.109/32', '172.16.10.0/24']);
  t.ok(routeLines(p.pod).includes('10.124.0.0/16 via 10.124.2.1 dev eth1 proto ' + P));
});

t.test('drift: deleted and changed owned routes are restored', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const rec = recorder();
  const k = new RouteKeeper(pod.path, PLAN, { onReport: rec.onReport, debounceMs: 20, resyncMs: 0 });
  t.teardown(() => k.close());
  await k.start();
  const want = routeLines(pod);

  let mark = rec.reports.length;
  pod.ip('route', 'del', '172.16.10.0/24');
  let r = await rec.next((x) => x.kind === 'applied' && x.drift, mark);
  t.same(r.kind === 'applied' && r.result.added.map((a) => a.dst), ['172.16.10.0/24'], 'deleted route added back');
  t.same(routeLines(pod), want);

  mark = rec.reports.length;
  pod.ip('route', 'change', '192.168.2.0/24', 'dev', 'eth1'); // rewrites the protocol to boot
  r = await rec.next((x) => x.kind === 'applied' && x.drift, mark);
  t.same(
    r.kind === 'applied' && r.result.replaced.map((a) => `${a.dst} ${a.from.dev} -> ${a.dev}`),
    ['192.168.2.0/24 eth1 -> eth0'],
    'a changed route of ours is put back, though its protocol was rewritten',
  );
  t.same(routeLines(pod), want);

  mark = rec.reports.length;
  pod.ip('route', 'add', '10.250.0.0/16', 'dev', 'eth0', 'proto', 'static');
  await k.setPlan(PLAN); // a quiet point to compare against
  t.ok(routeLines(pod).includes('10.250.0.0/16 dev eth0 proto static'), 'unrelated foreign routes are no drift');
});

t.test('drift: a fighter makes the keeper back off, then it restores once the fight stops', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  let fight = true;
  let restores = 0;
  const rec = recorder();
  const k = new RouteKeeper(pod.path, PLAN, {
    debounceMs: 10,
    resyncMs: 0,
    maxRestores: 3,
    windowMs: 60_000,
    backoffInitialMs: 200,
    backoffMaxMs: 400,
    onReport: (r) => {
      if (r.kind === 'applied' && r.drift) {
        restores++;
        if (fight) pod.ip('route', 'del', '172.16.10.0/24'); // undo the keeper's work at once
      }
      rec.onReport(r);
    },
  });
  t.teardown(() => k.close());
  await k.start();
  pod.ip('route', 'del', '172.16.10.0/24');
  const b = await rec.next((x) => x.kind === 'backoff');
  t.equal(restores, 4, 'back-off starts after maxRestores + 1 restores in the window');
  t.same(b, { kind: 'backoff', delayMs: 200, restoresInWindow: 4 });
  const b2 = await rec.next((x) => x.kind === 'backoff' && x.delayMs > 200);
  t.equal(b2.kind === 'backoff' && b2.delayMs, 400, 'the delay doubles, up to the cap');
  fight = false;
  const mark = rec.reports.length;
  await rec.next((x) => x.kind === 'applied' && x.drift, mark);
  t.ok(routeLines(pod).includes('172.16.10.0/24 dev eth1 proto ' + P), 'restored in the end');
});

t.test('a netns deleted in the middle of an apply: typed error, no crash, no leaked fd', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const fds = openFds();
  const many: Plan = {
    v: 1,
    routes: Array.from({ length: 500 }, (_, i) => ({ dst: `10.${100 + Math.floor(i / 250)}.${i % 250}.0/24`, dev: 'eth1' })),
    default: { dev: 'eth1', via: '10.124.2.1' },
  };
  // saveDefault runs mid-apply (after the routes, before the default route): delete the netns there.
  const err = await applyPlan(pod.path, many, {
    saveDefault: () => {
      pod.del();
    },
  }).catch((e: unknown) => e);
  t.ok(isNetnsError(err, 'gone'), `NetnsError gone: ${String(err)}`);
  t.match((err as Error).message, /vanished during the apply \(500 added/);
  t.equal(openFds(), fds, 'every fd closed (the socket kept the dying netns alive until then)');
  const again = await applyPlan(pod.path, many).catch((e: unknown) => e);
  t.ok(isNetnsError(again, 'gone'), 'applying to it afterwards: gone at once');
});

t.test('a keeper whose netns vanishes reports gone and stops', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const fds = openFds();
  const rec = recorder();
  const k = new RouteKeeper(pod.path, PLAN, { onReport: rec.onReport, debounceMs: 10, resyncMs: 50 });
  await k.start();
  pod.del();
  const g = await rec.next((x) => x.kind === 'gone');
  t.equal(g.kind === 'gone' && g.error.code, 'gone');
  t.equal(openFds(), fds, 'the event socket is closed too');
  t.equal(await k.setPlan(PLAN), null, 'a closed keeper does nothing');
});

t.test("the echoes of the keeper's own writes are no reason to apply again; drift still is", async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const rec = recorder();
  const k = new RouteKeeper(pod.path, PLAN, { onReport: rec.onReport, debounceMs: 20, resyncMs: 0 });
  t.teardown(() => k.close());
  const waitFor = async (what: string, cond: () => boolean): Promise<void> => {
    const deadline = Date.now() + 30_000;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`${what}: not so after 30 s`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const first = await k.start();
  t.equal(first?.added.length, 5);
  await waitFor('the 5 route events of the start are recognised as echoes', () => k.echoesIgnored === 5);
  await k.setPlan({ ...PLAN, routes: [...PLAN.routes, { dst: '172.16.20.0/24', dev: 'eth1' }] });
  await waitFor("the plan change's one write is recognised as an echo", () => k.echoesIgnored === 6);
  const mark = rec.reports.length;
  pod.ip('route', 'del', '172.16.20.0/24');
  const r = await rec.next((x) => x.kind === 'applied' && x.trigger === 'event', mark);
  t.same(r.kind === 'applied' && r.result.added.map((a) => a.dst), ['172.16.20.0/24'], 'a deletion by someone else is repaired');
  t.same(
    rec.reports.map((x) => (x.kind === 'applied' ? `${x.trigger}${x.drift ? ' drift' : ''}` : x.kind)),
    ['start', 'plan', 'event drift'],
    "no apply was made for the echoes of the keeper's own writes",
  );
});
