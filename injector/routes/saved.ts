/**
 * Durable storage of original default routes (SavedDefault), so a replaced default route
 * can be restored after the process restarts. One small JSON file per (key, family) in a
 * state dir, written with write-to-temp + fsync + rename + fsync(dir): after a crash the
 * file is either the old or the new content, never half of one.
 *
 * The key names the pod sandbox; the agent uses what identifies it best (e.g. the pod UID),
 * the CLI uses the netns file name plus its inode.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Family } from '../kernel/netlink-codec.js';
import type { SavedDefault } from './diff.js';
import { withCause } from '../../platform/errors.js';

const KEY_RE = /^[A-Za-z0-9._-]{1,200}$/;

/** Serialize a saved default route (stable key order). */
export function encodeSavedDefault(s: SavedDefault): string {
  const route = s.route && {
    dev: s.route.dev,
    ...(s.route.via !== undefined ? { via: s.route.via } : {}),
    protocol: s.route.protocol,
    scope: s.route.scope,
    priority: s.route.priority,
    ...(s.route.prefsrc !== undefined ? { prefsrc: s.route.prefsrc } : {}),
    ...(s.route.mtu !== undefined ? { mtu: s.route.mtu } : {}),
    ...(s.route.advmss !== undefined ? { advmss: s.route.advmss } : {}),
  };
  return JSON.stringify({ v: 1, family: s.family, route }) + '\n';
}

/** Parse a saved default route; throws an Error naming the file and the bad field. */
export function parseSavedDefault(text: string, file: string): SavedDefault {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new Error(withCause(`saved default route ${file}: not JSON`, e), { cause: e });
  }
  const bad = (field: string, want: string): Error => new Error(`saved default route ${file}: ${field} must be ${want}`);
  if (o?.v !== 1) throw bad('v', '1');
  if (o.family !== 4 && o.family !== 6) throw bad('family', '4 or 6');
  if (o.route === null) return { family: o.family, route: null };
  const r = o.route as Record<string, unknown> | undefined;
  if (typeof r !== 'object' || r === null) throw bad('route', 'an object or null');
  if (typeof r.dev !== 'string' || r.dev === '') throw bad('route.dev', 'a device name');
  if (r.via !== undefined && typeof r.via !== 'string') throw bad('route.via', 'an IP address');
  for (const f of ['protocol', 'scope', 'priority'] as const) {
    if (!Number.isInteger(r[f]) || (r[f] as number) < 0) throw bad(`route.${f}`, 'a non-negative integer');
  }
  if (r.prefsrc !== undefined && typeof r.prefsrc !== 'string') throw bad('route.prefsrc', 'an IP address');
  for (const f of ['mtu', 'advmss'] as const) {
    if (r[f] !== undefined && (!Number.isInteger(r[f]) || (r[f] as number) < 0)) throw bad(`route.${f}`, 'a non-negative integer');
  }
  return {
    family: o.family,
    route: {
      dev: r.dev,
      ...(r.via !== undefined ? { via: r.via as string } : {}),
      protocol: r.protocol as number,
      scope: r.scope as number,
      priority: r.priority as number,
      ...(r.prefsrc !== undefined ? { prefsrc: r.prefsrc as string } : {}),
      ...(r.mtu !== undefined ? { mtu: r.mtu as number } : {}),
      ...(r.advmss !== undefined ? { advmss: r.advmss as number } : {}),
    },
  };
}

/** Write `text` to `path` atomically and durably (temp file, fsync, rename, fsync dir). */
export function writeFileDurable(path: string, text: string): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/** Saved default routes of one sandbox (`key`) in `dir`. */
export class SavedDefaultStore {
  constructor(
    readonly dir: string,
    readonly key: string,
  ) {
    if (!KEY_RE.test(key)) throw new Error(`saved default key "${key}" must match ${KEY_RE}`);
  }

  private file(family: Family): string {
    return join(this.dir, `${this.key}.default-v${family}.json`);
  }

  /** Load what is saved (missing files are simply absent). Throws on a corrupt file. */
  load(): SavedDefault[] {
    const out: SavedDefault[] = [];
    for (const f of [4, 6] as Family[]) {
      let text: string;
      // Most sandboxes have nothing saved: ask with a stat that does not throw (an
      // exception per absent file was most of an agent start's cost here).
      if (!statSync(this.file(f), { throwIfNoEntry: false })) continue;
      try {
        text = readFileSync(this.file(f), 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e;
      }
      const s = parseSavedDefault(text, this.file(f));
      if (s.family !== f) throw new Error(`saved default route ${this.file(f)}: family ${s.family} in a file for IPv${f}`);
      out.push(s);
    }
    return out;
  }

  /** Save durably (use as ApplyOptions.saveDefault). */
  save(s: SavedDefault): void {
    writeFileDurable(this.file(s.family), encodeSavedDefault(s));
  }

  /** Drop the saved route of `family` (use as ApplyOptions.forgetDefault). */
  forget(family: Family): void {
    rmSync(this.file(family), { force: true });
  }
}
