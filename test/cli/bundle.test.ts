// The built CLI is the esbuild bundle of scripts/bundle-cli.mjs (issue 12: start-up), made from
// the sources as they are now: fails when dist/bin/ovnkube-route.js is tsc's module instead of
// the bundle, when a file of the bundle is missing, when a source (or the bundler) changed after
// the bundle was made, or when the bundle does not run.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';
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
    t.equal(text.split('\n')[1], MARKER, `${exe}: made by scripts/bundle-cli.mjs, not tsc`);
    t.notMatch(text, /from ["']\.\/main\.js["']|import\(["']\.\/main\.js["']\)/, `${exe}: does not load tsc's bin/main.js`);
  }
  const { outputs } = record();
  t.ok(Object.keys(outputs).includes('ovnkube-route.js'), 'the record lists the entry');
  for (const f of Object.keys(outputs)) {
    t.ok(existsSync(join(binDir, f)), `${f} exists`);
    t.ok(existsSync(join(binDir, f + '.map')), `${f}.map exists`);
  }
  // Every file parses as a module (the agent's and webhook's chunks are not run by the tests here).
  // An island is compiled as bin/code-cache.ts does (`node --check` of a CommonJS file with a
  // source map crashes when source maps are on, as under tap).
  for (const f of Object.keys(outputs).filter((f) => f.endsWith('.cjs'))) {
    const src = readFileSync(join(binDir, f), 'utf8');
    t.doesNotThrow(
      () => new Script(`(function (exports, require, module, __filename, __dirname, __ovrtHost) {${src}\n})`, { filename: f }),
      `${f} parses`,
    );
  }
  for (const f of Object.keys(outputs).filter((f) => !f.endsWith('.cjs'))) {
    const r = spawnSync(process.execPath, ['--check', join(binDir, f)], { encoding: 'utf8', timeout: 60_000 });
    t.equal(r.status, 0, `${f} parses${r.stderr ? `: ${r.stderr.split('\n').slice(0, 4).join(' ')}` : ''}`);
  }
  // Every command module is in the bundle (lazy: each is a chunk of its own or shares one).
  const sources = new Set(Object.values(outputs).flat());
  for (const c of commands) t.ok(sources.has(`bin/commands/${c.name}.ts`), `bin/commands/${c.name}.ts is bundled`);
});

/** The offline commands: each is an island (bin/code-cache.ts), the rest are ES module chunks. */
const ISLAND_COMMANDS = ['convert', 'plan', 'inject', 'routes'];

t.test('the offline commands are islands of their own, the others are not', async (t) => {
  const { outputs } = record();
  for (const c of commands) {
    const files = Object.entries(outputs)
      .filter(([, ins]) => ins.includes(`bin/commands/${c.name}.ts`))
      .map(([f]) => f);
    if (ISLAND_COMMANDS.includes(c.name)) t.same(files, [`island-${c.name}.cjs`], `${c.name} is in its island only`);
    else
      t.ok(
        files.length === 1 && files[0]!.endsWith('.js') && !files[0]!.startsWith('island-'),
        `${c.name} is an ES module chunk (${files.join(', ')})`,
      );
  }
  // bin/main.ts catches the commands' UsageError and InputError by class: one bin/cli.ts.
  t.same(
    Object.entries(outputs)
      .filter(([, ins]) => ins.includes('bin/cli.ts'))
      .map(([f]) => f.startsWith('island-')),
    [false],
    'bin/cli.ts is in one file, not in an island',
  );
});

