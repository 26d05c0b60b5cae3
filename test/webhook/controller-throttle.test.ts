// When the API server says when to come back (a 429 from API Priority and Fairness, a 503,
// with Retry-After), the controller waits exactly that long, and not only for the pod whose
// patch was refused: no patch of ours goes before then (its workers wait at the token bucket
// instead of each drawing a 429 of its own), and the refused pod comes back after Retry-After
// plus at most 20 % (spread, so throttled pods do not all return in the same millisecond).
// Without a Retry-After, a failure of the whole server (5xx, no answer, 429) pauses every
// write on one back-off that grows only once per pause, and a pod's own failure (invalid,
// forbidden, conflict) pauses nobody else. Time is a ManualClock: nothing here waits for real
// time. (The header's parsing and patchObject carrying it: test/platform/patch-object.test.ts.)
import t, { type Test } from 'tap';
import { planKeyFromSecret } from '../../core/plan-codec.js';
import type { Pod, Route } from '../../core/types.js';
import { classifyApiError, MAX_RETRY_AFTER_MS, retryAfterMsOf } from '../../platform/api-errors.js';
import { ApiStatusError } from '../../platform/kube-client.js';
import { TokenBucket, WorkQueue } from '../../platform/queue.js';
import { cachesFromObjects } from '../../webhook/caches/caches.js';
import { podStoreFromObjects } from '../../webhook/caches/pods.js';
import { Controller, type ControllerApi } from '../../webhook/controller/controller.js';
import { failureMetrics, numberedPods, TEST_CONTROLLER } from './helpers.js';
import { ManualClock } from '../util/clock.js';

const key = planKeyFromSecret(Buffer.alloc(32, 7));
const route: Route = {
  metadata: { name: 'r', resourceVersion: '1', generation: 1 },
  spec: { include: [{ namespaces: ['a'] }], route: [{ dst: '10.9.0.0/16', dev: 'eth1' }] },
};

/** Let promise chains and setImmediate callbacks run (the clock does not move). */
async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

/**
 * A controller over pods p0..p(n-1) with `concurrency` (default 1), whose API refuses the
 * first patch of p0 with `refusal`, or any patch for which `refuse(pod, now)` gives an error;
 * every patch is recorded with the clock's time.
 */
function setup(
  t: Test,
  n: number,
  refusal: () => Error,
  opts: { concurrency?: number; refuse?: (pod: string, now: number) => Error | undefined } = {},
) {
  const clock = new ManualClock();
  const caches = cachesFromObjects({ routes: [route], namespaces: [{ metadata: { name: 'a' } }] });
  const pods = podStoreFromObjects(numberedPods(n));
  const sent: { pod: string; at: number; refused: boolean }[] = [];
  let refused = false;
  const api: ControllerApi = {
    async patchPod(_ns, name) {
      if (opts.refuse) {
        const err = opts.refuse(name, clock.now());
        sent.push({ pod: name, at: clock.now(), refused: !!err });
        if (err) throw err;
        return undefined;
      }
      const first = name === 'p0' && !refused;
      sent.push({ pod: name, at: clock.now(), refused: first });
      if (first) {
        refused = true;
        throw refusal();
      }
      return undefined;
    },
    async patchRouteStatus() {
      return {};
    },
    async createEvent() {
      return {};
    },
  };
  const failures: string[] = [];
  const c = new Controller({
    caches,
    pods,
    api,
    ...TEST_CONTROLLER,
    keys: [key],
    concurrency: opts.concurrency ?? 1,
    clock,
    metrics: failureMetrics(failures),
  });
  t.teardown(() => c.stop());
  return { c, clock, sent, failures };
}

const throttled = (retryAfter?: string) =>
  new ApiStatusError(
    429,
    JSON.stringify({ kind: 'Status', code: 429, message: 'Too many requests, please try again later.' }),
    'PATCH /api/v1/namespaces/a/pods/p0: HTTP 429',
    retryAfter === undefined ? {} : { 'retry-after': retryAfter },
  );

