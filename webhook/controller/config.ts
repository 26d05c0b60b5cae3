/**
 * The controller's flags of `ovnkube-route webhook`, in the format of webhook/config.ts's
 * FLAGS table (which merges them, so --help and parsing cover them), and their validation
 * into one typed ControllerConfig. Durations are written like Go's: 500ms, 2s, 15s, 10m, 1h.
 */
import { parseDuration } from '../../core/flags.js';
import { WebhookError } from '../errors.js';
import { leaderTimingProblem } from './leader.js';

export interface ControllerConfig {
  /** Run the controller (leader-elected) in this process. */
  enabled: boolean;
  leaseNamespace: string;
  leaseName: string;
  /** This replica's identity in the Lease; undefined: host name plus a random suffix. */
  leaderId: string | undefined;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  patchQps: number;
  patchBurst: number;
  patchConcurrency: number;
  /** Re-queue every pod and Route this often; 0 disables. */
  resyncPeriodMs: number;
}

/** One flag, in the shape of config.ts's FLAGS entries (all feed WebhookConfig.controller). */
export interface ControllerFlag {
  key: 'controller';
  env: string;
  value: string;
  default?: string;
  help: string;
}

const flag = (env: string, value: string, def: string | undefined, help: string): ControllerFlag => ({
  key: 'controller',
  env: `OVNKUBE_ROUTE_${env}`,
  value,
  ...(def !== undefined ? { default: def } : {}),
  help,
});

/** The controller's flags, merged into config.ts's FLAGS. */
export const CONTROLLER_FLAGS: Record<string, ControllerFlag> = {
  controller: flag(
    'CONTROLLER',
    'true|false',
    'true',
    'run the controller (leader-elected) that keeps pod plans and Route status true; the webhook serves either way',
  ),
  'lease-namespace': flag('LEASE_NAMESPACE', 'NS', 'ovnkube-route', 'namespace of the leader-election Lease'),
  'lease-name': flag('LEASE_NAME', 'NAME', 'ovnkube-route-controller', 'name of the leader-election Lease'),
  'leader-id': flag('LEADER_ID', 'ID', undefined, "this replica's identity in the Lease (default: host name and a random suffix)"),
  'lease-duration': flag('LEASE_DURATION', 'DURATION', '15s', 'how long followers wait after the last renewal before taking over'),
  'renew-deadline': flag('RENEW_DEADLINE', 'DURATION', '10s', 'the leader stops acting when it could not renew for this long'),
  'retry-period': flag('RETRY_PERIOD', 'DURATION', '2s', 'how often the Lease is renewed or tried'),
  // Sizing (docs/webhook.md, "Convergence speed and its defaults"): the pace is set by
  // --patch-concurrency, a closed loop (writes in flight never exceed it, so the rate follows
  // the API server's latency) well inside one fair share of API Priority and Fairness'
  // workload-low level; the token bucket is a safety net against a runaway loop, set above
  // what one API server sustains for pod patches so that it does not pace a Route edit.
  'patch-qps': flag('PATCH_QPS', 'N', '500', 'API writes (pod patches, Route status) per second, sustained'),
  'patch-burst': flag('PATCH_BURST', 'N', '1000', 'API writes allowed at once above the sustained rate'),
  'patch-concurrency': flag('PATCH_CONCURRENCY', 'N', '32', 'pods reconciled (API writes in flight) at the same time'),
  'resync-period': flag('RESYNC_PERIOD', 'DURATION', '10m', 're-check every pod and Route this often (0 disables)'),
};

export { parseDuration };

/** A flag's value and where it came from (`--name` or `$ENV`), as config.ts resolves it. */
export type FlagReader = (name: string) => { value: string | undefined; from: string };

const fail = (msg: string): never => {
  throw new WebhookError('OVNKR_ERR_CONFIG', msg);
};

/** Validate the controller's flags into a ControllerConfig; errors name the flag and what was expected. */
export function parseControllerConfig(read: FlagReader): ControllerConfig {
  const text = (name: string): { v: string; from: string } => {
    const { value, from } = read(name);
    return { v: value ?? CONTROLLER_FLAGS[name]!.default ?? '', from };
  };
  const bool = (name: string): boolean => {
    const { v, from } = text(name);
    if (v !== 'true' && v !== 'false') fail(`${from}: expected "true" or "false", got "${v}"`);
    return v === 'true';
  };
  const duration = (name: string, allowZero = false): number => {
    const { v, from } = text(name);
    const ms = parseDuration(v);
    if (!Number.isFinite(ms) || (ms === 0 && !allowZero))
      fail(`${from}: expected a ${allowZero ? '' : 'positive '}duration such as 500ms, 2s or 10m, got "${v}"`);
    return ms;
  };
  const number = (name: string, integer: boolean): number => {
    const { v, from } = text(name);
    const n = Number(v);
    if (v === '' || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
      fail(`${from}: expected a positive ${integer ? 'integer' : 'number'}, got "${v}"`);
    }
    return n;
  };
  const name = (flagName: string, pattern: RegExp, what: string): string => {
    const { v, from } = text(flagName);
    if (!pattern.test(v)) fail(`${from}: expected ${what}, got "${v}"`);
    return v;
  };
  const dns1123 = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
  const config: ControllerConfig = {
    enabled: bool('controller'),
    leaseNamespace: name('lease-namespace', dns1123, 'a namespace name (DNS-1123 label)'),
    leaseName: name('lease-name', /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, 'a Lease name (DNS-1123 subdomain)'),
    leaderId: read('leader-id').value || undefined,
    leaseDurationMs: duration('lease-duration'),
    renewDeadlineMs: duration('renew-deadline'),
    retryPeriodMs: duration('retry-period'),
    patchQps: number('patch-qps', false),
    patchBurst: number('patch-burst', true),
    patchConcurrency: number('patch-concurrency', true),
    resyncPeriodMs: duration('resync-period', true),
  };
  const problem = leaderTimingProblem(config);
  if (problem) fail(`--lease-duration/--renew-deadline/--retry-period: ${problem}`);
  return config;
}
