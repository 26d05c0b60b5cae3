// The work queue as the agent uses it (platform/queue.ts, no retry policy: the agent
// requeues itself): bounded workers, one run per key at a time, a key added while it runs
// runs once more afterwards, failures go to onError and never stop the rest. Delays run on
// an injected clock, never on real timers.
import t from 'tap';
import { WorkQueue, type WorkQueueOptions } from '../../platform/queue.js';
import { ManualClock } from '../util/clock.js';

/** The agent's construction: started at once, no retry policy. */
function agentQueue(
  concurrency: number,
  handler: (k: string) => Promise<void>,
  onError: (k: string, e: unknown) => void,
  more: Partial<WorkQueueOptions> = {},
): WorkQueue {
  const q = new WorkQueue({ concurrency, handler, onError, ...more });
  q.start();
  return q;
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

t.test('at most `concurrency` keys at once, each key never twice at once', async (t) => {
  let active = 0;
  let max = 0;
  const running = new Set<string>();
  const runs: string[] = [];
  const gates: (() => void)[] = [];
  const q = agentQueue(
    3,
    async (k) => {
      t.notOk(running.has(k), `${k} is not already running`);
      running.add(k);
      max = Math.max(max, ++active);
      runs.push(k);
      await new Promise<void>((r) => gates.push(r));
      active--;
      running.delete(k);
    },
    (k, e) => t.fail(`${k}: ${String(e)}`),
  );
  for (let i = 0; i < 10; i++) q.add(`k${i}`);
  q.add('k0'); // running: runs again afterwards
  q.add('k5'); // queued: no second entry
  await tick();
  t.equal(active, 3, 'three workers busy');
  while (gates.length) {
    gates.shift()!();
    await tick();
    await tick();
  }
  await q.idle();
  t.equal(max, 3, 'never more than three');
  t.equal(runs.filter((k) => k === 'k0').length, 2, 'k0 ran again after its first run');
  t.equal(runs.filter((k) => k === 'k5').length, 1, 'k5 queued once');
  t.equal(runs.length, 11);
  t.equal(q.maxActiveSeen, 3);
});

t.test('a failing key is reported and the others go on; addAfter delays', async (t) => {
  const done: string[] = [];
  const errors: string[] = [];
  const clock = new ManualClock();
  const q = agentQueue(
    1,
    async (k) => {
      if (k === 'bad') throw new Error('boom');
      done.push(k);
    },
    (k, e) => errors.push(`${k}: ${(e as Error).message}`),
    { clock },
  );
  q.add('bad');
  q.add('good');
  await q.idle();
  t.same(errors, ['bad: boom']);
  t.same(done, ['good']);
  q.addAfter('later', 30);
  await q.idle();
  t.same(done, ['good'], 'a delayed key is not run before its time (and idle does not wait for it)');
  clock.advance(29);
  await q.idle();
  t.same(done, ['good'], 'not at 29 ms either');
  clock.advance(1);
  await q.idle();
  t.same(done, ['good', 'later']);
  await q.stop();
  q.add('after-stop');
  await q.idle();
  t.same(done, ['good', 'later'], 'nothing runs after stop');
  t.throws(
    () =>
      agentQueue(
        0,
        async () => {},
        () => {},
      ),
    /concurrency must be an integer >= 1/,
  );
});