t.test('a 429 with Retry-After holds every patch until then; the refused pod returns within +20 %', async (t) => {
  const { c, clock, sent, failures } = setup(t, 4, () => throttled('1'));
  await c.start();
  await flush();
  t.same(sent, [{ pod: 'p0', at: 0, refused: true }], 'the first patch is refused, and no other goes');
  clock.advance(999);
  await flush();
  t.equal(sent.length, 1, 'still nothing 1 ms before the Retry-After');
  clock.advance(1);
  await flush();
  t.same(
    sent.slice(1).map((s) => [s.pod, s.at]),
    [
      ['p1', 1000],
      ['p2', 1000],
      ['p3', 1000],
    ],
    'the other pods go at the Retry-After',
  );
  clock.advance(200);
  await flush();
  const retry = sent.find((s) => s.pod === 'p0' && !s.refused);
  t.ok(retry, 'p0 is patched again');
  t.ok(retry!.at >= 1000 && retry!.at <= 1200, `p0 again at ${retry?.at} ms: within [Retry-After, Retry-After + 20 %]`);
  t.same(failures, ['throttled'], 'one patch failure, counted as throttled');
  await c.queue.idle();
  t.equal(c.queue.retrying, 0, 'nothing left to retry');
});

t.test('a 429 without Retry-After: every write pauses on the back-off (200 ms +-20 %), then all go', async (t) => {
  const { c, clock, sent } = setup(t, 3, () => throttled());
  await c.start();
  await flush();
  t.same(
    sent.map((s) => s.pod),
    ['p0'],
    'p1 and p2 wait too: the server throttles all of us',
  );
  clock.advance(160);
  await flush();
  t.equal(sent.length, 1, 'not before the shortest back-off');
  clock.advance(100);
  await flush();
  t.same(
    sent.slice(1, 3).map((s) => s.pod),
    ['p1', 'p2'],
    'then the others go',
  );
  clock.advance(300);
  await flush();
  t.ok(
    sent.some((s) => s.pod === 'p0' && !s.refused),
    'and p0 is retried on its own back-off',
  );
});

t.test('the API server down: all writes pause on one back-off, not every pod on its own; the first success ends it', async (t) => {
  // No answer at all until t = 3000 ms (connection refused), 4 workers, 40 pods.
  const down = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' });
  const { c, clock, sent } = setup(t, 40, down, { concurrency: 4, refuse: (_pod, now) => (now < 3000 ? down() : undefined) });
  await c.start();
  await flush();
  t.equal(sent.length, 4, 'the 4 patches in flight fail; no worker takes another pod before the back-off');
  // The clock runs until every pod is patched (or 20 s, far past any pause: they are capped
  // at 5 s). The pause in force when the server comes back is the one the last refused attempt
  // set: at 2800 ms it is the fifth, 3200 ms +-20 %, so the first success can come as late as
  // 6640 ms (a fixed 6 s of clock here failed whenever the jitter drew long).
  const patched = new Set<string>();
  while (patched.size < 40 && clock.now() < 20_000) {
    clock.advance(100);
    await flush();
    for (const s of sent) if (!s.refused) patched.add(s.pod);
  }
  const during = sent.filter((s) => s.refused);
  t.comment(`attempts while down: ${during.length} at ${[...new Set(during.map((s) => s.at))].join(', ')} ms`);
  // Pauses of 200, 400, 800, 1600 ms (+-20 %) before the server is back at 3 s: at most 4
  // attempts per window, 5 windows.
  t.ok(during.length <= 20, `${during.length} attempts in 3 s of outage (the 40 pods each on their own back-off: 100+)`);
  t.equal(patched.size, 40, 'every pod patched once the server is back');
  const lastRefused = Math.max(...during.map((s) => s.at));
  const successes = sent.filter((s) => !s.refused).map((s) => s.at);
  t.ok(
    successes.every((at) => at <= lastRefused + 3200 * 1.2 + 100 + 1000),
    `within the pause the last refusal set (at ${lastRefused} ms) and the per-pod retries: the last at ${Math.max(...successes)} ms`,
  );
});

