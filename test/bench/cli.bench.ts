/**
 * CLI start-up: wall time of one `ovnkube-route <command>` process against `node -e 0`, both
 * measured in the same run, interleaved (round-robin, median of ROUNDS runs each), so the
 * ratio holds on a noisy machine. inject and routes run against a real netns when root (else
 * their --help). Exported as run() for test/bench/run.ts; rows also go to
 * test/bench/results/cli.json.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { BenchRow } from './measure.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..', '..');
const cli = join(repo, 'dist', 'bin', 'ovnkube-route.js');
const ROUNDS = Number(process.env.OVRT_BENCH_CLI_ROUNDS ?? 15);

function once(args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { cwd: repo, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

export async function run(): Promise<BenchRow[]> {
  const tmp = mkdtempSync(join(tmpdir(), 'ovr-cli-bench-'));
  const root = process.getuid?.() === 0;
  const ns = `ovrt-clibench-${process.pid}`;
  try {
    const planFile = join(tmp, 'plan.json');
    writeFileSync(planFile, JSON.stringify({ v: 1, routes: [{ dst: '172.16.10.0/24', dev: 'eth1' }] }));
    if (root) {
      execFileSync('ip', ['netns', 'add', ns]);
      execFileSync('ip', ['-n', ns, 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'p1']);
      execFileSync('ip', ['-n', ns, 'link', 'set', 'eth1', 'up']);
    }
    const cases: [string, string[]][] = [
      ['--help', ['--help']],
      ['convert', ['convert', '-f', join(repo, 'examples', 'cr-config.json')]],
      ['plan', ['plan', '-f', join(repo, 'examples', 'demo-bundle.yaml'), '--all']],
      root
        ? ['inject (real netns)', ['inject', '--netns', `/var/run/netns/${ns}`, '--plan', planFile, '--state-dir', join(tmp, 'state')]]
        : ['inject --help', ['inject', '--help']],
      root ? ['routes (real netns)', ['routes', '--netns', `/var/run/netns/${ns}`]] : ['routes --help', ['routes', '--help']],
    ];
    const base: number[] = [];
    const times = cases.map(() => [] as number[]);
    once(['-e', '0']); // warm the file cache
    for (const [, a] of cases) once([cli, ...a]);
    for (let r = 0; r < ROUNDS; r++) {
      base.push(once(['-e', '0']));
      cases.forEach(([, a], i) => times[i]!.push(once([cli, ...a])));
    }
    const b = median(base);
    const rows: BenchRow[] = [];
    const json: unknown[] = [];
    cases.forEach(([name], i) => {
      const m = median(times[i]!);
      rows.push({
        bench: `cli: ovnkube-route ${name}`,
        value: `${m.toFixed(0)} ms wall (median of ${ROUNDS})`,
        baseline: `node -e 0: ${b.toFixed(0)} ms`,
        ratio: `${(m / b).toFixed(2)}x`,
      });
      json.push({
        bench: `cli ${name}`,
        unit: 'ms wall, median',
        value: +m.toFixed(1),
        ratio: +(m / b).toFixed(2),
        baseline: 'node -e 0, same run, interleaved',
        baselineValue: +b.toFixed(1),
      });
    });
    const resDir = join(repo, 'test', 'bench', 'results');
    mkdirSync(resDir, { recursive: true });
    writeFileSync(join(resDir, 'cli.json'), JSON.stringify({ date: new Date().toISOString(), rounds: ROUNDS, rows: json }, null, 2) + '\n');
    return rows;
  } finally {
    if (root) {
      try {
        execFileSync('ip', ['netns', 'del', ns]);
      } catch {
        /* gone */
      }
    }
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const x of await run()) console.log(`${x.bench}\t${x.ratio}\t${x.value}\t${x.baseline}`);
}
