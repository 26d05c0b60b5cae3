import type { Test } from 'tap';
import { appendFileSync } from 'node:fs';

/**
 * Gate a test tier on its prerequisites. When `unavailable` is a reason string the tier
 * cannot run: under CI (CI=true) that is a failure, never a silent pass; elsewhere the
 * tier is skipped and the reason is written to the report that `npm test` prints loudly.
 * Returns true when the tier should run.
 */
export function tierGate(t: Test, tier: string, unavailable: string | null): boolean {
  if (unavailable === null) return true;
  const line = `${tier}: ${unavailable}`;
  if (process.env.CI === 'true' || process.env.CI === '1') {
    t.fail(`tier "${tier}" must run in CI but cannot: ${unavailable}`);
    return false;
  }
  const report = process.env.OVNKUBE_ROUTE_SKIP_REPORT;
  if (report) appendFileSync(report, line + '\n');
  t.test(`tier "${tier}"`, { skip: unavailable }, () => {});
  return false;
}

/** The reason root-only kernel tests cannot run here, or null when they can. */
export function rootUnavailable(): string | null {
  if (process.platform !== 'linux') return `needs Linux (this is ${process.platform})`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'needs root (network namespaces, netlink writes)';
  return null;
}
