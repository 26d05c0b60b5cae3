// The agent's keyed work queue: bounded workers, one run per key at a time, a key added
// while it runs runs once more afterwards, failures go to onError and never stop the rest.
import t from 'tap';
import { WorkQueue } from '../../injector/agent/queue.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

t.test('at most `concurrency` keys at once, each key never twice at once', async (t) => {
  let active = 0;
  let max = 0;
  const running = new Set<string>();
  const runs: string[] = [];
  const gates: (() => void)[] = [];
  const q = new WorkQueue(3, async (k) => {
    t.notOk(running.has(k), `${k} is not already running`);
    running.add(k);
    max = Math.max(max, ++active);
    runs.push(k);
    await new Promise<void>((r) => gates.push(r));
    active--;
    running.delete(k);
  }, (k, e) => t.fail(`${k}: ${String(e)}`));
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
  const q = new WorkQueue(1, async (k) => {
    if (k === 'bad') throw new Error('boom');
    done.push(k);
  }, (k, e) => errors.push(`${k}: ${(e as Error).message}`));
  q.add('bad');
  q.add('good');
  await q.idle();
  t.same(errors, ['bad: boom']);
  t.same(done, ['good']);
  q.addAfter('later', 30);
  await q.idle();
  t.same(done, ['good'], 'a delayed key is not run before its time (and idle does not wait for it)');
  await new Promise((r) => setTimeout(r, 60));
  await q.idle();
  t.same(done, ['good', 'later']);
  q.stop();
  q.add('after-stop');
  await q.idle();
  t.same(done, ['good', 'later'], 'nothing runs after stop');
  t.throws(() => new WorkQueue(0, async () => {}, () => {}), /concurrency must be >= 1/);
});
