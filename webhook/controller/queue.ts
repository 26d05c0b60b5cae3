/**
 * The controller's work queue and rate limiter, after client-go's workqueue:
 *
 * - Keys (pod `namespace/name`) are deduplicated: a key waiting in the queue is not added
 *   twice, and a key added while it is being processed is processed once more afterwards
 *   (never twice at the same time), so the last change always wins.
 * - At most `concurrency` keys are processed at once.
 * - A failed key is retried after an exponential, jittered delay (per key), forgotten on
 *   success, and dropped after `maxRetries` (the periodic resync brings it back).
 * - TokenBucket: client-side rate limiting of the API writes, `qps` sustained, `burst` at once.
 */

/** What processing a key came to. */
export type WorkResult = 'done' | 'retry';

export interface WorkQueueOptions {
  /** Process one key; a throw counts as 'retry'. */
  handler: (key: string) => Promise<WorkResult>;
  /** Keys processed at once (>= 1). */
  concurrency: number;
  /** Retry delays: baseMs * 2^(failures-1) up to maxMs, +-20% jitter. */
  backoff?: { baseMs?: number; maxMs?: number };
  /** Give up on a key after this many failures in a row (default 12). */
  maxRetries?: number;
  /** Called when a key is dropped after maxRetries, or when the handler throws. */
  onError?: (key: string, err: unknown, dropped: boolean) => void;
  random?: () => number;
}

/** A deduplicating, bounded-concurrency work queue with per-key retry backoff. */
export class WorkQueue {
  private readonly queue: string[] = [];
  private head = 0;
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private running = false;
  private active = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly opts: WorkQueueOptions) {
    if (!Number.isInteger(opts.concurrency) || opts.concurrency < 1) throw new Error(`work queue concurrency must be an integer >= 1, got ${opts.concurrency}`);
  }

  /** Keys waiting (not counting the ones being processed or waiting for a retry). */
  get depth(): number {
    return this.queue.length - this.head;
  }

  /** Keys waiting for their retry delay. */
  get retrying(): number {
    return this.timers.size;
  }

  /** Queue `key` unless it is already waiting; a key being processed is run once more afterwards. */
  add(key: string): void {
    if (this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    this.queue.push(key);
    this.pump();
  }

  /** Queue `key` after `ms` (a pending delayed add of the same key is kept if it is sooner). */
  addAfter(key: string, ms: number): void {
    if (ms <= 0) { this.add(key); return; }
    if (this.timers.has(key)) return;
    const timer = setTimeout(() => { this.timers.delete(key); this.add(key); }, ms);
    timer.unref();
    this.timers.set(key, timer);
  }

  /** Start processing (keys added before are kept). */
  start(): void {
    this.running = true;
    this.pump();
  }

  /**
   * Stop taking keys, forget every waiting key and retry, and wait for the keys being
   * processed to finish. The queue can be started again.
   */
  async stop(): Promise<void> {
    this.running = false;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.queue.length = 0;
    this.head = 0;
    this.dirty.clear();
    this.failures.clear();
    await this.idle();
  }

  /** Resolves when nothing is being processed and nothing waits (retries aside). */
  idle(): Promise<void> {
    if (this.active === 0 && (this.depth === 0 || !this.running)) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private delay(failures: number): number {
    const base = this.opts.backoff?.baseMs ?? 200;
    const max = this.opts.backoff?.maxMs ?? 60_000;
    const d = Math.min(max, base * 2 ** Math.min(failures - 1, 30));
    return Math.round(d * (0.8 + 0.4 * (this.opts.random ?? Math.random)()));
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
      void this.work(key);
    }
    if (this.active === 0 && (this.depth === 0 || !this.running)) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private async work(key: string): Promise<void> {
    let result: WorkResult;
    try {
      result = await this.opts.handler(key);
    } catch (err) {
      result = 'retry';
      this.opts.onError?.(key, err, false);
    }
    this.processing.delete(key);
    this.active--;
    if (result === 'done') {
      this.failures.delete(key);
    } else if (this.running) {
      const n = (this.failures.get(key) ?? 0) + 1;
      if (n > (this.opts.maxRetries ?? 12)) {
        this.failures.delete(key);
        this.opts.onError?.(key, new Error(`gave up on ${key} after ${n - 1} retries`), true);
      } else {
        this.failures.set(key, n);
        // A change that arrived meanwhile is processed at once; the retry only if nothing did.
        if (!this.dirty.has(key)) this.addAfter(key, this.delay(n));
      }
    }
    if (this.dirty.has(key) && this.running) this.queue.push(key);
    else this.dirty.delete(key);
    this.pump();
  }
}

/** Sleep `ms`, or less if `signal` aborts (then it rejects with the abort reason). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) { reject(signal.reason); return; }
    const done = () => { clearTimeout(timer); reject(signal!.reason); };
    const timer = setTimeout(() => { signal?.removeEventListener('abort', done); resolve(); }, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Token bucket: `burst` tokens at most, refilled at `qps` per second. `take()` reserves a
 * token and waits until it is due, so waiters are served in order (like Go's rate.Limiter).
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(private readonly qps: number, private readonly burst: number, private readonly now: () => number = Date.now) {
    if (!(qps > 0) || !Number.isFinite(qps)) throw new Error(`token bucket qps must be a positive number, got ${qps}`);
    if (!Number.isInteger(burst) || burst < 1) throw new Error(`token bucket burst must be an integer >= 1, got ${burst}`);
    this.tokens = burst;
    this.last = now();
  }

  /** Milliseconds the next take() would wait (0 when a token is free). */
  waitMs(): number {
    this.refill();
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / this.qps) * 1000);
  }

  /** Take one token, waiting for it if none is free. Rejects (and gives it back) if `signal` aborts. */
  async take(signal?: AbortSignal): Promise<void> {
    this.refill();
    this.tokens -= 1;
    if (this.tokens >= 0) return;
    try {
      await sleep(Math.ceil((-this.tokens / this.qps) * 1000), signal);
    } catch (e) {
      this.tokens += 1;
      throw e;
    }
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.qps);
    this.last = t;
  }
}
