// The work queue and token bucket as the controller uses them (platform/queue.ts): dedupe, a
// key never processed twice at once but once more when changed meanwhile, the concurrency
// bound, retries with backoff then giving up, stop(). Delays and rates run on an injected
// clock, never on wall-clock timing.
import t from 'tap';
import { sleep, TokenBucket, WorkQueue, type WorkResult } from '../../platform/queue.js';
import { ManualClock } from '../util/clock.js';

/** A handler whose calls wait until released, so the test controls interleaving. */
function gated() {
  const calls: string[] = [];
  const pending = new Map<string, ((r: WorkResult) => void)[]>();
  let active = 0;
  let maxActive = 0;
  const handler = (key: string) =>
    new Promise<WorkResult>((resolve) => {
      calls.push(key);
      active++;
      maxActive = Math.max(maxActive, active);
      const list = pending.get(key) ?? [];
      list.push((r) => {
        active--;
        resolve(r);
      });
      pending.set(key, list);
    });
  const release = (key: string, r: WorkResult = 'done') => {
    const fn = pending.get(key)?.shift();
    if (!fn) throw new Error(`${key} is not being processed`);
    fn(r);
  };
  return {
    calls,
    handler,
    release,
    inFlight: () =>
      [...pending]
        .filter(([, l]) => l.length)
        .map(([k]) => k)
        .sort(),
    maxActive: () => maxActive,
  };
}

const tick = () => sleep(5);

t.test('keys are deduplicated while they wait', async (t) => {
  const g = gated();
  const q = new WorkQueue({ handler: g.handler, concurrency: 2 });
  for (const k of ['a', 'b', 'a', 'a', 'b', 'c']) q.add(k);
  t.equal(q.depth, 3, 'three distinct keys wait');
  q.start();
  await tick();
  t.same(g.inFlight(), ['a', 'b'], 'two at a time');
  g.release('a');
  g.release('b');
  await tick();
  g.release('c');
  await q.idle();
  t.same(g.calls, ['a', 'b', 'c'], 'each once, in order');
});

t.test('a key changed while processed runs once more afterwards, never concurrently', async (t) => {
  const g = gated();
  const q = new WorkQueue({ handler: g.handler, concurrency: 4 });
  q.start();
  q.add('a');
  await tick();
  q.add('a');
  q.add('a');
  await tick();
  t.same(g.calls, ['a'], 'not started again while in flight');
  g.release('a');
  await tick();
  t.same(g.calls, ['a', 'a'], 'run once more for the change');
  g.release('a');
  await q.idle();
  t.equal(g.calls.length, 2);
});

t.test('concurrency is bounded', async (t) => {
  const g = gated();
  const q = new WorkQueue({ handler: g.handler, concurrency: 3 });
  q.start();
  for (let i = 0; i < 20; i++) q.add(`k${i}`);
  for (let done = 0; done < 20;) {
    await tick();
    for (const k of g.inFlight()) {
      g.release(k);
      done++;
    }
  }
  await q.idle();
  t.equal(g.maxActive(), 3);
  t.equal(new Set(g.calls).size, 20);
});

t.test('failures are retried with backoff, then given up', async (t) => {
  const calls: string[] = [];
  const errors: [string, string, boolean][] = [];
  let failFor = 2;
  const clock = new ManualClock();
  const q = new WorkQueue({
    concurrency: 1,
    retry: { initialMs: 5, maxMs: 20, maxRetries: 3 },
    clock,
    handler: async (key) => {
      calls.push(key);
      if (key === 'flaky' && failFor-- > 0) return 'retry';
      if (key === 'boom') throw new Error('handler bug');
      return key === 'never' ? 'retry' : 'done';
    },
    onError: (key, err, dropped) => errors.push([key, (err as Error).message, dropped]),
  });
  q.start();
  q.add('flaky');
  q.add('never');
  q.add('boom');
  // Each round: let the keys waiting run, then move the clock past every retry delay.
  for (let i = 0; i < 20 && (q.retrying > 0 || q.depth > 0); i++) {
    await q.idle();
    clock.advance(25);
  }
  await q.idle();
  t.equal(q.retrying, 0, 'nothing left to retry');
  t.equal(calls.filter((k) => k === 'flaky').length, 3, 'flaky: two failures, then success');
  t.equal(calls.filter((k) => k === 'never').length, 4, 'never: first try + 3 retries');
  t.same(
    errors.filter(([k]) => k === 'never'),
    [['never', 'gave up on never after 3 retries', true]],
  );
  t.same(errors.filter(([k]) => k === 'boom')[0], ['boom', 'handler bug', false], 'a throw is reported and retried');
});

