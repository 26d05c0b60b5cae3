/**
 * Which modules a node process loads: a module.registerHooks file (Node >= 22.15: synchronous
 * hooks on the main thread, so every line is written before the process exits; register()'s
 * off-thread hooks could lose the last ones) that writes "LOADED <url>" to stderr for each
 * module, and the parser of those lines. For the CLI's lazy-loading and bundle tests.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';

/** Write the hook file (removed at t's teardown); pass it as `--import FILE`. */
export function loadHook(t: Pick<Test, 'teardown'>): string {
  const dir = mkdtempSync(join(tmpdir(), 'ovnkube-route-load-hook-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'register.mjs');
  writeFileSync(
    file,
    "import { registerHooks } from 'node:module';\n" +
      'registerHooks({ load(url, context, next) { process.stderr.write(`LOADED ${url}\\n`); return next(url, context); } });\n',
  );
  return file;
}

/** The URLs a run with the hook loaded, from its stderr. */
export function loadedUrls(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('LOADED '))
    .map((l) => l.slice(7));
}
