#!/usr/bin/env node
// `npm test`: build, lint, then run every tap test under dist/test (or only the paths given,
// e.g. `npm test -- test/core`). Tiers that cannot run here (no root, no control plane) are listed
// loudly at the end; under CI=true such a tier fails instead of skipping (test/util/tier.ts).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// The Node the tests run on: the project's `node` devDependency (Node 24 LTS) when run through
// npm (node_modules/.bin comes first on PATH in npm scripts), and every test process is
// started with this same binary (process.execPath). Under CI an older Node is an error.
const major = Number(process.versions.node.split('.')[0]);
console.error(`[test] Node ${process.version} (${process.execPath})`);
if (major < 24) {
  const msg = `[test] Node ${process.version} is older than the project's Node 24 LTS: run \`npm ci\` and then \`npm test\``;
  if (process.env.CI === 'true' || process.env.CI === '1') {
    console.error(msg);
    process.exit(1);
  }
  console.error(`${msg} (continuing outside CI)`);
}
const build = spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs')], { stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);

// Lint (eslint.config.js, type-aware) and format (prettier) before tap: an error fails the
// run, lint warnings are printed. `--no-lint` skips both, for a quick re-run while iterating.
const noLint = process.argv.includes('--no-lint');
if (!noLint) {
  const lint = spawnSync(process.execPath, [join(root, 'node_modules', 'eslint', 'bin', 'eslint.js'), '.'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (lint.status !== 0) {
    console.error('[test] lint errors (above) fail the run; `npx eslint . --fix` fixes some of them');
    process.exit(lint.status ?? 1);
  }
  console.log('[test] lint: no errors');
  // Format (.prettierrc): a file that `npm run format` would change fails the run too.
  const fmt = spawnSync(
    process.execPath,
    [join(root, 'node_modules', 'prettier', 'bin', 'prettier.cjs'), '--check', '--log-level', 'warn', '**/*.{ts,mjs,js}'],
    {
      cwd: root,
      stdio: 'inherit',
    },
  );
  if (fmt.status !== 0) {
    console.error('[test] the files above are not formatted: `npm run format` formats them');
    process.exit(fmt.status ?? 1);
  }
  console.log('[test] format: every file formatted');
}

const args = process.argv.slice(2).filter((a) => a !== '--no-lint');
const files = args
  .filter((a) => !a.startsWith('-'))
  .map((a) => {
    const rel = a.replace(/^\.?\/?/, '').replace(/\.ts$/, '.js');
    return join('dist', rel.startsWith('dist/') ? rel.slice(5) : rel);
  });
const opts = args.filter((a) => a.startsWith('-'));
const tmp = mkdtempSync(join(tmpdir(), 'ovnkube-route-test-'));
const skipFile = join(tmp, 'skipped-tiers');
const tap = join(root, 'node_modules', 'tap', 'dist', 'esm', 'run.mjs');
const targets = files.length ? files : ['dist/test'];
for (const f of targets)
  if (!existsSync(join(root, f))) {
    console.error(`[test] no such test path: ${f}`);
    process.exit(2);
  }
// Only *.test.js files are tests; helpers beside them (dist/test/util, dist/test/cluster) are not.
const testFiles = [];
const collect = (p) => {
  if (statSync(join(root, p)).isDirectory()) for (const f of readdirSync(join(root, p)).sort()) collect(join(p, f));
  else if (p.endsWith('.test.js')) testFiles.push(p);
};
targets.forEach(collect);
if (testFiles.length === 0) {
  console.error(`[test] no *.test.js files under ${targets.join(' ')}`);
  process.exit(2);
}
// The e2e tiers' kube-apiserver + etcd: find or build them before tap, so a first build never
// runs inside tap's per-file timeout. Exit 3 = cannot be had here (no Go, not CI): the e2e
// files then skip loudly through tierGate.
if (testFiles.some((f) => f.startsWith(join('dist', 'test', 'e2e')) || f.includes('-e2e'))) {
  const sets = [
    'controlplane',
    ...(testFiles.some((f) => f.includes('node-e2e') || f.includes('install-e2e')) ? ['node'] : []),
    ...(testFiles.some((f) => f.includes('install-e2e')) ? ['cluster'] : []),
  ];
  for (const set of sets) {
    const cp = spawnSync(process.execPath, [join(root, 'scripts', 'controlplane', 'ensure.mjs'), '--set', set], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    if (cp.status !== 0 && cp.status !== 3) process.exit(cp.status ?? 1);
  }
}
// tap's output is streamed as it comes (a long run shows its progress, and a run killed by
// a time limit still leaves every result so far), and kept for the summary below.
function runTap(files, extra) {
  const child = spawn(process.execPath, [tap, ...opts, ...extra, ...files], {
    cwd: root,
    env: { ...process.env, OVNKUBE_ROUTE_SKIP_REPORT: skipFile },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const tail = [];
  let tailLen = 0;
  child.stdout.on('data', (d) => {
    process.stdout.write(d);
    tail.push(d);
    tailLen += d.length;
    while (tailLen > 1 << 20 && tail.length > 1) tailLen -= tail.shift().length;
  });
  const onSig = (sig) => child.kill(sig);
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, onSig);
  return new Promise((resolve) =>
    child.on('close', (status, signal) => {
      for (const sig of ['SIGINT', 'SIGTERM']) process.off(sig, onSig);
      resolve({ status: status ?? (signal ? 1 : 0), out: Buffer.concat(tail).toString() });
    }),
  );
}
// The real-node files share the machine's one node (a lock): they run after the rest, one at
// a time, so that none waits for the lock inside tap's per-file timeout.
// Tiers that run pods on the real node: every folder named node-e2e or install-e2e (and any
// future <x>-e2e that starts the node must be added here: it would wait for the lock in tap).
const NODE_TIERS = [join('dist', 'test', 'node-e2e'), join('dist', 'test', 'install-e2e')];
const nodeFiles = testFiles.filter((f) => NODE_TIERS.some((d) => f.startsWith(d)));
const otherFiles = testFiles.filter((f) => !nodeFiles.includes(f));
const runs = [];
if (otherFiles.length) runs.push(await runTap(otherFiles, []));
if (nodeFiles.length) {
  if (otherFiles.length) console.log(`\n[test] the real-node files, one at a time: ${nodeFiles.join(' ')}`);
  runs.push(await runTap(nodeFiles, ['--jobs=1']));
}
const res = { status: runs.find((r) => r.status !== 0)?.status ?? 0 };
const counts = runs.map((r) => /# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?(?:, skip: (\d+))?(?:, todo: (\d+))?/.exec(r.out));
const m = counts.some(Boolean) ? [null, ...[1, 2, 3, 4].map((i) => String(counts.reduce((n, c) => n + Number(c?.[i] ?? 0), 0)))] : null;
const skips = existsSync(skipFile) ? readFileSync(skipFile, 'utf8').trim() : '';
rmSync(tmp, { recursive: true, force: true });
if (skips) {
  const bar = '!'.repeat(78);
  console.log(
    `\n${bar}\n!! TEST TIERS SKIPPED (not counted as passing):\n${skips
      .split('\n')
      .map((l) => `!!   ${l}`)
      .join('\n')}\n${bar}`,
  );
}
if (m) {
  const [, total, pass = '0', fail = '0', skip = '0'] = m;
  console.log(`\n${total} assertions/tests in all`);
  console.log(`tests: ${pass} passed, ${fail} failed, ${skip} skipped`);
}
process.exit(res.status ?? 1);
