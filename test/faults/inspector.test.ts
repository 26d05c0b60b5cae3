// The soak's memory probe (test/util/inspector.ts) against a real Node child started with
// `--inspect` on loopback: the post-GC live heap it reports rises by what the child retains,
// does not count garbage the child dropped, and a heap snapshot counts the retained objects
// by constructor (what the soak's `--heap-diff` diffs).
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Inspector, inspectArgs } from '../util/inspector.js';

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
