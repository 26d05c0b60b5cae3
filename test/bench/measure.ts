/**
 * Benchmark helpers. Every figure is reported as a ratio against a baseline measured in the
 * same run (the machine is noisy: 2 shared cores), and as raw numbers for context.
 */
import { performance } from 'node:perf_hooks';

export interface Timing {
  name: string;
  ops: number;
  nsPerOp: number;
}

/** Run fn `ops` times per round, several rounds, and keep the fastest round (least noise). */
export function time(name: string, ops: number, fn: (i: number) => unknown, rounds = 5): Timing {
  let best = Infinity;
  let sink: unknown;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    for (let i = 0; i < ops; i++) sink = fn(i);
    best = Math.min(best, performance.now() - t0);
  }
  if (sink === Symbol.for('never')) console.log('');
  return { name, ops, nsPerOp: (best * 1e6) / ops };
}

/** Async variant: awaits each call. */
export async function timeAsync(name: string, ops: number, fn: (i: number) => Promise<unknown>, rounds = 3): Promise<Timing> {
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    for (let i = 0; i < ops; i++) await fn(i);
    best = Math.min(best, performance.now() - t0);
  }
  return { name, ops, nsPerOp: (best * 1e6) / ops };
}

export interface BenchRow {
  bench: string;
  value: string;
  baseline: string;
  ratio: string;
}

/** A row comparing a measurement with its same-run baseline. */
export function ratioRow(bench: string, m: Timing, base: Timing): BenchRow {
  const fmt = (t: Timing) =>
    `${t.name}: ${t.nsPerOp >= 1e6 ? (t.nsPerOp / 1e6).toFixed(2) + ' ms' : t.nsPerOp >= 1e3 ? (t.nsPerOp / 1e3).toFixed(1) + ' µs' : t.nsPerOp.toFixed(0) + ' ns'}/op`;
  return { bench, value: fmt(m), baseline: fmt(base), ratio: `${(m.nsPerOp / base.nsPerOp).toFixed(2)}x` };
}
