// The built CLI is the esbuild bundle of scripts/bundle-cli.mjs (issue 12: start-up), made from
// the sources as they are now: fails when dist/bin/ovnkube-route.js is tsc's module instead of
// the bundle, when a file of the bundle is missing, when a source (or the bundler) changed after
// the bundle was made, or when the bundle does not run.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { commands } from '../../bin/main.js';
import { cliPath, repoRoot } from '../util/fixtures.js';
import { loadHook, loadedUrls } from '../util/load-hook.js';

const binDir = join(repoRoot, 'dist', 'bin');
const MARKER = '// ovnkube-route CLI bundle (scripts/bundle-cli.mjs)';

interface BundleRecord {
  inputs: Record<string, string>;
  outputs: Record<string, string[]>;
}

function record(): BundleRecord {
  const file = join(binDir, 'cli-bundle.json');
  if (!existsSync(file)) throw new Error(`${file} is missing: run npm run build`);
  return JSON.parse(readFileSync(file, 'utf8')) as BundleRecord;
}

t.test('both executables are the bundle, and every file of the bundle is there', async (t) => {
  for (const exe of ['ovnkube-route.js', 'kubectl-ovnkube_route.js']) {
    const text = readFileSync(join(binDir, exe), 'utf8');
    t.equal(text.split('\n')[0], '#!/usr/bin/env node', `${exe}: shebang first`);
    t.equal(text.split('\n')[2], MARKER, `${exe}: made by scripts/bundle-cli.mjs, not tsc`);
    t.notMatch(text, /from ["']\.\/main\.js["']|import\(["']\.\/main\.js["']\)/, `${exe}: does not load tsc's bin/main.js`);
  }
  const { outputs } = record();
  t.ok(Object.keys(outputs).includes('ovnkube-route.js'), 'the record lists the entry');
  for (const f of Object.keys(outputs)) {
    t.ok(existsSync(join(binDir, f)), `${f} exists`);
    t.ok(existsSync(join(binDir, f + '.map')), `${f}.map exists`);
  }
  // Every file parses as a module (the agent's and webhook's chunks are not run by the tests here).
  for (const f of Object.keys(outputs)) {
    const r = spawnSync(process.execPath, ['--check', join(binDir, f)], { encoding: 'utf8', timeout: 60_000 });
    t.equal(r.status, 0, `${f} parses${r.stderr ? `: ${r.stderr.split('\n').slice(0, 4).join(' ')}` : ''}`);
  }
  // Every command module is in the bundle (lazy: each is a chunk of its own or shares one).
  const sources = new Set(Object.values(outputs).flat());
  for (const c of commands) t.ok(sources.has(`bin/commands/${c.name}.ts`), `bin/commands/${c.name}.ts is bundled`);
});

t.test("V8's compile hint is on the files of the offline commands, and only theirs", async (t) => {
  const { outputs } = record();
  const fileOf = (src: string): string => {
    const f = Object.entries(outputs).find(([, ins]) => ins.includes(src))?.[0];
    if (!f) throw new Error(`${src} is in no file of the bundle`);
    return f;
  };
  const firstLine = (f: string): string => readFileSync(join(binDir, f), 'utf8').split('\n')[0]!;
  for (const c of commands) {
    const f = fileOf(`bin/commands/${c.name}.ts`);
    const eager = (c as { eager?: true }).eager === true;
    t.equal(
      firstLine(f) === '//# allFunctionsCalledOnLoad',
      eager,
      `${c.name} (${f}): ${eager ? 'hinted' : 'lazy, as V8 compiles by default'}`,
    );
  }
  t.equal(firstLine(fileOf('core/yaml-lib.ts')), '//# allFunctionsCalledOnLoad', 'yaml (loaded by convert and plan) is hinted');
});

t.test('the bundle was made from the sources as they are now', async (t) => {
  const { inputs } = record();
  t.ok(Object.keys(inputs).length > 20, 'the record lists the bundled sources');
  t.ok('bin/main.ts' in inputs && 'scripts/bundle-cli.mjs' in inputs, 'main.ts and the bundler are among them');
  const stale = Object.entries(inputs)
    .filter(([file, sha]) => {
      const path = join(repoRoot, file);
      return !existsSync(path) || createHash('sha256').update(readFileSync(path)).digest('hex') !== sha;
    })
    .map(([file]) => file);
  t.same(stale, [], 'no source changed since the bundle was made (else: npm run build)');
});

t.test('--help runs from the bundle files only', async (t) => {
  const reg = loadHook(t);
  const { outputs } = record();
  for (const [exe, prog] of [
    [cliPath, 'ovnkube-route'],
    [join(binDir, 'kubectl-ovnkube_route.js'), 'kubectl ovnkube-route'],
  ] as const) {
    const r = spawnSync(process.execPath, ['--import', reg, exe, '--help'], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 });
    t.equal(r.status, 0, `${prog} --help exits 0`);
    t.match(r.stdout, `Usage: ${prog} <command> [flags]`, `${prog} --help prints the usage`);
    for (const c of commands) t.match(r.stdout, `  ${c.name} `, `${prog} --help lists ${c.name}`);
    const files = loadedUrls(r.stderr)
      .filter((u) => u.startsWith('file:'))
      .map((u) => fileURLToPath(u));
    t.ok(files.length > 0, `${prog}: the hook saw the modules load`);
    t.same(
      files.filter((f) => !(f.startsWith(binDir + '/') && f.slice(binDir.length + 1) in outputs)),
      [],
      `${prog} --help loads only files of the bundle`,
    );
  }
});

t.test('a command runs from the bundle', async (t) => {
  const r = spawnSync(process.execPath, [cliPath, 'convert', '-f', join(repoRoot, 'examples', 'cr-config.json'), '-o', 'json'], {
    cwd: repoRoot,
    encoding: 'utf8',
    timeout: 120_000,
  });
  t.equal(r.status, 0, 'convert exits 0');
  const route = JSON.parse(r.stdout) as { kind?: string };
  t.equal(route.kind, 'Route', 'convert prints a Route');
  const v = spawnSync(process.execPath, [cliPath, 'version'], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 });
  t.equal(v.status, 0, 'version exits 0');
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  t.match(v.stdout, pkg.version, 'version finds package.json from the bundle (import.meta.url kept per source)');
});