t.test("a pod's own failure (invalid, forbidden, conflict) pauses nobody else", async (t) => {
  const invalid = () =>
    new ApiStatusError(422, JSON.stringify({ kind: 'Status', code: 422, message: 'metadata.annotations: Too long' }), 'HTTP 422');
  const { c, sent } = setup(t, 4, invalid);
  await c.start();
  await flush();
  t.same(
    sent.map((s) => [s.pod, s.at]),
    [
      ['p0', 0],
      ['p1', 0],
      ['p2', 0],
      ['p3', 0],
    ],
    'p1..p3 go at once after p0 is refused',
  );
});

t.test('Retry-After: seconds or an HTTP date, capped; classified with the failure', async (t) => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  t.equal(retryAfterMsOf({ headers: { 'retry-after': '3' } }, now), 3000, 'delay-seconds');
  t.equal(retryAfterMsOf({ headers: { 'Retry-After': ' 0 ' } }, now), 0, 'any case, spaces trimmed');
  t.equal(retryAfterMsOf({ headers: { 'retry-after': 'Thu, 01 Jan 2026 00:00:02 GMT' } }, now), 2000, 'an HTTP date');
  t.equal(retryAfterMsOf({ headers: { 'retry-after': 'Wed, 31 Dec 2025 00:00:00 GMT' } }, now), 0, 'a date past: now');
  t.equal(retryAfterMsOf({ headers: { 'retry-after': '86400' } }, now), MAX_RETRY_AFTER_MS, 'capped');
  t.equal(retryAfterMsOf({ headers: { 'retry-after': 'soon' } }, now), undefined, 'unreadable: none');
  t.equal(retryAfterMsOf({ headers: {} }, now), undefined, 'absent: none');
  t.equal(retryAfterMsOf(new Error('ECONNRESET'), now), undefined, 'a network error: none');
  t.match(classifyApiError(throttled('2')), { action: 'retry', reason: 'throttled', status: 429, retryAfterMs: 2000 });
  // client-node's ApiException: code, body, headers.
  t.match(classifyApiError({ code: 503, body: { message: 'shutting down' }, headers: { 'retry-after': '1' } }), {
    reason: 'server',
    retryAfterMs: 1000,
  });
  t.notOk('retryAfterMs' in classifyApiError(throttled()), 'none when the server named none');
  t.notOk(
    'retryAfterMs' in classifyApiError({ code: 409, body: { message: 'conflict' }, headers: { 'retry-after': '1' } }),
    'only throttling and server errors carry it',
  );
});

t.test('TokenBucket.pause holds take() whatever tokens are free; a longer pause set meanwhile too', async (t) => {
  const clock = new ManualClock();
  const b = new TokenBucket(1000, 10, clock);
  b.pause(500);
  t.equal(b.waitMs(), 500, 'waitMs shows the pause');
  let done = false;
  const p = b.take().then(() => {
    done = true;
  });
  clock.advance(300);
  await flush();
  b.pause(400); // now until 700
  b.pause(100); // a shorter pause does not shorten it
  clock.advance(200);
  await flush();
  t.notOk(done, 'held past the first pause by the second');
  clock.advance(200);
  await flush();
  t.ok(done, 'released at the end of the longer pause');
  await p;
  t.equal(b.waitMs(), 0, 'no pause left');
});

t.test('WorkQueue: {retryAfterMs} retries after that delay plus 0-20 %, counted as a failure', async (t) => {
  const clock = new ManualClock();
  const calls: number[] = [];
  const errors: string[] = [];
  const q = new WorkQueue({
    concurrency: 1,
    clock,
    random: () => 1,
    retry: { initialMs: 10, maxRetries: 2 },
    handler: async () => {
      calls.push(clock.now());
      return { retryAfterMs: 1000 };
    },
    onError: (k, err) => errors.push((err as Error).message),
  });
  q.start();
  q.add('k');
  await flush();
  for (let i = 0; i < 3; i++) {
    clock.advance(1200);
    await flush();
  }
  t.same(calls, [0, 1200, 2400], 'each retry 1000 ms + 20 % (random 1) later, not the 10 ms back-off');
  t.same(errors, ['gave up on k after 2 retries'], 'and given up after maxRetries like any failure');
});
