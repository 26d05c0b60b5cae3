// When the API server says when to come back (a 429 from API Priority and Fairness, a 503,
// with Retry-After), the controller waits exactly that long, and not only for the pod whose
// patch was refused: no patch of ours goes before then (its workers wait at the token bucket
// instead of each drawing a 429 of its own), and the refused pod comes back after Retry-After
// plus at most 20 % (spread, so throttled pods do not all return in the same millisecond).
// Without a Retry-After, a refused pod has its own back-off and the others go on. Time is a
// ManualClock: nothing here waits for real time. (The header's parsing and patchObject
// carrying it: test/platform/patch-object.test.ts.)
import t, { type Test } from 'tap';
import { planKeyFromSecret } from '../../core/plan-codec.js';
import type { Pod, Route } from '../../core/types.js';
import { classifyApiError, MAX_RETRY_AFTER_MS, retryAfterMsOf } from '../../platform/api-errors.js';
import { ApiStatusError } from '../../platform/kube-client.js';
import { TokenBucket, WorkQueue } from '../../platform/queue.js';
import { cachesFromObjects } from '../../webhook/caches/caches.js';
import { podStoreFromObjects } from '../../webhook/caches/pods.js';
import { Controller, type ControllerApi } from '../../webhook/controller/controller.js';
import type { ControllerMetrics } from '../../webhook/controller/metrics.js';
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
 * A controller over pods p0..p(n-1) with concurrency 1, whose API refuses the first patch of
 * p0 with `refusal`; every patch is recorded with the clock's time.
 */
function setup(t: Test, n: number, refusal: () => Error) {
  const clock = new ManualClock();
  const caches = cachesFromObjects({ routes: [route], namespaces: [{ metadata: { name: 'a' } }] });
  const podObjs: Pod[] = Array.from({ length: n }, (_, i) => ({
    metadata: { namespace: 'a', name: `p${i}`, uid: String(i), resourceVersion: '1' },
    spec: {},
  }));
  const pods = podStoreFromObjects(podObjs);
  const sent: { pod: string; at: number; refused: boolean }[] = [];
  let refused = false;
  const api: ControllerApi = {
    async patchPod(_ns, name) {
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
    mode: 'default',
    keys: [key],
    identity: 'test',
    patchQps: 1000,
    patchBurst: 1000,
    concurrency: 1,
    resyncPeriodMs: 0,
    statusDelayMs: 3_600_000,
    clock,
    metrics: {
      observePatchFailure: (r: string) => failures.push(r),
      observeReconcile: () => {},
      observePatched: () => {},
      observeStatusWrite: () => {},
      observeEvent: () => {},
      observeLeadership: () => {},
    } satisfies ControllerMetrics,
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

t.test('a 429 without Retry-After: the refused pod backs off alone, the others go on', async (t) => {
  const { c, clock, sent } = setup(t, 3, () => throttled());
  await c.start();
  await flush();
  t.same(
    sent.map((s) => [s.pod, s.at]),
    [
      ['p0', 0],
      ['p1', 0],
      ['p2', 0],
    ],
    'p1 and p2 are not held',
  );
  clock.advance(300);
  await flush();
  t.ok(
    sent.some((s) => s.pod === 'p0' && !s.refused && s.at > 0),
    'p0 retried after its own back-off',
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
