/**
 * CniCacheIndex: the CNI result cache dir (default /var/lib/cni/results) as a live index
 * of sandboxes, kept by inotify (DirWatcher) plus one initial scan and a rare full rescan
 * (the backstop for events inotify may drop on overflow).
 *
 * A cache file may be written after, before, or long before its pod shows up in the API,
 * so the index keeps every pod sandbox it finds, whether or not a pod is known for it; the
 * agent joins it with the pod watch from either side: `onChange` names the pods whose
 * entries changed, and `lookup` answers for a pod at any time.
 *
 * Files are read when they change. libcni writes them with a plain write(2) (not a rename
 * into place), so a read may see half a file: it then fails to parse and is read again
 * when the next change event for that name arrives (the rest of the write). A file that
 * stays unparsable is reported once per content (mtime and size), never fatal.
 *
 * A file larger than `maxFileBytes` (1 MiB; real ones are a few KiB) is refused without
 * being read past the cap, so a huge or growing file cannot blow up the agent's memory at
 * every start; it is reported once per content (warning and `onTooLarge`).
 */
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseCniCacheFile, type CniCacheEntry } from './cni-cache.js';
import type { Logger } from '../../platform/log.js';
import { DirWatcher } from './watch.js';

/** A pod as the cache names it: namespace/name, and the UID when the runtime passed one. */
export interface PodRef {
  namespace: string;
  name: string;
  uid?: string;
}

/** One sandbox entry, with when this process first saw it (the start of injection latency). */
export interface IndexedEntry extends CniCacheEntry {
  seenAt: number;
}

/** Where a pod's netns is, according to the cache. */
export interface CacheLookup {
  sandbox: string;
  file: string;
  seenAt: number;
  podUid?: string;
  containerId?: string;
}

export interface CniCacheIndexOptions {
  onChange: (pods: PodRef[]) => void;
  log: Logger;
  /** Unparsable files (counted once per content). */
  onParseError?: (file: string, error: string) => void;
  /** Files over maxFileBytes, refused (counted once per content). */
  onTooLarge?: (file: string, size: number) => void;
  /** inotify events of the dir were lost to a queue overflow (a rescan follows at once). */
  onOverflow?: () => void;
  /** Largest cache file read (default 1 MiB). */
  maxFileBytes?: number;
  /** Full rescan period in ms (default 5 min; 0 disables). */
  rescanMs?: number;
  now?: () => number;
  debounceMs?: number;
}

const nsName = (ns: string, name: string): string => `${ns}/${name}`;

/** Cap on a CNI cache file's size: real ones are a few KiB. */
export const DEFAULT_MAX_FILE_BYTES = 1024 * 1024;

/** Live index of the CNI cache dir. start() resolves after the initial scan. */
export class CniCacheIndex {
  private readonly byFile = new Map<string, IndexedEntry>();
  private readonly byPod = new Map<string, Set<string>>();
  /** sandbox (netns path) -> files naming it: entriesNaming runs for every pod located, so it must not walk every file. */
  private readonly bySandbox = new Map<string, Set<string>>();
  /** Files whose last read failed to parse: file -> "mtime:size" of that content. */
  private readonly badContent = new Map<string, string>();
  private readonly watcher: DirWatcher;
  private chain: Promise<void> = Promise.resolve();
  private rescanTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly now: () => number;

  constructor(
    readonly dir: string,
    private readonly opts: CniCacheIndexOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.watcher = new DirWatcher(dir, {
      log: opts.log,
      debounceMs: opts.debounceMs ?? 20,
      onNames: (names) => {
        void this.enqueue(() => this.refresh([...names]));
      },
      onRewatch: () => {
        void this.rescan();
      },
      ...(opts.onOverflow ? { onOverflow: opts.onOverflow } : {}),
    });
  }

  /** Watch first (so nothing written during the scan is missed), then scan. */
  async start(): Promise<void> {
    this.watcher.start();
    await this.rescan();
    const every = this.opts.rescanMs ?? 300_000;
    if (every > 0) {
      this.rescanTimer = setInterval(() => {
        void this.rescan();
      }, every);
      this.rescanTimer.unref();
    }
  }

