/**
 * Where this CLI keeps V8's code cache (Node's compile cache, and the islands' caches of
 * bin/code-cache.ts), and why never in a shared folder.
 *
 * A code cache is code the CLI runs: V8 checks a cache's version, flags and source length,
 * not where its bytes came from. Node's default folder is `<tmpdir>/node-compile-cache`, which
 * any account on the machine can create first; a cache planted there would run inside the
 * next `ovnkube-route inject` or `routes`, as root. So the cache goes in
 * `$XDG_CACHE_HOME/ovnkube-route/node-compile-cache` (default `~/.cache/...`), made owner-only,
 * and is used only when that folder and every folder above it belong to this user or to root
 * and no other account can write into them (a sticky folder such as /tmp counts as a parent:
 * others cannot replace what is ours in it). Otherwise the CLI runs without a cache: a cache
 * only saves start-up time.
 *
 * NODE_COMPILE_CACHE=dir chooses the folder (the same check applies to the caches this CLI
 * adds; Node itself reads that folder from start-up on, as its documentation says);
 * NODE_DISABLE_COMPILE_CACHE=1 turns every cache off.
 */
import { lstatSync, mkdirSync, realpathSync } from 'node:fs';
import { enableCompileCache } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/** The default folder: under the user's cache directory, never the shared temp folder. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME?.startsWith('/') ? env.XDG_CACHE_HOME : join(env.HOME?.startsWith('/') ? env.HOME : homedir(), '.cache');
  return join(base, 'ovnkube-route', 'node-compile-cache');
}

/**
 * Why `dir` cannot hold code this process runs, or null when it can: it and each folder above
 * it (symbolic links resolved) belong to this user or to root, and no other account can write
 * into them; a parent with the sticky bit may be writable by others.
 */
export function notPrivate(dir: string, uid = process.geteuid?.() ?? 0): string | null {
  let real: string;
  try {
    real = realpathSync.native(dir);
  } catch (e) {
    return `${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
  for (let d = real, first = true; ; d = dirname(d), first = false) {
    const st = lstatSync(d);
    if (first && !st.isDirectory()) return `${d} is not a folder`;
    if (st.uid !== uid && st.uid !== 0) return `${d} belongs to uid ${st.uid}`;
    if ((st.mode & 0o022) !== 0 && (first || (st.mode & 0o1000) === 0)) {
      return `${d} can be written by others (mode ${(st.mode & 0o7777).toString(8)})`;
    }
    if (d === dirname(d)) return null;
  }
}

/**
 * Turn Node's compile cache on in a private folder (see the file comment); the folder, or
 * undefined when the cache stays off. Never throws: the CLI works the same without it.
 */
export function enablePrivateCompileCache(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.NODE_DISABLE_COMPILE_CACHE) return undefined;
  const dir = env.NODE_COMPILE_CACHE || defaultCacheDir(env);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (notPrivate(dir) !== null) return undefined;
  } catch {
    return undefined;
  }
  return enableCompileCache(dir).directory;
}
