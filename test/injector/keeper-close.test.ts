// RouteKeeper.close() racing its own applies, on the real kernel. close() is what the agent
// calls when a pod is released, its sandbox replaced or the agent stops; whatever the keeper
// is doing at that moment, close() must leave no fd open, and the keeper must write nothing
// and report nothing afterwards. Each test forces one interleaving: close before start,
// close while the first apply is in flight, close from inside an apply (mid-write), and
// close while an event-triggered apply (drift repair) is in flight.
import { setImmediate as nextTurn } from 'node:timers/promises';
import t from 'tap';
import type { Plan } from '../../core/types.js';
import { RouteKeeper, type KeeperReport } from '../../injector/routes/keeper.js';
import { fdsOpenedSince, fdTable, makePod, MISSION_PLAN, onFirstCall, routeLines } from '../util/netns.js';
import { rootUnavailable, tierGate } from '../util/tier.js';

const WITH_DEFAULT: Plan = { ...MISSION_PLAN, default: { dev: 'eth1', via: '10.124.2.1' } };
const ours = (lines: string[]): string[] => lines.filter((l) => l.endsWith('proto 111'));

/** Check `cond` once per event-loop turn (after the poll phase, setImmediate) until it holds. */
async function everyTurnUntil(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: still not so after ${ms} ms`);
    await nextTurn();
  }
}

t.test('close() before start(): start() opens nothing and applies nothing', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const before = fdTable();
  const reports: KeeperReport[] = [];
  const k = new RouteKeeper(pod.path, MISSION_PLAN, { onReport: (r) => reports.push(r), debounceMs: 10, resyncMs: 50 });
  k.close();
  t.equal(await k.start(), null, 'a closed keeper does not start');
  t.same(fdsOpenedSince(before), [], 'no event socket, no apply socket');
  t.same(ours(routeLines(pod)), [], 'nothing written');
  t.same(reports, [], 'nothing reported');
});

t.test('close() while the first apply is in flight: every fd closed by close() itself, nothing written after', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const before = fdTable();
  const reports: KeeperReport[] = [];
  const k = new RouteKeeper(pod.path, WITH_DEFAULT, { onReport: (r) => reports.push(r), debounceMs: 10, resyncMs: 50 });
  const started = k.start(); // runs up to its first netlink request: event socket and apply socket open
  const open = fdsOpenedSince(before);
  t.equal(open.length, 2, `the event socket and the keeper's client are open while it runs: ${open.join(', ')}`);
  k.close();
  t.same(fdsOpenedSince(before), [], 'both closed at once, not when the apply would have ended');
  t.equal(await started, null, 'the aborted start resolves to null');
  t.same(ours(routeLines(pod)), [], 'the aborted apply wrote nothing');
  t.same(reports, [], 'nothing reported after close');
  t.same(fdsOpenedSince(before), []);
});

t.test('close() from inside an apply, after its routes and before the default route', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const before = fdTable();
  const reports: KeeperReport[] = [];
  let atClose: string[] | null = null;
  const k: RouteKeeper = new RouteKeeper(pod.path, WITH_DEFAULT, {
    onReport: (r) => reports.push(r),
    debounceMs: 10,
    resyncMs: 50,
    // The engine saves the original default route right before replacing it: close there.
    saveDefault: () => {
      k.close();
      atClose = fdsOpenedSince(before);
    },
  });
  t.equal(await k.start(), null, 'the start that was closed mid-way resolves to null');
  t.same(atClose, [], "the apply's socket and the event socket were closed by close() itself, mid-apply");
  t.equal(ours(routeLines(pod)).length, 5, 'the routes written before close stay (close never touches routes)');
  t.ok(routeLines(pod).includes('default via 169.254.1.1 dev eth0'), 'the default route was not taken over after close');
  t.same(reports, [], 'nothing reported after close');
  t.same(fdsOpenedSince(before), []);
});

t.test('close() while an event-triggered apply (drift repair) is in flight', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const before = fdTable();
  const reports: KeeperReport[] = [];
  const k = new RouteKeeper(pod.path, MISSION_PLAN, { onReport: (r) => reports.push(r), debounceMs: 10, resyncMs: 0 });
  t.teardown(() => k.close());
  await k.start();
  // The start's own writes echo back as route events; those no longer cause a re-apply (the
  // keeper recognises its own echoes), so a quiet second apply is made here on purpose, and
  // any link event of the fresh veths may add one more: let them pass.
  await k.setPlan(MISSION_PLAN);
  await everyTurnUntil('the echo apply ran', () => reports.length >= 2);
  await everyTurnUntil('no apply in flight', () => !k.applying);
  t.equal(fdsOpenedSince(before).length, 2, "between applies: the event socket and the keeper's client");
  // The repair's first request is its dump of the links: close() there, with the apply in
  // flight. (Each exchange with the kernel is synchronous and an apply runs through promise
  // reactions alone, so no turn of the event loop sees it in flight: the hook is the way in.)
  let n = -1;
  let atClose: string[] = [];
  onFirstCall(t, 'listLinks', () => {
    n = reports.length;
    k.close();
    atClose = fdsOpenedSince(before);
  });
  pod.ip('route', 'del', '172.16.10.0/24'); // drift: the keeper re-applies after the debounce
  await everyTurnUntil('the repair apply began', () => n >= 0);
  t.same(atClose, [], "the repair apply's client and the event socket closed by close() itself");
  t.equal(await k.setPlan(MISSION_PLAN), null, 'a closed keeper does nothing (this also waits for the aborted apply to end)');
  t.notOk(
    routeLines(pod).some((l) => l.startsWith('172.16.10.0/24')),
    'the aborted repair wrote nothing',
  );
  t.same(reports.slice(n), [], 'nothing reported after close');
  t.same(fdsOpenedSince(before), []);
});
