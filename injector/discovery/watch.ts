/**
 * DirWatcher: names of the files that changed in one directory, from inotify, batched. The
 * agent uses it on the CNI cache dir (a sandbox's files appear and are written) and on the
 * netns dir (a netns is created or deleted: names only): watching, not polling.
 *
 * The inotify queue is the native addon's (inotifySubscribe), not fs.watch:
 * - A mask of our own: the netns dir needs names only (`content: false`). Asking for writes
 *   and attribute changes of the files in a directory, as fs.watch always does, makes every
 *   inotify_add_watch mark each dentry of the directory, negative ones included, and the
 *   netns dir of a node that ran many pods holds that many: 26 ms of CPU per watch measured
 *   here (350,000 negative dentries), 0.03 ms with names only.
 * - Overflows are seen: a burst larger than the kernel's queue (fs.inotify.max_queued_events,
 *   16384 by default) loses events, and IN_Q_OVERFLOW says so, which libuv drops. Then a
 *   warning is logged, `onOverflow` is called (a metric) and `onRewatch` asks for a rescan.
 * - Bursts: a file written in several write(2)s gives one event per write, and a
 *   rename-into-place gives events for the temp name and the final one. Names are
 *   collected until the directory has been quiet for `debounceMs` (at most `maxDelayMs`
 *   after the first one), then handed over in one batch.
 * - A directory that does not exist yet (the CNI creates its cache dir on the first pod):
 *   the watch fails with ENOENT, so the watcher retries every `retryMs` until it exists.
 *   Only the existence of the directory is polled; its contents never are.
 * - A watch that ends (the directory is removed, moved or unmounted, or the queue fails): it
 *   is re-established after `retryMs`, and `onRewatch` asks the owner to rescan, since events
 *   were missed.
 */
import type { Logger } from '../../platform/log.js';
import { IN, inotifySubscribe, type DirEvent } from '../kernel/netns.js';

export interface DirWatcherOptions {
  /** Called with the names that changed (files added, renamed or removed; with `content`, written too). */
  onNames: (names: Set<string>) => void;
  /** Called when a watch was (re-)established after a gap: events may have been missed. */
  onRewatch?: () => void;
  log: Logger;
  /** Called when inotify events were lost to a queue overflow (a rescan is asked for too). */
  onOverflow?: () => void;
  /** Also files written and attributes changed (default true); false: names created, removed and moved only. */
  content?: boolean;
  debounceMs?: number; // default 20
  maxDelayMs?: number; // default 200
  retryMs?: number; // default 2000
}

/** Events that end a watch: the directory went (deleted, moved, unmounted), and the kernel dropped the watch. */
const ENDS = IN.DELETE_SELF | IN.MOVE_SELF | IN.UNMOUNT | IN.IGNORED;

/** Watches one directory; start() then close(). */
export class DirWatcher {
  private sub: { close(): void } | null = null;
  private pending = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private firstAt = 0;
  private retry: NodeJS.Timeout | null = null;
  private closed = false;
  private warnedMissing = false;
  private everWatched = false;

  constructor(
    readonly dir: string,
    private readonly opts: DirWatcherOptions,
  ) {}

  /** Start watching (or waiting for the directory to exist). Returns whether the watch is up now. */
  start(): boolean {
    if (this.closed || this.sub) return !!this.sub;
    try {
      this.sub = inotifySubscribe(this.dir, this.opts.content ?? true, (events, error) => this.onEvents(events, error));
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
    if (this.everWatched || this.warnedMissing) this.opts.onRewatch?.();
    if (this.warnedMissing) this.opts.log.info({ dir: this.dir }, 'watching directory');
    this.everWatched = true;
    this.warnedMissing = false;
    return true;
  }

  /** Whether the inotify watch is established. */
  get watching(): boolean {
    return this.sub !== null;
  }

  close(): void {
    this.closed = true;
    this.sub?.close();
    this.sub = null;
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

  private onEvents(events: DirEvent[] | null, error?: string): void {
    if (this.closed) return;
    let ended = events === null; // a read error
    let overflowed = false;
    let named = false;
    for (const ev of events ?? []) {
      if (ev.mask & IN.Q_OVERFLOW) overflowed = true;
      else if (ev.mask & ENDS) ended = true;
      else if (ev.name !== null) {
        this.pending.add(ev.name);
        named = true;
      } // else the directory's own attributes or times: nothing in it changed
    }
    if (overflowed) {
      this.opts.log.warn({ dir: this.dir }, 'inotify queue overflowed: events were lost; rescanning the directory now');
      this.opts.onOverflow?.();
      if (!ended) this.opts.onRewatch?.();
    }
    if (ended) {
      this.opts.log.warn(
        { dir: this.dir, ...(error ? { error } : {}) },
        error ? 'directory watch broke; re-establishing it' : 'directory was removed or moved; watching for it again',
      );
      this.sub?.close();
      this.sub = null;
      this.scheduleRetry(); // once watched again, start() asks for a rescan
    }
    if (named) {
      if (!this.timer) this.firstAt = Date.now();
      this.debounce();
    }
  }

  /** (Re)arm the batch timer: `debounceMs` after the last event, at most `maxDelayMs` after the first. */
  private debounce(): void {
    if (this.timer) clearTimeout(this.timer);
    const debounce = this.opts.debounceMs ?? 20;
    const wait = Math.max(0, Math.min(debounce, this.firstAt + (this.opts.maxDelayMs ?? 200) - Date.now()));
    this.timer = setTimeout(() => this.flush(), wait);
  }

  private flush(): void {
    this.timer = null;
    const names = this.pending;
    this.pending = new Set();
    if (names.size && !this.closed) this.opts.onNames(names);
  }
}