  close(): void {
    this.closed = true;
    this.watcher.close();
    if (this.rescanTimer) clearInterval(this.rescanTimer);
  }

  /** Whether inotify is watching the dir (false while it does not exist). */
  get watching(): boolean {
    return this.watcher.watching;
  }

  /** Number of sandbox entries known. */
  get size(): number {
    return this.byFile.size;
  }

  /** Resolves once every refresh queued so far has been processed (tests, startup). */
  settled(): Promise<void> {
    return this.chain;
  }

  /**
   * The netns of a pod: entries naming namespace/name whose UID (when they carry one)
   * equals `uid`. A pod has one file per network, all naming one sandbox; after a sandbox
   * restart old files may linger until the CNI DEL, so the newest file wins.
   */
  lookup(namespace: string, name: string, uid?: string): CacheLookup | null {
    const files = this.byPod.get(nsName(namespace, name));
    if (!files) return null;
    let best: IndexedEntry | undefined;
    for (const f of files) {
      const e = this.byFile.get(f)!;
      if (uid !== undefined && e.podUid !== undefined && e.podUid !== uid) continue;
      if (!best || e.mtimeMs > best.mtimeMs || (e.mtimeMs === best.mtimeMs && e.file > best.file)) best = e;
    }
    if (!best) return null;
    // seenAt of the sandbox: the earliest file of it this process saw.
    let seenAt = best.seenAt;
    for (const f of files) {
      const e = this.byFile.get(f)!;
      if (e.sandbox === best.sandbox) seenAt = Math.min(seenAt, e.seenAt);
    }
    return {
      sandbox: best.sandbox,
      file: best.file,
      seenAt,
      ...(best.podUid ? { podUid: best.podUid } : {}),
      ...(best.containerId ? { containerId: best.containerId } : {}),
    };
  }

  /** Every entry naming `sandbox` (several pods' files naming one netns is a conflict to decide). */
  entriesNaming(sandbox: string): IndexedEntry[] {
    return [...(this.bySandbox.get(sandbox) ?? [])].map((f) => this.byFile.get(f)!);
  }

  /** Read the whole dir again and reconcile the index with it (files gone, changed, new). */
  rescan(): Promise<void> {
    return this.enqueue(async () => {
      let names: string[];
      try {
        names = await readdir(this.dir);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
          this.opts.log.warn({ dir: this.dir, error: (e as Error).message }, 'cannot read the CNI cache dir');
        names = [];
      }
      const present = new Set(names);
      await this.refresh([...new Set([...names, ...[...this.byFile.keys()].filter((f) => !present.has(f))])]);
    });
  }

  private enqueue(job: () => Promise<void>): Promise<void> {
    this.chain = this.chain.then(job).catch((e: unknown) => {
      this.opts.log.error({ dir: this.dir, error: (e as Error).message }, 'CNI cache index refresh failed');
    });
    return this.chain;
  }

  /** Re-read the given file names and tell the owner which pods' entries changed. */
  private async refresh(names: string[]): Promise<void> {
    if (this.closed) return;
    const changed = new Map<string, PodRef>();
    const note = (e: CniCacheEntry): void => {
      changed.set(nsName(e.podNamespace, e.podName), {
        namespace: e.podNamespace,
        name: e.podName,
        ...(e.podUid ? { uid: e.podUid } : {}),
      });
    };
    for (const name of names.sort()) {
      if (name.startsWith('.')) continue; // temp files of writers that rename into place
      const old = this.byFile.get(name);
      const next = this.read(name);
      if (next === 'keep') continue;
      if (next === null) {
        if (old) {
          this.drop(old);
          note(old);
        }
        continue;
      }
      if (
        old &&
        old.sandbox === next.sandbox &&
        old.mtimeMs === next.mtimeMs &&
        old.podUid === next.podUid &&
        old.podNamespace === next.podNamespace &&
        old.podName === next.podName
      )
        continue;
      if (old) {
        this.drop(old);
        note(old);
      }
      const entry: IndexedEntry = { ...next, seenAt: old && old.sandbox === next.sandbox ? old.seenAt : this.now() };
      this.byFile.set(name, entry);
      const key = nsName(entry.podNamespace, entry.podName);
      const set = this.byPod.get(key) ?? new Set<string>();
      set.add(name);
      this.byPod.set(key, set);
      const sb = this.bySandbox.get(entry.sandbox) ?? new Set<string>();
      sb.add(name);
      this.bySandbox.set(entry.sandbox, sb);
      note(entry);
    }
    if (changed.size && !this.closed) this.opts.onChange([...changed.values()]);
  }

