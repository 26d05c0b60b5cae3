/**
 * `npm run bench`: every benchmark module under test/bench, printed as a table of ratios
 * against same-run baselines. Benchmarks that need root or a control plane say so and are
 * listed as not run, never as passed.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchRow } from './measure.js';
import { runCoreBench } from './core.bench.js';

const here = dirname(fileURLToPath(import.meta.url));

/** Optional benchmark modules (by other areas), each exporting `run(): Promise<BenchRow[]>`. */
const OPTIONAL = ['injector.bench.js', 'webhook.bench.js', 'agent.bench.js', 'cli.bench.js', 'cni.bench.js', 'controller.bench.js'];

async function main(): Promise<void> {
  const rows: BenchRow[] = [...runCoreBench()];
  const notRun: string[] = [];
  for (const f of OPTIONAL) {
    const p = join(here, f);
    if (!existsSync(p)) continue;
    const mod = (await import(p)) as { run?: () => Promise<BenchRow[] | { skipped: string }> };
    if (typeof mod.run !== 'function') {
      notRun.push(`${f}: exports no run()`);
      continue;
    }
    try {
      const r = await mod.run();
      if (Array.isArray(r)) rows.push(...r);
      else notRun.push(`${f}: ${r.skipped}`);
    } catch (e) {
      notRun.push(`${f}: failed: ${(e as Error).message}`);
    }
  }
  const w = (k: keyof BenchRow) => Math.max(k.length, ...rows.map((r) => r[k].length));
  const line = (r: BenchRow) =>
    `${r.bench.padEnd(w('bench'))}  ${r.ratio.padStart(w('ratio'))}  ${r.value.padEnd(w('value'))}  ${r.baseline}`;
  console.log(line({ bench: 'bench', ratio: 'ratio', value: 'value', baseline: 'baseline (same run)' }));
  for (const r of rows) console.log(line(r));
  if (notRun.length) console.log(`\nNOT RUN:\n${notRun.map((s) => `  ${s}`).join('\n')}`);
  // Every row (ratio and the baseline it is against) as JSON, beside the per-area files.
  const resDir = join(here, '..', '..', '..', 'test', 'bench', 'results');
  mkdirSync(resDir, { recursive: true });
  writeFileSync(
    join(resDir, 'latest.json'),
    JSON.stringify({ date: new Date().toISOString(), node: process.version, rows, notRun }, null, 2) + '\n',
  );
  process.exitCode = notRun.some((s) => s.includes('failed')) ? 1 : 0;
}

await main();
