// Where the CLI keeps V8's code cache (bin/compile-cache.ts): a code cache is code the CLI
// runs, as root for inject and routes, so it is kept only in a folder no other account can
// write into, and by default under the user's own cache folder, never the shared temp folder.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { defaultCacheDir, notPrivate } from '../../bin/compile-cache.js';
import { cliPath, repoRoot } from '../util/fixtures.js';
import { nodeCommand } from '../util/node-child.js';

const root = process.geteuid?.() === 0;

function tmp(t: Test): string {
  const d = mkdtempSync(join(tmpdir(), 'ovr-cc-'));
  t.teardown(() => {
    chmodSync(d, 0o700);
    rmSync(d, { recursive: true, force: true });
  });
  return d;
}

t.test('the default folder is under the user cache folder', async (t) => {
  t.equal(defaultCacheDir({ HOME: '/home/u' }), '/home/u/.cache/ovnkube-route/node-compile-cache');
  t.equal(defaultCacheDir({ HOME: '/home/u', XDG_CACHE_HOME: '/var/cache/u' }), '/var/cache/u/ovnkube-route/node-compile-cache');
  t.equal(
    defaultCacheDir({ HOME: '/home/u', XDG_CACHE_HOME: 'relative' }),
    '/home/u/.cache/ovnkube-route/node-compile-cache',
    'a relative XDG_CACHE_HOME is ignored',
  );
});

t.test('a folder is private when it and its parents are ours (or root’s) and no one else can write into them', async (t) => {
  const d = tmp(t); // under the sticky temp folder
  const own = join(d, 'own');
  mkdirSync(own, { mode: 0o700 });
  t.equal(notPrivate(own), null, 'owner-only, under folders only root and we can write (a sticky /tmp above)');
  chmodSync(own, 0o777);
  t.match(notPrivate(own), /can be written by others \(mode 777\)/, 'writable by others');
  chmodSync(own, 0o720);
  t.match(notPrivate(own), /can be written by others \(mode 720\)/, 'writable by the group');
  chmodSync(own, 0o1777);
  t.match(notPrivate(own), /can be written by others/, 'the folder itself may not be sticky and open');
  chmodSync(own, 0o700);
  chmodSync(d, 0o777);
  t.match(notPrivate(own), /can be written by others/, 'a parent others can write (without the sticky bit) could replace it');
  chmodSync(d, 0o1777);
  t.equal(notPrivate(own), null, 'a sticky parent cannot');
  chmodSync(d, 0o700);
  const link = join(d, 'link');
  symlinkSync(own, link);
  t.equal(notPrivate(link), null, 'a symbolic link is judged by where it leads');
  const file = join(d, 'file');
  writeFileSync(file, '');
  t.match(notPrivate(file), /is not a folder/);
  t.match(notPrivate(join(d, 'missing')), /ENOENT/);
  if (root) {
    chownSync(own, 65534, 65534);
    t.match(notPrivate(own), /belongs to uid 65534/, 'a folder of another account');
  }
});

t.test('the built CLI keeps its caches in the private folder, and none in a folder others can write', async (t) => {
  const run = (home: string, debug = true) => {
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, ...(debug ? { NODE_DEBUG: 'ovnkube-route' } : {}) };
    delete env.NODE_COMPILE_CACHE;
    delete env.NODE_DISABLE_COMPILE_CACHE;
    delete env.XDG_CACHE_HOME;
    const [cmd, args] = nodeCommand([cliPath, 'convert', '-f', join(repoRoot, 'examples', 'cr-config.json')]);
    const r = spawnSync(cmd, args, { cwd: repoRoot, encoding: 'utf8', env, timeout: 120_000 });
    t.equal(r.status, 0, `convert exits 0 (${r.stderr.slice(0, 300)})`);
    return r;
  };
  const files = (dir: string): string[] =>
    existsSync(dir)
      ? readdirSync(dir, { recursive: true, withFileTypes: true })
          .filter((e) => e.isFile())
          .map((e) => e.name)
      : [];

  const home = tmp(t);
  const cache = join(home, '.cache', 'ovnkube-route', 'node-compile-cache');
  const first = run(home);
  t.match(first.stderr, /code cache none \(/, 'the first run finds no cache');
  t.ok(first.stderr.includes(cache), `and names the folder under HOME (${cache})`);
  t.equal(statSync(cache).mode & 0o777, 0o700, 'the folder is made owner-only');
  t.ok(
    files(cache).some((f) => f.startsWith('ovnkube-route-convert-')),
    'the island cache is written there',
  );
  t.match(run(home).stderr, /code cache accepted/, 'and used by the next run');

  const open = tmp(t);
  const openCache = join(open, '.cache', 'ovnkube-route', 'node-compile-cache');
  mkdirSync(openCache, { recursive: true });
  chmodSync(openCache, 0o777);
  const r = run(open);
  t.match(r.stderr, /code cache off \(no compile cache directory\)/, 'a folder others can write is not used');
  t.same(files(openCache), [], 'and nothing is written into it');
});