  private drop(e: IndexedEntry): void {
    this.byFile.delete(e.file);
    const key = nsName(e.podNamespace, e.podName);
    const set = this.byPod.get(key);
    set?.delete(e.file);
    if (set && set.size === 0) this.byPod.delete(key);
    const sb = this.bySandbox.get(e.sandbox);
    sb?.delete(e.file);
    if (sb && sb.size === 0) this.bySandbox.delete(e.sandbox);
  }

  /** Log a refusal of `name` once per `content` (as every other refusal is logged). */
  private refuseOnce(name: string, content: string, msg: string, fields: Record<string, unknown>): void {
    if (this.badContent.get(name) === content) return;
    this.badContent.set(name, content);
    this.opts.log.warn(fields, msg);
  }

  /**
   * Read one file: the entry, null when it is gone or not a pod sandbox file, or 'keep'
   * when it is unparsable (maybe half-written: keep what we had, read again on the next change).
   */
  private read(name: string): CniCacheEntry | null | 'keep' {
    const path = join(this.dir, name);
    const cap = this.opts.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
    let text: string;
    let st;
    try {
      // Opened first, then checked through the fd: a name swapped between a check and the
      // open cannot make us read something else. No symlinks (libcni writes regular files),
      // and O_NONBLOCK so that a FIFO put here can never block. Synchronous: a few KiB of a
      // local file, where the thread pool's four round trips (open, stat, read, close) and
      // their promises cost more than the reads (an agent start reads one file per pod).
      const fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
      let got: number;
      let buf: Buffer;
      try {
        st = fstatSync(fd);
        if (!st.isFile()) {
          this.refuseOnce(name, `${st.mtimeMs}:not-a-file`, 'CNI cache file refused: not a regular file', { file: path });
          return null;
        }
        // Never read past the cap, even if the file grew since stat.
        buf = Buffer.allocUnsafe(Math.min(st.size, cap) + 1);
        got = readSync(fd, buf, 0, buf.length, 0);
      } finally {
        closeSync(fd);
      }
      if (st.size > cap || got > cap) {
        const size = Math.max(st.size, got);
        const content = `${st.mtimeMs}:${size}:too-large`;
        if (this.badContent.get(name) !== content) {
          this.badContent.set(name, content);
          this.opts.log.warn(
            { file: path, bytes: size, maxBytes: cap },
            'CNI cache file refused: larger than the cap (real ones are a few KiB)',
          );
          this.opts.onTooLarge?.(name, size);
        }
        return null;
      }
      text = buf.subarray(0, got).toString('utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ELOOP') {
        this.refuseOnce(name, 'symlink', 'CNI cache file refused: a symlink (libcni writes regular files)', { file: path });
        return null;
      }
      if (code !== 'ENOENT') this.opts.log.warn({ file: path, error: (e as Error).message }, 'cannot read CNI cache file');
      this.badContent.delete(name);
      return null;
    }
    const r = parseCniCacheFile(name, text);
    if (r.ok) {
      this.badContent.delete(name);
      return { ...r.entry, mtimeMs: st.mtimeMs };
    }
    // Files of other kinds (no pod in cniArgs, e.g. a runtime's own networks) are not sandboxes of pods.
    if (/not a pod's sandbox/.test(r.error)) return null;
    const content = `${st.mtimeMs}:${st.size}`;
    if (this.badContent.get(name) !== content) {
      this.badContent.set(name, content);
      this.opts.log.debug({ file: path, error: r.error }, 'CNI cache file does not parse (yet); reading it again when it changes');
      this.opts.onParseError?.(name, r.error);
    }
    return 'keep';
  }
}
