/**
 * The one work queue of both processes (the controller's pod reconciles, the agent's pod
 * syncs), after client-go's workqueue, and the token bucket of the controller's API writes.
 *
 * - Keys are deduplicated: a key waiting in the queue is not added twice, and a key added
 *   while it is being processed is processed once more afterwards (never twice at the same
 *   time), so the last change always wins.
 * - At most `concurrency` keys are processed at once.
 * - A delayed add (addAfter) replaces an earlier delayed add of the key; add() cancels it
 *   (the key runs now anyway).
 * - With `retry`, a key whose handler returns 'retry' or throws is retried after a jittered
 *   exponential delay (backoff.ts, per key), forgotten on success, and dropped after
 *   `maxRetries`; one that returns `{retryAfterMs}` is retried after that delay instead.
 *   Without `retry`, a throw goes to onError and the caller decides.
 * - Time comes from a Clock: tests inject a manual one and need no real timers.
 */
import { setTimeout as sleepMs } from 'node:timers/promises';
import { backoffMs } from './backoff.js';

/**
 * What processing a key came to: done, retry with the key's back-off, or retry no sooner
 * than `retryAfterMs` (the server said when: a 429's Retry-After). The latter is counted as a
 * failure like 'retry' and waits Retry-After plus 0-20 % (never less), so keys throttled
 * together do not all come back in the same millisecond.
 */
export type WorkResult = 'done' | 'retry' | { retryAfterMs: number };

/** Time as the queue and the bucket see it. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** Resolves after `ms`; rejects with the abort reason when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Sleep `ms`, or less if `signal` aborts (then it rejects with the abort reason). */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  try {
    await sleepMs(ms, undefined, signal ? { signal } : {});
  } catch (e) {
    throw signal?.aborted ? signal.reason : e;
  }
}

/** Wall-clock time; timers are unref'd (a delayed key never keeps the process alive). */
export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  sleep: (ms, signal) => sleep(ms, signal),
};

export interface WorkQueueOptions {
  /** Process one key. A throw is reported to onError (and retried with `retry`). */
  handler: (key: string) => Promise<WorkResult | void>;
  /** Keys processed at once (>= 1). */
  concurrency: number;
  /**
   * Retry a key whose handler returned 'retry' or threw: initialMs * 2^(failures-1) up to
   * maxMs, +-20 % jitter (default 200 ms .. 60 s), at most maxRetries times in a row (12).
   */
  retry?: { initialMs?: number; maxMs?: number; maxRetries?: number };
  /** A throw of the handler (dropped false), or a key given up after maxRetries (dropped true). */
  onError?: (key: string, err: unknown, dropped: boolean) => void;
  random?: () => number;
  clock?: Clock;
}

/** A deduplicating, bounded-concurrency work queue. start() it; stop() is final until start(). */
export class WorkQueue {
  private readonly queue: string[] = [];
  private head = 0;
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, unknown>();
  private readonly clock: Clock;
  private running = false;
  private active = 0;
  private idleWaiters: (() => void)[] = [];
  /** Highest number of keys processed at once (tests, metrics). */
  maxActiveSeen = 0;

  constructor(private readonly opts: WorkQueueOptions) {
    if (!Number.isInteger(opts.concurrency) || opts.concurrency < 1)
      throw new Error(`work queue concurrency must be an integer >= 1, got ${opts.concurrency}`);
    this.clock = opts.clock ?? realClock;
  }

  /** Keys waiting (not counting the ones being processed or waiting for a delay). */
  get depth(): number {
    return this.queue.length - this.head;
  }

  /** Keys waiting or being processed (delayed keys excluded). */
  get pending(): number {
    return this.depth + this.active;
  }

  /** Keys waiting for their delay (a retry or an addAfter). */
  get retrying(): number {
    return this.timers.size;
  }

