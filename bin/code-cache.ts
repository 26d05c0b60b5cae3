/**
 * The built CLI's "islands" (scripts/bundle-cli.mjs): the offline commands (convert, plan,
 * inject, routes, each with all it imports) and the large libraries (yaml, the Route validator,
 * netlink's rtnetlink code) are CommonJS files of their own, dist/bin/island-<name>.cjs, which
 * the bundle loads through loadIsland() instead of as ES module chunks, so that their V8 code
 * cache holds the code a run compiled.
 *
 * Why: Node's compile cache (module.enableCompileCache, used by the entry points) stores V8's
 * code cache of a file as it was right after compiling it, i.e. its top level only; V8
 * compiles a function when it is first called, so every run of `convert` compiled yaml's
 * parser and the Route validator (one 300 KB function) again: most of the command's time. A
 * vm.Script can make its code cache after it ran (Script#createCachedData), and then the cache
 * holds every function compiled so far. loadIsland does that at the exit of a run that found no
 * usable cache; later runs deserialize the compiled functions instead of compiling them.
 *
 * The cache files live in Node's compile cache directory (module.getCompileCacheDir(), whose
 * name carries the Node version, arch and V8 flags; used only when no other account can write
 * into it, see bin/compile-cache.ts), named after the island, its path, the
 * sha256 of its file made at build time, its length and the command that ran (each command
 * compiles different functions; cacheTag). The cache is written by the first run of a command
 * that exits 0 and found none (or a rejected one), and kept; that run removes the caches of
 * earlier builds of the island at the same path. V8 rejects a cache made by another V8 or with
 * other flags, and a rejected cache is made again. V8 checks a cache's version, flags, source
 * length and size, but not a checksum of its content (only in debug builds; Node's own cache
 * adds a crc32, whose zlib costs ~2.5 ms to load): the files are written whole (to a file of
 * this process, then renamed) and owner-only.
 * No compile cache (NODE_DISABLE_COMPILE_CACHE=1, or not enabled) means no island cache either.
 * NODE_DEBUG=ovnkube-route says what each load found. Nothing here changes V8's flags.
 */
import { readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire, getCompileCacheDir } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { debuglog } from 'node:util';
import { notPrivate } from './compile-cache.js';
import { Script } from 'node:vm';

/** NODE_DEBUG=ovnkube-route: one line per island loaded, with what became of its cache. */
const debug = debuglog('ovnkube-route');

const loaded = new Map<string, unknown>();

/** 8 hex digits of FNV-1a over a path (no node:crypto for this: it loads ~40 modules). */
function pathHash(path: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < path.length; i++) h = Math.imul(h ^ path.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

/**
 * The command this process runs, from its arguments (islands are loaded by the built CLI only):
 * each command compiles different functions, and --help next to none, so each has its cache.
 */
function cacheTag(): string {
  const [name = '', ...rest] = process.argv.slice(2);
  return name.replace(/[^a-z0-9-]/gi, '_') + (rest.includes('--help') || rest.includes('-h') ? '-help' : '');
}
/** An island's `await import('<package>')`: a script has no import() of its own. */
const hostImport = (specifier: string): Promise<unknown> => import(specifier);

/**
 * The exports of dist/bin/island-<name>.cjs, built as `module.exports = [...]`; `hash` is the
 * sha256 of the file the bundler wrote (it names the cache file). Loaded once per process.
 */
export function loadIsland(name: string, hash: string, modules: Record<string, unknown> = {}): unknown {
  const done = loaded.get(name);
  if (done) return done;
  // import.meta.url is that of dist/bin/code-cache.js: the islands are next to it.
  const file = fileURLToPath(new URL(`./island-${name}.cjs`, import.meta.url));
  const source = readFileSync(file, 'utf8');
  // Only a folder no other account can write into (a cache is code this CLI runs).
  const compileDir = getCompileCacheDir();
  const dir = compileDir !== undefined && notPrivate(compileDir) === null ? compileDir : undefined;
  // Named after the island's path too: builds in other folders (worktrees, CI) share the
  // directory, and each keeps its caches.
  const place = `ovnkube-route-${name}-${pathHash(file)}-`;
  const cacheFile = dir ? join(dir, `${place}${hash.slice(0, 16)}-${source.length}-${cacheTag()}`) : undefined;
  let cachedData: Buffer | undefined;
  if (cacheFile) {
    try {
      cachedData = readFileSync(cacheFile);
    } catch {
      // No cache yet (or unreadable): compile, and write one at exit.
    }
  }
  // The wrapper of Node's CommonJS loader; the line break keeps a last-line comment closed.
  const script = new Script(`(function (exports, require, module, __filename, __dirname, __ovrtHost) {${source}\n})`, {
    filename: file,
    cachedData,
  });
  const module = { exports: {} as unknown };
  (script.runInThisContext() as (...a: unknown[]) => void).call(
    module.exports,
    module.exports,
    createRequire(file),
    module,
    file,
    dirname(file),
    { modules, import: hostImport },
  );
  const cache = !cacheFile ? 'off' : !cachedData ? 'none' : script.cachedDataRejected ? 'rejected' : 'accepted';
  debug('island %s: code cache %s (%s)', `island-${name}.cjs`, cache, cacheFile ?? 'no compile cache directory');
  if (cacheFile && (cache === 'none' || cache === 'rejected')) {
    // At exit the functions this run called are compiled, and the cache holds them. Written to
    // a file of this process, then renamed: a concurrent run reads a whole cache or none.
    process.once('exit', (code) => {
      // Only a run that succeeded: one that stopped at a usage or input error compiled only
      // part of what the command uses, and the cache it made would be kept.
      if (code !== 0) return;
      try {
        const tmp = `${cacheFile}.${process.pid}`;
        // Owner-only, as Node writes its own cache files: a cache is code this CLI will run.
        writeFileSync(tmp, script.createCachedData(), { mode: 0o600 });
        renameSync(tmp, cacheFile);
        // The caches of earlier builds of this island, in this folder (another hash), are of no
        // use any more.
        for (const f of readdirSync(dir!)) {
          const h = f.startsWith(place) ? /^([0-9a-f]{16})-/.exec(f.slice(place.length))?.[1] : undefined;
          if (h !== undefined && h !== hash.slice(0, 16)) rmSync(join(dir!, f), { force: true });
        }
      } catch {
        // A read-only or full cache directory only costs the next run its compile time.
      }
    });
  }
  loaded.set(name, module.exports);
  return module.exports;
}
