// The CLI loads commands lazily (bin/main.ts): `--help` and the offline commands must not load
// the Kubernetes client, fastify, prom-client or ajv (validators are compiled at build time).
// Checked by the modules a real CLI process loads (an ESM load hook), never by timing.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { commands } from '../../bin/main.js';
import { cliPath, repoRoot } from '../util/fixtures.js';
import { loadHook, loadedUrls } from '../util/load-hook.js';

const reg = loadHook(t);

/** Modules (URLs) a CLI run loads. */
function loaded(args: string[]): { code: number | null; urls: string[] } {
  const r = spawnSync(process.execPath, ['--import', reg, cliPath, ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, NODE_DEBUG: 'ovnkube-route' },
    timeout: 120_000,
  });
  // The bundle's islands (bin/code-cache.ts) are scripts, which no module hook sees: they say so.
  const islands = [...r.stderr.matchAll(/^OVNKUBE-ROUTE \d+: island (island-[a-z-]+\.cjs):/gm)].map(
    (m) => pathToFileURL(join(repoRoot, 'dist', 'bin', m[1]!)).href,
  );
  return { code: r.status, urls: [...loadedUrls(r.stderr), ...islands] };
}

// ajv's compiler is heavy; the build-time validators require only its tiny runtime helpers
// (ajv/dist/runtime/ucs2length.js), which the synchronous hook sees as they load through require.
const HEAVY = /\/node_modules\/(@kubernetes\/client-node\/|fastify\/|prom-client\/|ajv\/(?!dist\/runtime\/))/;

t.test('every command of the lazy table loads, with the summary the top-level help shows', async (t) => {
  t.same(
    commands.map((c) => c.name),
    ['agent', 'convert', 'explain', 'inject', 'plan', 'routes', 'version', 'webhook'],
  );
  for (const c of commands) {
    const cmd = await c.load();
    t.equal(cmd.name, c.name, `${c.name} loads its own module`);
    t.equal(cmd.summary, c.summary, `${c.name}: same summary in bin/main.ts and the module`);
  }
});

t.test('--help and the offline commands load none of the heavy packages', async (t) => {
  const runs: [string, string[]][] = [
    ['--help', ['--help']],
    ['convert', ['convert', '-f', join(repoRoot, 'examples', 'cr-config.json')]],
    ['plan', ['plan', '-f', join(repoRoot, 'examples', 'demo-bundle.yaml'), '--all']],
    ['inject --help', ['inject', '--help']],
    ['routes --help', ['routes', '--help']],
    ['explain --help', ['explain', '--help']],
    ['plan --help', ['plan', '--help']],
  ];
  for (const [what, args] of runs) {
    const r = loaded(args);
    t.equal(r.code, 0, `${what} exits 0`);
    t.ok(
      r.urls.some((u) => u.endsWith('/dist/bin/ovnkube-route.js')),
      `${what}: the hook saw the CLI load`,
    );
    t.same(
      r.urls.filter((u) => HEAVY.test(u)),
      [],
      `${what}: no Kubernetes client, fastify, prom-client or ajv`,
    );
  }
  // The CLI is a bundle (scripts/bundle-cli.mjs): the sources a run loaded are those of the
  // bundle files it loaded, as the build recorded them.
  const { outputs } = JSON.parse(readFileSync(join(repoRoot, 'dist', 'bin', 'cli-bundle.json'), 'utf8')) as {
    outputs: Record<string, string[]>;
  };
  const sources = (urls: string[]): string[] =>
    urls.flatMap((u) => {
      const m = /\/dist\/bin\/([^/]+\.c?js)$/.exec(u);
      return m ? (outputs[m[1]!] ?? []) : [];
    });
  const convert = sources(loaded(['convert', '-f', join(repoRoot, 'examples', 'cr-config.json')]).urls);
  t.ok(convert.includes('bin/commands/convert.ts'), 'convert loads its own command');
  t.same(
    convert.filter((f) => /^bin\/commands\/(?!convert\.ts)/.test(f)),
    [],
    'convert loads no other command',
  );
  const help = sources(loaded(['--help']).urls);
  t.ok(help.includes('bin/main.ts'), '--help loads main');
  t.same(
    help.filter((f) => f.startsWith('bin/commands/')),
    [],
    '--help loads no command',
  );
});

t.test('yaml comes from the one-file bundle the build makes, and behaves as the package', async (t) => {
  const { createRequire } = await import('node:module');
  const yaml = (await import('../../core/yaml-lib.js')).yamlLib();
  const req = createRequire(import.meta.url);
  const cached = Object.keys(req.cache);
  t.ok(
    cached.some((f) => f.endsWith('/dist/vendor/yaml.cjs')),
    'dist/vendor/yaml.cjs was loaded',
  );
  // In a fresh process (tap itself loads the yaml package into this one):
  const lib = pathToFileURL(join(repoRoot, 'dist', 'core', 'yaml-lib.js')).href;
  const probe = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { createRequire } from 'node:module'; (await import(${JSON.stringify(lib)})).yamlLib(); console.log(JSON.stringify(Object.keys(createRequire(import.meta.url).cache)))`,
    ],
    { encoding: 'utf8' },
  );
  const files = JSON.parse(probe.stdout) as string[];
  t.ok(
    files.some((f) => f.endsWith('/dist/vendor/yaml.cjs')),
    'a fresh process loads the bundle',
  );
  t.notOk(
    files.some((f) => f.includes('/node_modules/yaml/')),
    "and none of the package's 72 files",
  );
  const real = req('yaml') as typeof yaml;
  const doc = {
    apiVersion: 'k8s.ovn.org/v1',
    kind: 'Route',
    metadata: { name: 'x' },
    spec: { route: [{ dst: '10.0.0.0/8', dev: 'eth1' }] },
  };
  t.equal(yaml.stringify(doc), real.stringify(doc), 'same stringify output');
  t.same(yaml.parse('a: [1, {b: c}]\n'), real.parse('a: [1, {b: c}]\n'), 'same parse');
});