t.test('stop() waits for work in flight and forgets the rest; start() again works', async (t) => {
  const g = gated();
  const q = new WorkQueue({ handler: g.handler, concurrency: 1 });
  q.start();
  q.add('a');
  q.add('b');
  await tick();
  let stopped = false;
  const stopping = q.stop().then(() => {
    stopped = true;
  });
  await tick();
  t.notOk(stopped, 'still waiting for a');
  g.release('a');
  await stopping;
  t.equal(q.depth, 0, 'b forgotten');
  q.start();
  q.add('c');
  await tick();
  g.release('c');
  await q.idle();
  t.same(g.calls, ['a', 'c']);
});

t.test('the constructor refuses a bad concurrency', async (t) => {
  t.throws(() => new WorkQueue({ handler: async () => 'done', concurrency: 0 }), /concurrency must be an integer >= 1/);
});

t.test('retry delays double with jitter, per key; add() runs a key now and cancels its retry', async (t) => {
  const clock = new ManualClock();
  let fail = true;
  const calls: number[] = [];
  const q = new WorkQueue({
    concurrency: 1,
    clock,
    random: () => 0.5,
    retry: { initialMs: 100, maxMs: 1000 },
    handler: async () => {
      calls.push(clock.now());
      return fail ? 'retry' : 'done';
    },
  });
  q.start();
  q.add('a');
  await q.idle();
  for (const step of [99, 1, 199, 1, 399, 1]) {
    clock.advance(step);
    await q.idle();
  }
  t.same(calls, [0, 100, 300, 700], 'retried after 100, 200, 400 ms');
  t.equal(q.retrying, 1, 'the next retry is pending');
  fail = false;
  q.add('a');
  await q.idle();
  t.equal(calls.length, 5, 'an add runs the key now');
  t.equal(q.retrying, 0, 'and its pending retry is gone');
  await q.stop();
});

t.test('TokenBucket: burst at once, then qps, reservations in order (injected clock)', async (t) => {
  let now = 0;
  const b = new TokenBucket(10, 3, () => now);
  for (let i = 0; i < 3; i++) {
    t.equal(b.waitMs(), 0, `token ${i + 1} of the burst is free`);
    await b.take();
  }
  t.equal(b.waitMs(), 100, 'then one every 1/qps s');
  now += 50;
  t.equal(b.waitMs(), 50, 'half refilled');
  now += 1000;
  t.equal(b.waitMs(), 0, 'refilled');
  await b.take();
  await b.take();
  await b.take();
  t.equal(b.waitMs(), 100, 'never more than burst');
  // A reservation pushes the next waiter back.
  const ac = new AbortController();
  const first = b.take(ac.signal);
  t.equal(b.waitMs(), 200, 'the second waiter waits behind the first');
  ac.abort(new Error('stop'));
  await t.rejects(first, /stop/, 'an aborted wait rejects');
  t.equal(b.waitMs(), 100, 'and gives its token back');
  t.throws(() => new TokenBucket(0, 1), /qps must be a positive number/);
  t.throws(() => new TokenBucket(1, 0), /burst must be an integer >= 1/);
});

t.test('TokenBucket: take() really waits when empty (real clock, no upper bound asserted)', async (t) => {
  const b = new TokenBucket(100, 1);
  await b.take();
  let resolved = false;
  const p = b.take().then(() => {
    resolved = true;
  });
  await Promise.resolve();
  t.notOk(resolved, 'the second take is still waiting');
  await p;
  t.ok(resolved);
});
