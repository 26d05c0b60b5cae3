// The soak's memory probe (test/util/inspector.ts) against a real Node child started with
// `--inspect` on loopback: the post-GC live heap it reports rises by what the child retains,
// does not count garbage the child dropped, and a heap snapshot counts the retained objects
// by constructor (what the soak's `--heap-diff` diffs). Then the soak's judgment of such
// figures (test/bench/soak-memory.ts): a flat live heap passes, a leaking one fails.
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Inspector, inspectArgs } from '../util/inspector.js';
import { assessHeap, type HeapSample } from '../bench/soak-memory.js';

const N = 50_000;
const MiB = 1 << 20;

t.test('live heap and heap counts of an inspected child', async (t) => {
  const { port, args } = await inspectArgs();
  const { NODE_OPTIONS: _omit, ...env } = process.env;
  const child = spawn(
    process.execPath,
    [
      ...args,
      '-e',
      'globalThis.Kept = class Kept { constructor(i) { this.s = "k".repeat(100) + i; } }; globalThis.kept = []; setInterval(() => {}, 1 << 30);',
    ],
    { stdio: 'ignore', env },
  );
  const exited = once(child, 'exit');
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  const ins = await Inspector.connect(port, 'the child');
  t.teardown(() => ins.close());

  const before = await ins.liveMemory();
  t.ok(before.heapUsed > 0 && before.rss >= before.heapUsed, `heapUsed ${before.heapUsed} B, rss ${before.rss} B`);

  // Retained: N objects of ~150 B each (the object and its own string) stay reachable.
  await ins.evaluate(`for (let i = 0; i < ${N}; i++) kept.push(new Kept(i)); 0`);
  const kept = await ins.liveMemory();
  const grown = kept.heapUsed - before.heapUsed;
  t.ok(grown > 4 * MiB, `retaining ${N} objects raised the live heap by ${(grown / MiB).toFixed(1)} MiB (> 4 MiB)`);

  // Garbage: as much again, allocated and dropped. The forced GC must not count it.
  await ins.evaluate(`globalThis.tmp = []; for (let i = 0; i < ${N}; i++) tmp.push(new Kept(-i)); globalThis.tmp = null; 0`);
  const dropped = await ins.liveMemory();
  t.ok(
    dropped.heapUsed - kept.heapUsed < grown / 2,
    `after dropping as much again the live heap moved by ${((dropped.heapUsed - kept.heapUsed) / MiB).toFixed(1)} MiB (< half of ${(grown / MiB).toFixed(1)})`,
  );

  const counts = await ins.heapCounts();
  t.equal(counts.get('Kept')?.count, N, `the snapshot counts ${N} Kept objects`);
  t.ok((counts.get('Kept')?.size ?? 0) > 0, 'with their self size');
});

// The soak's judgment of those figures (test/bench/soak-memory.ts), on series shaped like
// the measured ones: flat with the noise seen, a slow growth of V8's compiled code, and a
// leak at the rate the webhook's RSS floor once rose.
t.test('the soak flags a growing live heap and passes a flat one', async (t) => {
  const series = (minutes: number, mibPerMin: { agent: number; webhook: number }): HeapSample[] =>
    Array.from({ length: minutes * 6 + 1 }, (_, i) => {
      const tMin = i / 6;
      const noise = ((i * 7919) % 11) / 10 - 0.5; // ±0.5 MiB, deterministic
      const mem = (base: number, rate: number) => ({
        rss: 130 * MiB,
        heapTotal: 60 * MiB,
        heapUsed: Math.round((base + noise + rate * tMin) * MiB),
        external: 12 * MiB,
        arrayBuffers: MiB,
      });
      return { tMin, agent: mem(33, mibPerMin.agent), webhook: mem(37, mibPerMin.webhook) };
    });
  const judge = (minutes: number, rate: { agent: number; webhook: number }) => {
    const failures: string[] = [];
    const r = assessHeap(series(minutes, rate), minutes, failures);
    return { failures, r };
  };

  const flat = judge(10, { agent: 0, webhook: 0 });
  t.same(flat.failures, [], 'flat: no failure');
  t.ok(Math.abs(flat.r.webhook.heapUsedSlopePerMin) < 0.1 * MiB, 'flat: slope near 0');

  // V8's compiled code grew by ~60 KiB/min in the 10-minute run: not a leak.
  t.same(judge(10, { agent: 0.06, webhook: 0.06 }).failures, [], 'code growth of 60 KiB/min: no failure');

  // The RSS floor's 2.1 MiB/min, were it live heap: caught in 5 and in 10 minutes.
  for (const minutes of [5, 10]) {
    const leak = judge(minutes, { agent: 0, webhook: 2.1 });
    t.equal(leak.failures.length, 1, `${minutes} min, webhook leaking 2.1 MiB/min: one failure`);
    t.match(leak.failures[0], /^webhook live heap grew: /, leak.failures[0] ?? '');
    t.ok(leak.r.webhook.heapUsedSlopePerMin > 2 * MiB, 'and the slope shows it');
  }
  const agentLeak = judge(10, { agent: 1, webhook: 0 });
  t.match(agentLeak.failures, [/^agent live heap grew: /], 'the agent too');

  // A shrinking heap is not growth.
  t.same(judge(10, { agent: -1, webhook: -1 }).failures, [], 'shrinking: no failure');
});
