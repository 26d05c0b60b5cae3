/**
 * A keyed work queue with a bounded number of workers (the controller pattern): a key is
 * queued at most once; a key that is being worked on and is added again runs once more
 * after it finishes (never twice at the same time); at most `concurrency` keys are worked
 * on at once. This is what bounds how many pod netns the agent writes concurrently.
 */
export type Worker = (key: string) => Promise<void>;

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly active = new Set<string>();
  private readonly again = new Set<string>();
  private readonly delayed = new Map<string, NodeJS.Timeout>();
  private readonly waiters: (() => void)[] = [];
  private stopped = false;
  /** Highest number of keys worked on at once (for tests and metrics). */
  maxActiveSeen = 0;

  constructor(private readonly concurrency: number, private readonly worker: Worker, private readonly onError: (key: string, e: unknown) => void) {
    if (!(concurrency >= 1)) throw new Error(`WorkQueue concurrency must be >= 1, got ${concurrency}`);
  }

  /** Queue `key` (no-op when already queued; re-run after the current run when active). */
  add(key: string): void {
    if (this.stopped) return;
    const t = this.delayed.get(key);
    if (t) {
      clearTimeout(t);
      this.delayed.delete(key);
    }
    if (this.active.has(key)) {
      this.again.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.pump();
  }

  /** Queue `key` after `ms` (a later add() or addAfter() of the same key replaces it). */
  addAfter(key: string, ms: number): void {
    if (this.stopped) return;
    const old = this.delayed.get(key);
    if (old) clearTimeout(old);
    const t = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    t.unref();
    this.delayed.set(key, t);
  }

  /** Keys waiting or being worked on (delayed keys excluded). */
  get pending(): number {
    return this.queue.length + this.active.size;
  }

  /** Resolves when nothing is queued or being worked on (delayed keys are not waited for). */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }

  /** Drop everything queued and delayed; running workers finish. */
  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
    this.queued.clear();
    this.again.clear();
    for (const t of this.delayed.values()) clearTimeout(t);
    this.delayed.clear();
    this.maybeIdle();
  }

  private pump(): void {
    while (!this.stopped && this.active.size < this.concurrency && this.queue.length) {
      const key = this.queue.shift()!;
      this.queued.delete(key);
      this.active.add(key);
      this.maxActiveSeen = Math.max(this.maxActiveSeen, this.active.size);
      void this.run(key);
    }
    this.maybeIdle();
  }

  private async run(key: string): Promise<void> {
    try {
      await this.worker(key);
    } catch (e) {
      this.onError(key, e);
    } finally {
      this.active.delete(key);
      if (this.again.delete(key)) this.add(key);
      this.pump();
    }
  }

  private maybeIdle(): void {
    if (this.pending === 0) for (const w of this.waiters.splice(0)) w();
  }
}