  /** Queue `key` unless it is already waiting; a key being processed is run once more afterwards. */
  add(key: string): void {
    this.cancelDelayed(key);
    if (this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    this.queue.push(key);
    this.pump();
  }

  /** Queue `key` after `ms`; replaces an earlier addAfter of the same key. */
  addAfter(key: string, ms: number): void {
    if (ms <= 0) {
      this.add(key);
      return;
    }
    this.cancelDelayed(key);
    this.timers.set(
      key,
      this.clock.setTimeout(() => {
        this.timers.delete(key);
        this.add(key);
      }, ms),
    );
  }

  /** Start processing (keys added before are kept). */
  start(): void {
    this.running = true;
    this.pump();
  }

  /**
   * Stop taking keys, forget every waiting key and delay, and wait for the keys being
   * processed to finish. The queue can be started again.
   */
  async stop(): Promise<void> {
    this.running = false;
    for (const t of this.timers.values()) this.clock.clearTimeout(t);
    this.timers.clear();
    this.queue.length = 0;
    this.head = 0;
    this.dirty.clear();
    this.failures.clear();
    await this.idle();
  }

  /** Resolves when nothing is being processed and nothing waits (delays aside). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private isIdle(): boolean {
    return this.active === 0 && (this.depth === 0 || !this.running);
  }

  private cancelDelayed(key: string): void {
    const t = this.timers.get(key);
    if (t === undefined) return;
    this.clock.clearTimeout(t);
    this.timers.delete(key);
  }

  private take(): string | undefined {
    if (this.head >= this.queue.length) return undefined;
    const key = this.queue[this.head++]!;
    // Compact now and then so a long-running queue does not keep a growing array.
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    return key;
  }

  private pump(): void {
    while (this.running && this.active < this.opts.concurrency) {
      const key = this.take();
      if (key === undefined) break;
      this.dirty.delete(key);
      this.processing.add(key);
      this.active++;
      this.maxActiveSeen = Math.max(this.maxActiveSeen, this.active);
      void this.work(key);
    }
    if (this.isIdle()) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private async work(key: string): Promise<void> {
    let result: WorkResult;
    try {
      result = (await this.opts.handler(key)) ?? 'done';
    } catch (err) {
      result = 'retry';
      this.opts.onError?.(key, err, false);
    }
    this.processing.delete(key);
    this.active--;
    const retry = this.opts.retry;
    if (result === 'done' || !retry) {
      this.failures.delete(key);
    } else if (this.running) {
      const n = (this.failures.get(key) ?? 0) + 1;
      if (n > (retry.maxRetries ?? 12)) {
        this.failures.delete(key);
        this.opts.onError?.(key, new Error(`gave up on ${key} after ${n - 1} retries`), true);
      } else {
        this.failures.set(key, n);
        // A change that arrived meanwhile is processed at once; the retry only if nothing did.
        if (!this.dirty.has(key)) {
          const random = this.opts.random ?? Math.random;
          this.addAfter(
            key,
            typeof result === 'object'
              ? Math.round(result.retryAfterMs * (1 + 0.2 * random()))
              : backoffMs(n - 1, { initialMs: retry.initialMs ?? 200, maxMs: retry.maxMs ?? 60_000 }, random),
          );
        }
      }
    }
    if (this.dirty.has(key) && this.running) this.queue.push(key);
    else this.dirty.delete(key);
    this.pump();
  }
}

/**
 * Token bucket: `burst` tokens at most, refilled at `qps` per second. `take()` reserves a
 * token and waits until it is due, so waiters are served in order (like Go's rate.Limiter).
 * `pause(ms)`: no take() returns before then (the server asked every client of ours to wait:
 * a 429's Retry-After), whatever tokens are free.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private resumeAt = 0;
  private readonly clock: Clock;

  constructor(
    private readonly qps: number,
    private readonly burst: number,
    clock: Clock | (() => number) = realClock,
  ) {
    if (!(qps > 0) || !Number.isFinite(qps)) throw new Error(`token bucket qps must be a positive number, got ${qps}`);
    if (!Number.isInteger(burst) || burst < 1) throw new Error(`token bucket burst must be an integer >= 1, got ${burst}`);
    this.clock = typeof clock === 'function' ? { ...realClock, now: clock } : clock;
    this.tokens = burst;
    this.last = this.clock.now();
  }

  /** Milliseconds the next take() would wait (0 when a token is free and no pause holds). */
  waitMs(): number {
    this.refill();
    const paused = Math.max(0, this.resumeAt - this.clock.now());
    return Math.max(paused, this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / this.qps) * 1000));
  }

  /** Hold every take() for at least `ms` from now (a longer pause already set is kept). */
  pause(ms: number): void {
    this.resumeAt = Math.max(this.resumeAt, this.clock.now() + ms);
  }

  /** Take one token, waiting for it if none is free. Rejects (and gives it back) if `signal` aborts. */
  async take(signal?: AbortSignal): Promise<void> {
    this.refill();
    this.tokens -= 1;
    let wait = Math.max(this.resumeAt - this.clock.now(), this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.qps) * 1000));
    while (wait > 0) {
      try {
        await this.clock.sleep(wait, signal);
      } catch (e) {
        this.tokens += 1;
        throw e;
      }
      // The token is due now; a pause set while this take() slept holds it too.
      wait = this.resumeAt - this.clock.now();
    }
  }

  private refill(): void {
    const t = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.qps);
    this.last = t;
  }
}
