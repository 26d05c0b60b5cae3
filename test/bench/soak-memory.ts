/**
 * The soak's memory judgment (test/bench/soak.ts), apart so that a unit test can check it
 * against figures: the live heap (heapUsed + external after a forced full GC) per third of
 * the run, its slope, and whether it grew; and the diff of two heap snapshots.
 */
import type { LiveMemory } from '../util/inspector.js';
import { slope } from '../faults/agent-proc.js';

/**
 * How much the median live heap (heapUsed + external after a full GC) of the last third may
 * exceed the middle third's: the larger of 2 MiB and 5% (2.6 MiB for the webhook's ~51 MiB).
 * Measured (10 min, 1089 rounds): the medians per third moved by at most 0.3 MiB and single
 * samples by ±0.5 MiB around them, so the bound is ~8 times the noise. A leak of rate L moves
 * the medians of two consecutive thirds apart by L × M/3 for an M-minute run; the webhook's
 * RSS floor rose at ~2.1 MiB/min in the 15-minute run that raised the question, which would
 * move them by 3.5 MiB in a 5-minute run and 7 MiB in a 10-minute one: caught. The bound
 * catches any leak above about 3 × 2.5 / M MiB/min (0.75 MiB/min for M = 10, 0.25 for M = 30).
 */
export const HEAP_TOLERANCE = { bytes: 2 << 20, ratio: 0.05 };

export const mib = (b: number) => (b / (1 << 20)).toFixed(1);
export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : NaN;
};

export type HeapSample = { tMin: number; agent: LiveMemory; webhook: LiveMemory };
export type Counts = Map<string, { count: number; size: number }>;

/**
 * The live heap after a full GC, per third of the run (the median of each third's samples:
 * a GC's result still varies by what is in flight at that instant) and its slope after the
 * warm-up. Pushes a failure when the last third's median heapUsed + external exceeds the
 * middle third's by more than HEAP_TOLERANCE.
 */
export function assessHeap(heaps: HeapSample[], minutes: number, failures: string[]) {
  const thirds = (f: (h: HeapSample) => number): number[] => {
    const third = Math.max(1, Math.floor(heaps.length / 3));
    return [0, 1, 2].map((k) => median(heaps.slice(k * third, k === 2 ? heaps.length : (k + 1) * third).map(f)));
  };
  const warm = heaps.filter((h) => h.tMin >= Math.min(1, minutes / 5));
  const fit = (f: (h: HeapSample) => number) =>
    slope(
      warm.map((h) => h.tMin),
      warm.map(f),
    );
  const of = (who: 'agent' | 'webhook') => {
    const used = thirds((h) => h[who].heapUsed);
    const ext = thirds((h) => h[who].external);
    const mid = used[1]! + ext[1]!;
    const last = used[2]! + ext[2]!;
    const bound = Math.max(HEAP_TOLERANCE.bytes, HEAP_TOLERANCE.ratio * mid);
    if (last - mid > bound)
      failures.push(
        `${who} live heap grew: median heapUsed+external ${mib(mid)} MiB in the middle third, ${mib(last)} MiB in the last (more than ${mib(bound)} MiB)`,
      );
    return {
      heapUsedMedianPerThird: used,
      externalMedianPerThird: ext,
      heapUsedSlopePerMin: fit((h) => h[who].heapUsed),
      externalSlopePerMin: fit((h) => h[who].external),
      heapUsedFirstLast: [heaps[0]![who].heapUsed, heaps.at(-1)![who].heapUsed],
      lastMinusMiddleBytes: last - mid,
      toleranceBytes: bound,
    };
  };
  return { agent: of('agent'), webhook: of('webhook') };
}

/** Prints and returns the 25 constructors whose retained size grew most between snapshots. */
export function printHeapDiff(early: Counts, late: Counts) {
  const diff = [...late]
    .map(([k, v]) => ({ name: k, count: v.count - (early.get(k)?.count ?? 0), size: v.size - (early.get(k)?.size ?? 0) }))
    .filter((d) => d.count !== 0 || d.size !== 0)
    .sort((a, b) => b.size - a.size)
    .slice(0, 25);
  console.log('webhook heap, late minus early snapshot, by constructor (top 25 by size):');
  for (const d of diff) console.log(`  ${String(d.size).padStart(10)} B ${String(d.count).padStart(8)}  ${d.name}`);
  return diff;
}
