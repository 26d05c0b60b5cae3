/**
 * The one exponential back-off of both processes: `initialMs` doubled per attempt up to
 * `maxMs`, with +-`jitter` (a fraction, default 0.2) so that many clients retrying the same
 * failure do not retry in step. Every retry uses jitter; a throttle whose delay is reported
 * as such (the route keeper's drift back-off) passes jitter 0.
 */

export interface BackoffPolicy {
  /** Delay of the first attempt (attempt 0). */
  initialMs: number;
  /** Longest delay. */
  maxMs: number;
  /** Spread, as a fraction of the delay: 0.2 is +-20 %. Default 0.2. */
  jitter?: number;
}

/** Delay before retry number `attempt` (0 for the first retry). */
export function backoffMs(attempt: number, p: BackoffPolicy, random: () => number = Math.random): number {
  // 2^30 already passes any sane maxMs; the cap keeps the arithmetic finite.
  const base = Math.min(p.maxMs, p.initialMs * 2 ** Math.min(Math.max(attempt, 0), 30));
  const j = p.jitter ?? 0.2;
  return j === 0 ? base : Math.round(base * (1 - j + 2 * j * random()));
}