t.test("an island's code cache is made after a successful run, then used", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ovr-code-cache-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_COMPILE_CACHE: dir, NODE_DEBUG: 'ovnkube-route' };
  delete env.NODE_DISABLE_COMPILE_CACHE;
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [cliPath, ...args], { cwd: repoRoot, encoding: 'utf8', env, timeout: 120_000 });
  // Node's cache directory is one subdirectory per Node version, arch and V8 flags.
  const caches = (): Map<string, { size: number; ino: number; text: Buffer }> => {
    const m = new Map<string, { size: number; ino: number; text: Buffer }>();
    for (const sub of existsSync(dir) ? readdirSync(dir) : []) {
      for (const f of readdirSync(join(dir, sub))) {
        if (!f.startsWith('ovnkube-route-')) continue;
        const p = join(dir, sub, f);
        m.set(f, { size: statSync(p).size, ino: statSync(p).ino, text: readFileSync(p) });
      }
    }
    return m;
  };
  const input = join(repoRoot, 'examples', 'cr-config.json');

  const bad = run('convert', '-f', join(dir, 'missing.json'));
  t.equal(bad.status, 1, 'a failed convert exits 1');
  t.same([...caches().keys()], [], 'a failed run writes no island cache (it compiled only part of the command)');

  const help = run('convert', '--help');
  t.equal(help.status, 0, 'convert --help exits 0');
  // Caches of an earlier build of the convert island at the same path go when a new one is
  // written; those of another island, or of the island at another path, stay.
  const sub = readdirSync(dir)[0]!;
  const helpFile = readdirSync(join(dir, sub)).find((f) => f.endsWith('-convert-help'));
  const place = /^(ovnkube-route-convert-[0-9a-f]{8}-)[0-9a-f]{16}-/.exec(helpFile ?? '')?.[1];
  t.ok(place, `--help's cache is named after the island and its path (${helpFile})`);
  const stale = join(dir, sub, `${place}0123456789abcdef-1-convert`);
  const elsewhere = join(
    dir,
    sub,
    `ovnkube-route-convert-${place?.slice(22, 30) === 'ffffffff' ? '00000000' : 'ffffffff'}-0123456789abcdef-1-convert`,
  );
  const other = join(dir, sub, 'ovnkube-route-plan-00000000-0123456789abcdef-1-plan');
  for (const f of [stale, elsewhere, other]) writeFileSync(f, 'old');

  const first = run('convert', '-f', input);
  t.equal(first.status, 0, 'convert exits 0');
  t.match(first.stderr, /island island-convert\.cjs: code cache none /, 'the first run found no cache');
  t.notOk(existsSync(stale), "the convert island's cache of an earlier build was removed");
  t.ok(existsSync(other), "another island's cache was kept");
  t.ok(existsSync(elsewhere), "the island's cache of a build at another path was kept");
  rmSync(other);
  rmSync(elsewhere);
  const after1 = caches();
  const helpCache = [...after1].find(([f]) => /^ovnkube-route-convert-.*-convert-help$/.test(f))?.[1];
  const runCache = [...after1].find(([f]) => /^ovnkube-route-convert-.*-convert$/.test(f));
  t.ok(helpCache, 'convert --help made a cache of its own');
  t.ok(runCache, 'convert made its cache');
  if (!helpCache || !runCache) return;
  // Made after the run: it holds the functions convert compiled (yaml's parser, the validator),
  // which --help never calls.
  t.ok(runCache[1].size > helpCache.size * 2, `the run's cache (${runCache[1].size} B) holds more than --help's (${helpCache.size} B)`);

  const second = run('convert', '-f', input);
  t.equal(second.status, 0, 'convert exits 0 with the cache');
  t.equal(second.stdout, first.stdout, 'and prints the same Route');
  t.match(second.stderr, /island island-convert\.cjs: code cache accepted /, 'V8 accepted the cache');
  const kept = caches().get(runCache[0])!;
  t.ok(kept.ino === runCache[1].ino && kept.text.equals(runCache[1].text), 'V8 took the cache: it was not made again');

  // A cache V8 rejects (here: garbage) is made again, and the output does not change.
  const garbage = Buffer.alloc(runCache[1].size, 7);
  writeFileSync(join(dir, readdirSync(dir)[0]!, runCache[0]), garbage);
  const third = run('convert', '-f', input);
  t.equal(third.status, 0, 'convert exits 0 with a bad cache');
  t.equal(third.stdout, first.stdout, 'and prints the same Route');
  t.match(third.stderr, /island island-convert\.cjs: code cache rejected /, 'V8 rejected the garbage');
  t.notOk(caches().get(runCache[0])!.text.equals(garbage), 'the rejected cache was made again');

  // No compile cache, no island cache.
  const off = mkdtempSync(join(tmpdir(), 'ovr-code-cache-off-'));
  t.teardown(() => rmSync(off, { recursive: true, force: true }));
  const r = spawnSync(process.execPath, [cliPath, 'convert', '-f', input], {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, NODE_COMPILE_CACHE: off, NODE_DISABLE_COMPILE_CACHE: '1' },
    timeout: 120_000,
  });
  t.equal(r.status, 0, 'convert exits 0 without a compile cache');
  t.equal(r.stdout, first.stdout, 'and prints the same Route');
  t.same(readdirSync(off), [], 'NODE_DISABLE_COMPILE_CACHE=1: nothing written');
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
