/**
 * The `ovnkube-route webhook` configuration: flags and environment variables read into one
 * typed, validated WebhookConfig. One table (FLAGS) drives parsing, env lookup, defaults
 * and --help, so the help text cannot drift from what is parsed. Flags beat environment
 * variables; list-valued variables are comma-separated. Nothing here reads process.env:
 * the caller passes the environment in.
 */
import { isIP } from 'node:net';
import { flagHelp, parseDuration, readFlags, type FlagSpec } from '../core/flags.js';
import type { InjectMode } from '../core/resolve.js';
import { CONTROLLER_FLAGS, parseControllerConfig, type ControllerConfig } from './controller/config.js';
import { WebhookError } from './errors.js';

export interface WebhookConfig {
  listenAddress: string;
  port: number;
  tlsCert: string;
  tlsKey: string;
  /** Plan key files; the first signs, all verify. */
  planKeys: string[];
  mode: InjectMode;
  /** Kubeconfig file; undefined means in-cluster service-account credentials. */
  kubeconfig: string | undefined;
  /** Usernames whose pod UPDATEs may write a verified plan as-is (the controller's service account). */
  trustedUsers: string[];
  logLevel: LogLevel;
  /** Deadline of every API request; also bounds the wait for a watch's response headers (at most 30 s). */
  apiTimeoutMs: number;
  /** Longest silence (no event, no bookmark) of a watch before it is restarted. */
  watchIdleMs: number;
  /** The controller's settings (webhook/controller/config.ts). */
  controller: ControllerConfig;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

interface Flag extends FlagSpec {
  key: keyof WebhookConfig;
}

/** Every flag, its environment variable, default and help line. */
export const FLAGS: Record<string, Flag> = {
  'listen-address': {
    key: 'listenAddress',
    env: 'OVNKUBE_ROUTE_LISTEN_ADDRESS',
    value: 'IP',
    default: '0.0.0.0',
    help: 'address to listen on',
  },
  port: { key: 'port', env: 'OVNKUBE_ROUTE_PORT', value: 'N', default: '8443', help: 'HTTPS port (/mutate, /healthz, /readyz, /metrics)' },
  'tls-cert': {
    key: 'tlsCert',
    env: 'OVNKUBE_ROUTE_TLS_CERT',
    value: 'FILE',
    required: true,
    help: 'serving certificate (PEM); reloaded when the file changes',
  },
  'tls-key': {
    key: 'tlsKey',
    env: 'OVNKUBE_ROUTE_TLS_KEY',
    value: 'FILE',
    required: true,
    help: 'serving key (PEM); reloaded with the certificate',
  },
  'plan-key': {
    key: 'planKeys',
    env: 'OVNKUBE_ROUTE_PLAN_KEYS',
    value: 'FILE',
    multiple: true,
    required: true,
    help: 'plan-signing key file (base64 of >= 32 random bytes); repeat for rotation: the first signs, all verify',
  },
  mode: {
    key: 'mode',
    env: 'OVNKUBE_ROUTE_MODE',
    value: 'default|opt-in',
    default: 'default',
    help: 'default: every pod not opted out; opt-in: only pods or namespaces labelled routes.k8s.ovn.org/inject=enabled',
  },
  kubeconfig: {
    key: 'kubeconfig',
    env: 'KUBECONFIG',
    value: 'FILE',
    help: 'kubeconfig to use; without it, the in-cluster service account',
  },
  'trusted-user': {
    key: 'trustedUsers',
    env: 'OVNKUBE_ROUTE_TRUSTED_USERS',
    value: 'NAME',
    multiple: true,
    help: "username whose pod updates may set a verified plan as-is (the controller's service account); repeatable",
  },
  'log-level': {
    key: 'logLevel',
    env: 'OVNKUBE_ROUTE_LOG_LEVEL',
    value: LOG_LEVELS.join('|'),
    default: 'info',
    help: 'log level (JSON logs on stderr)',
  },
  'api-timeout': {
    key: 'apiTimeoutMs',
    env: 'OVNKUBE_ROUTE_API_TIMEOUT',
    value: 'DURATION',
    default: '60s',
    help: "deadline of every API request (lists, patches, Events, Lease calls: at most the renew deadline) and of a watch's answer (at most 30s); 1s-10m",
  },
  'watch-idle-timeout': {
    key: 'watchIdleMs',
    env: 'OVNKUBE_ROUTE_WATCH_IDLE_TIMEOUT',
    value: 'DURATION',
    default: '5m',
    help: 'a watch with no event and no bookmark (sent about every minute) for this long is restarted; 1s-1h',
  },
  ...CONTROLLER_FLAGS,
};

/** The --help text, generated from FLAGS. */
export function webhookHelp(): string {
  return flagHelp(
    'Usage: ovnkube-route webhook --tls-cert FILE --tls-key FILE --plan-key FILE [flags]',
    [
      'Runs the mutating admission webhook over HTTPS (TLS 1.2 or later): POST /mutate stamps',
      'each admitted pod with its signed plan annotation (routes.k8s.ovn.org/plan), resolved',
      'from informer caches of Routes, Namespaces, Services, ReplicaSets and Jobs. /readyz turns',
      'ready once the caches have synced. Unless --controller=false, the same process runs the',
      "controller: replicas elect a leader through a Lease, and the leader keeps every pod's plan",
      "annotation and every Route's status true. Stops cleanly on SIGTERM or SIGINT (the leader",
      'releases the Lease).',
    ],
    FLAGS,
  );
}

const fail = (msg: string): never => {
  throw new WebhookError('OVNKR_ERR_CONFIG', msg);
};

/**
 * Parse argv (without the command name) and env into a validated WebhookConfig. Throws
 * WebhookError OVNKR_ERR_CONFIG naming the flag (and its variable) and what was expected.
 */
export function parseWebhookConfig(argv: string[], env: Record<string, string | undefined>): WebhookConfig {
  const { raw, many, one: get } = readFlags(FLAGS, argv, env, fail);
  const one = (name: string, required = false): string | undefined => {
    const v = get(name);
    return v === undefined && required ? fail(`${raw(name).from} is required`) : v;
  };

  const listenAddress = one('listen-address', true)!;
  if (isIP(listenAddress) === 0) fail(`${raw('listen-address').from}: expected an IPv4 or IPv6 address, got "${listenAddress}"`);
  const portText = one('port', true)!;
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) fail(`${raw('port').from}: expected a port number 0-65535, got "${portText}"`);
  const mode = one('mode', true)!;
  if (mode !== 'default' && mode !== 'opt-in') fail(`${raw('mode').from}: expected "default" or "opt-in", got "${mode}"`);
  const logLevel = one('log-level', true)!;
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel))
    fail(`${raw('log-level').from}: expected one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  const durationIn = (flag: string, minMs: number, maxMs: number, range: string): number => {
    const text = one(flag, true)!;
    const ms = parseDuration(text);
    if (!(ms >= minMs && ms <= maxMs)) fail(`${raw(flag).from}: expected a duration between ${range} (e.g. 30s, 2m), got "${text}"`);
    return ms;
  };
  const apiTimeoutMs = durationIn('api-timeout', 1000, 600_000, '1s and 10m');
  const watchIdleMs = durationIn('watch-idle-timeout', 1000, 3_600_000, '1s and 1h');
  const planKeys = many('plan-key');
  if (planKeys.length === 0) fail(`--plan-key (or $${FLAGS['plan-key']!.env}) is required: the key that signs plans`);
  return {
    listenAddress,
    port,
    tlsCert: one('tls-cert', true)!,
    tlsKey: one('tls-key', true)!,
    planKeys,
    mode: mode as InjectMode,
    kubeconfig: one('kubeconfig'),
    trustedUsers: many('trusted-user'),
    logLevel: logLevel as LogLevel,
    apiTimeoutMs,
    watchIdleMs,
    controller: parseControllerConfig((name) => {
      const { value, from } = raw(name);
      return { value: typeof value === 'string' ? value : undefined, from };
    }),
  };
}
