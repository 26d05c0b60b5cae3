/**
 * DirWatcher: names of the files that changed in one directory, from inotify (fs.watch is
 * inotify on Linux), batched. The agent uses it on the CNI cache dir (a sandbox's files
 * appear) and on the netns dir (a netns is created or deleted): watching, not polling.
 *
 * What fs.watch leaves to us:
 * - Bursts: a file written in several write(2)s gives one event per write, and a
 *   rename-into-place gives events for the temp name and the final one. Names are
 *   collected until the directory has been quiet for `debounceMs` (at most `maxDelayMs`
 *   after the first one), then handed over in one batch.
 * - A directory that does not exist yet (the CNI creates its cache dir on the first pod):
 *   fs.watch fails with ENOENT, so the watcher retries every `retryMs` until it exists.
 *   Only the existence of the directory is polled; its contents never are.
 * - A watch that breaks (the directory is removed or replaced): it is re-established after
 *   `retryMs`, and `onRewatch` asks the owner to rescan, since events were missed.
 * - A burst larger than the kernel's inotify queue (fs.inotify.max_queued_events, 16384 by
 *   default) loses events, and libuv drops the IN_Q_OVERFLOW that says so. A second inotify
 *   queue on the same directory (inotifyOverflowSentinel, native), drained right after each
 *   fs.watch event, overflows whenever libuv's does: then a warning is logged, `onOverflow`
 *   is called (a metric) and `onRewatch` asks for a rescan at once.
 */
import { watch, type FSWatcher } from 'node:fs';
import type { Logger } from '../../platform/log.js';
import { inotifyOverflowSentinel } from '../kernel/netns.js';

/** Tells whether the inotify queue of a directory overflowed since the last call. */
export interface OverflowSentinel {
  drain(): boolean;
  close(): void;
}

export interface DirWatcherOptions {
  /** Called with the names that changed (files added, written, renamed or removed). */
  onNames: (names: Set<string>) => void;
  /** Called when a watch was (re-)established after a gap: events may have been missed. */
  onRewatch?: () => void;
  log: Logger;
  /** Called when inotify events were lost to a queue overflow (a rescan is asked for too). */
  onOverflow?: () => void;
  /** Overflow detection (default: the native sentinel; tests may pass their own). */
  sentinel?: (dir: string) => OverflowSentinel;
  debounceMs?: number; // default 20
  maxDelayMs?: number; // default 200
  retryMs?: number; // default 2000
}

/** Watches one directory; start() then close(). */
export class DirWatcher {
  private fsw: FSWatcher | null = null;
  private pending = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private firstAt = 0;
  private retry: NodeJS.Timeout | null = null;
  private closed = false;
  private warnedMissing = false;
  private everWatched = false;
  private sentinel: OverflowSentinel | null = null;
  private warnedSentinel = false;

  constructor(
    readonly dir: string,
    private readonly opts: DirWatcherOptions,
  ) {}

  /** Start watching (or waiting for the directory to exist). Returns whether the watch is up now. */
  start(): boolean {
    if (this.closed || this.fsw) return !!this.fsw;
    try {
      this.fsw = watch(this.dir, { persistent: false }, (_type, name) => this.onEvent(name));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (!this.warnedMissing) {
        this.opts.log.warn(
          { dir: this.dir, error: (e as Error).message },
          code === 'ENOENT' ? 'directory does not exist yet; waiting for it' : 'cannot watch directory; retrying',
        );
        this.warnedMissing = true;
      }
      this.scheduleRetry();
      return false;
    }
    this.fsw.on('error', (e) => {
      this.opts.log.warn({ dir: this.dir, error: e.message }, 'directory watch broke; re-establishing it');
      this.fsw?.close();
      this.fsw = null;
      this.sentinel?.close();
      this.sentinel = null;
      this.scheduleRetry();
    });
    try {
      this.sentinel = (this.opts.sentinel ?? inotifyOverflowSentinel)(this.dir);
    } catch (e) {
      if (!this.warnedSentinel) {
        this.opts.log.warn(
          { dir: this.dir, error: (e as Error).message },
          'cannot detect inotify queue overflows; a lost event waits for the next rescan',
        );
        this.warnedSentinel = true;
      }
    }
    if (this.everWatched || this.warnedMissing) this.opts.onRewatch?.();
    if (this.warnedMissing) this.opts.log.info({ dir: this.dir }, 'watching directory');
    this.everWatched = true;
    this.warnedMissing = false;
    return true;
  }

  /** Whether the inotify watch is established. */
  get watching(): boolean {
    return this.fsw !== null;
  }

  close(): void {
    this.closed = true;
    this.fsw?.close();
    this.fsw = null;
    this.sentinel?.close();
    this.sentinel = null;
    if (this.timer) clearTimeout(this.timer);
    if (this.retry) clearTimeout(this.retry);
  }

  private scheduleRetry(): void {
    if (this.closed || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      this.start();
    }, this.opts.retryMs ?? 2000);
    this.retry.unref();
  }

  private onEvent(name: string | Buffer | null): void {
    if (this.closed) return;
    this.checkOverflow();
    if (name === null) {
      // inotify gave no name (e.g. the directory itself changed): treat as "rescan".
      this.opts.onRewatch?.();
      return;
    }
    this.pending.add(String(name));
    const now = Date.now();
    if (!this.timer) this.firstAt = now;
    if (this.timer) clearTimeout(this.timer);
    const debounce = this.opts.debounceMs ?? 20;
    const wait = Math.max(0, Math.min(debounce, this.firstAt + (this.opts.maxDelayMs ?? 200) - now));
    this.timer = setTimeout(() => this.flush(), wait);
  }

  /** Drain the sentinel queue; on an overflow, say so and ask for a rescan now. */
  private checkOverflow(): void {
    let overflowed = false;
    try {
      overflowed = this.sentinel?.drain() ?? false;
    } catch (e) {
      this.opts.log.warn({ dir: this.dir, error: (e as Error).message }, 'inotify overflow sentinel failed; closing it');
      this.sentinel?.close();
      this.sentinel = null;
    }
    if (!overflowed) return;
    this.opts.log.warn({ dir: this.dir }, 'inotify queue overflowed: events were lost; rescanning the directory now');
    this.opts.onOverflow?.();
    this.opts.onRewatch?.();
  }

  private flush(): void {
    this.checkOverflow();
    this.timer = null;
    const names = this.pending;
    this.pending = new Set();
    if (names.size && !this.closed) this.opts.onNames(names);
  }
}
