/**
 * The `ovnkube-route agent` configuration: flags and environment variables read into one
 * typed, validated AgentConfig. One table (FLAGS) drives parsing, environment lookup,
 * defaults and --help, so the help text cannot drift from what is parsed. A flag beats its
 * environment variable; list variables are comma-separated. Nothing here reads
 * process.env: the caller passes the environment in.
 */
import { isIP } from 'node:net';
import { flagHelp, parseDuration, readFlags, type FlagSpec } from '../../core/flags.js';
import { DEFAULT_CNI_CACHE_DIR } from '../discovery/cni-cache.js';
import { DEFAULT_NETNS_DIR } from '../kernel/netns.js';
import { CodedError } from '../../platform/errors.js';

export interface AgentConfig {
  /** The node this agent serves; only pods with spec.nodeName equal to it are watched. */
  nodeName: string;
  /** Plan key files; every key verifies (the webhook's first one signs). */
  planKeys: string[];
  cniCacheDir: string;
  netnsDir: string;
  procRoot: string;
  /** Durable state (saved original default routes) lives under <stateDir>/agent. */
  stateDir: string;
  /** Pod annotation naming the netns path (fallback when the CNI cache has nothing); undefined: off. */
  netnsAnnotation: string | undefined;
  /** Full resync of every kept netns, and rescan of the CNI cache dir, in milliseconds. */
  resyncPeriodMs: number;
  /** host:port of the /metrics, /healthz and /readyz listener; undefined: no listener. */
  metricsAddr: { host: string; port: number } | undefined;
  /** Pods whose netns is being written at the same time (bounded work pool). */
  maxParallel: number;
  /** Kubeconfig file; undefined means in-cluster service-account credentials. */
  kubeconfig: string | undefined;
  logLevel: AgentLogLevel;
  /**
   * CNI-time injection: the unix socket the CNI plugin calls during CNI ADD (undefined:
   * off), how long an answer may take, where the plugin leaves fail-open markers, and where
   * to install the plugin and its conf (undefined: not installed by the agent).
   */
  cni: { socket: string | undefined; timeoutMs: number; missedDir: string; binDir: string | undefined; confDir: string | undefined };
  /** Where to write the iproute2 name of proto 111 (rt_protos.d); undefined: not written. */
  rtProtosDir: string | undefined;
  /** Deadline of every API request; also bounds the wait for a watch's response headers (at most 30 s). */
  apiTimeoutMs: number;
  /** Longest silence (no event, no bookmark) of a watch before it is restarted. */
  watchIdleMs: number;
}

/** The agent's log levels (platform/log.ts), most severe first. */
export const AGENT_LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type AgentLogLevel = (typeof AGENT_LOG_LEVELS)[number];

/** Error of a bad flag or variable; the message names it and what was expected. */
export class AgentConfigError extends CodedError {
  override name = 'AgentConfigError';
  constructor(message: string) {
    super('OVNKR_ERR_AGENT_CONFIG', message);
  }
}

/** Default state dir of the agent (the `inject` CLI keeps its own under <dir>/inject). */
export const DEFAULT_STATE_DIR = '/var/lib/ovnkube-route';
export const DEFAULT_METRICS_ADDR = '0.0.0.0:9479';

/** Every flag, its environment variable, default and help line. */
export const AGENT_FLAGS: Record<string, FlagSpec> = {
  'node-name': { env: 'NODE_NAME', value: 'NAME', help: "this node's name (required; the DaemonSet sets NODE_NAME from spec.nodeName)" },
  'plan-key': {
    env: 'OVNKUBE_ROUTE_PLAN_KEYS',
    value: 'FILE',
    multiple: true,
    help: 'plan key file (base64 of >= 32 bytes) plans are verified with (required); repeat during a rotation; re-read when it changes',
  },
  'cni-cache-dir': {
    env: 'OVNKUBE_ROUTE_CNI_CACHE_DIR',
    value: 'DIR',
    default: DEFAULT_CNI_CACHE_DIR,
    help: "the CNI result cache, watched with inotify to find each pod's netns",
  },
  'netns-dir': {
    env: 'OVNKUBE_ROUTE_NETNS_DIR',
    value: 'DIR',
    default: DEFAULT_NETNS_DIR,
    help: 'only netns paths inside this dir are entered',
  },
  'proc-root': {
    env: 'OVNKUBE_ROUTE_PROC_ROOT',
    value: 'DIR',
    default: '/proc',
    help: 'procfs root, to recognise (and refuse) the host netns',
  },
  'state-dir': {
    env: 'OVNKUBE_ROUTE_STATE_DIR',
    value: 'DIR',
    default: DEFAULT_STATE_DIR,
    help: 'durable state: original default routes saved under DIR/agent',
  },
  'netns-annotation': {
    env: 'OVNKUBE_ROUTE_NETNS_ANNOTATION',
    value: 'KEY',
    help: 'fallback: pod annotation naming the netns path, used when the CNI cache has no file for the pod (off by default)',
  },
  'resync-period': {
    env: 'OVNKUBE_ROUTE_RESYNC_PERIOD',
    value: 'DURATION',
    default: '60s',
    help: 'full resync of each kept netns and rescan of the CNI cache (e.g. 30s, 5m)',
  },
  'metrics-addr': {
    env: 'OVNKUBE_ROUTE_METRICS_ADDR',
    value: 'HOST:PORT',
    default: DEFAULT_METRICS_ADDR,
    help: 'listen address of /metrics, /healthz, /readyz ("off": none)',
  },
  'max-parallel': {
    env: 'OVNKUBE_ROUTE_MAX_PARALLEL',
    value: 'N',
    default: '8',
    help: 'pods whose netns is written at the same time (1-256)',
  },
  'api-timeout': {
    env: 'OVNKUBE_ROUTE_API_TIMEOUT',
    value: 'DURATION',
    default: '60s',
    help: "deadline of every API request (lists, patches, Events) and of a watch's answer (at most 30s); 1s-10m",
  },
  'watch-idle-timeout': {
    env: 'OVNKUBE_ROUTE_WATCH_IDLE_TIMEOUT',
    value: 'DURATION',
    default: '5m',
    help: 'a watch with no event and no bookmark (sent about every minute) for this long is restarted; 1s-1h',
  },
  kubeconfig: { env: 'KUBECONFIG', value: 'FILE', help: 'kubeconfig to use; without it, the in-cluster service account' },
  'cni-socket': {
    env: 'OVNKUBE_ROUTE_CNI_SOCKET',
    value: 'PATH',
    default: 'off',
    help: 'CNI-time injection: unix socket the ovnkube-route CNI plugin calls during CNI ADD, to write a pod\'s routes before its containers start ("off": none; deploy/ sets /run/ovnkube-route/cni.sock)',
  },
  'cni-timeout': {
    env: 'OVNKUBE_ROUTE_CNI_TIMEOUT',
    value: 'DURATION',
    default: '2500ms',
    help: 'longest a CNI ADD request waits for the routes; then the pod starts and they follow (fail-open)',
  },
  'cni-missed-dir': {
    env: 'OVNKUBE_ROUTE_CNI_MISSED_DIR',
    value: 'DIR',
    default: '/run/ovnkube-route/cni-missed',
    help: 'where the CNI plugin leaves a marker per sandbox it could not get routes for (fail-open)',
  },
  'cni-bin-dir': {
    env: 'OVNKUBE_ROUTE_CNI_BIN_DIR',
    value: 'DIR',
    help: "install the CNI plugin binary here at start (the host's CNI bin dir, mounted)",
  },
  'cni-conf-dir': {
    env: 'OVNKUBE_ROUTE_CNI_CONF_DIR',
    value: 'DIR',
    help: "chain the CNI plugin into the first network config here at start, and take it out at exit (the host's CNI conf dir, mounted)",
  },
  'rt-protos-dir': {
    env: 'OVNKUBE_ROUTE_RT_PROTOS_DIR',
    value: 'DIR',
    help: 'write ovnkube-route.conf ("111 ovnkube-route") here at start, so ip route names proto 111 (the host\'s /etc/iproute2/rt_protos.d, mounted; off by default)',
  },
  'log-level': {
    env: 'OVNKUBE_ROUTE_LOG_LEVEL',
    value: AGENT_LOG_LEVELS.join('|'),
    default: 'info',
    help: 'log level (JSON lines on stderr)',
  },
};

/** The --help text, generated from AGENT_FLAGS. */
export function agentHelp(): string {
  return flagHelp(
    'Usage: ovnkube-route agent --node-name NAME --plan-key FILE [flags]',
    [
      'Runs the node injector (one per node, as a DaemonSet). It watches the pods of this node,',
      "verifies each pod's signed plan (routes.k8s.ovn.org/plan), finds the pod's netns in the",
      "CNI result cache (inotify, no polling), writes the plan's routes there with netlink and",
      'keeps them there. It reports on each pod (annotation routes.k8s.ovn.org/status, and the',
      'condition routes.k8s.ovn.org/ready when the pod has that readiness gate), emits Events',
      'for failures, and serves Prometheus metrics. Stops on SIGTERM or SIGINT, leaving the',
      'routes in place.',
    ],
    AGENT_FLAGS,
  );
}

const fail = (msg: string): never => {
  throw new AgentConfigError(msg);
};

export { parseDuration };

/** A Kubernetes annotation key: optional DNS-subdomain prefix and "/", then a name of <= 63 chars. */
function isAnnotationKey(k: string): boolean {
  const parts = k.split('/');
  if (parts.length > 2) return false;
  const name = parts.pop()!;
  const prefix = parts[0];
  if (!/^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/.test(name)) return false;
  return prefix === undefined || (prefix.length <= 253 && /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(prefix));
}

function parseAddr(text: string, from: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text);
  if (!m) return fail(`${from}: expected HOST:PORT (e.g. 0.0.0.0:9479 or [::1]:9479) or "off", got "${text}"`);
  const host = m[1] ?? (m[2] || '0.0.0.0');
  const port = Number(m[3]);
  if (isIP(host) === 0) fail(`${from}: expected an IP address as host, got "${host}"`);
  if (port > 65535) fail(`${from}: expected a port 0-65535, got ${port}`);
  return { host, port };
}

/**
 * Parse argv (without the command name) and env into a validated AgentConfig. Throws
 * AgentConfigError naming the flag (or its variable) and what was expected.
 */
export function parseAgentConfig(argv: string[], env: Record<string, string | undefined>): AgentConfig {
  const { raw, one, from } = readFlags(AGENT_FLAGS, argv, env, fail);

  const nodeName = one('node-name') ?? fail('--node-name (or $NODE_NAME) is required: the agent serves the pods of one node');
  if (!/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/.test(nodeName))
    fail(`${from('node-name')}: expected a node name (DNS subdomain), got "${nodeName}"`);
  const keysRaw = raw('plan-key').value;
  const planKeys = keysRaw === undefined ? [] : Array.isArray(keysRaw) ? keysRaw : [keysRaw];
  if (planKeys.length === 0) fail(`--plan-key (or $${AGENT_FLAGS['plan-key']!.env}) is required: plans are verified with it`);
  const dirs: Record<string, string> = {};
  for (const d of ['cni-cache-dir', 'netns-dir', 'proc-root', 'state-dir']) {
    const v = one(d) ?? fail(`${from(d)} must not be empty`);
    if (!v.startsWith('/')) fail(`${from(d)}: expected an absolute path, got "${v}"`);
    dirs[d] = v.length > 1 ? v.replace(/\/+$/, '') : v;
  }
  const netnsAnnotation = one('netns-annotation');
  if (netnsAnnotation !== undefined && !isAnnotationKey(netnsAnnotation)) {
    fail(`${from('netns-annotation')}: expected an annotation key such as example.com/netns, got "${netnsAnnotation}"`);
  }
  const resyncText = one('resync-period')!;
  const resyncPeriodMs = parseDuration(resyncText);
  if (!(resyncPeriodMs >= 1000 && resyncPeriodMs <= 24 * 3_600_000)) {
    fail(`${from('resync-period')}: expected a duration between 1s and 24h (e.g. 60s, 5m), got "${resyncText}"`);
  }
  const addrText = one('metrics-addr')!;
  const metricsAddr = addrText === 'off' ? undefined : parseAddr(addrText, from('metrics-addr'));
  const parText = one('max-parallel')!;
  const maxParallel = Number(parText);
  if (!/^\d+$/.test(parText) || maxParallel < 1 || maxParallel > 256)
    fail(`${from('max-parallel')}: expected an integer 1-256, got "${parText}"`);
  const socketText = one('cni-socket')!;
  if (socketText !== 'off' && !socketText.startsWith('/'))
    fail(`${from('cni-socket')}: expected an absolute socket path or "off", got "${socketText}"`);
  const cniTimeoutText = one('cni-timeout')!;
  const cniTimeoutMs = parseDuration(cniTimeoutText);
  if (!(cniTimeoutMs >= 100 && cniTimeoutMs <= 60_000))
    fail(`${from('cni-timeout')}: expected a duration between 100ms and 60s (e.g. 2500ms), got "${cniTimeoutText}"`);
  const cniDirs: Record<string, string | undefined> = {};
  for (const d of ['cni-missed-dir', 'cni-bin-dir', 'cni-conf-dir']) {
    const v = one(d);
    if (v !== undefined && !v.startsWith('/')) fail(`${from(d)}: expected an absolute path, got "${v}"`);
    cniDirs[d] = v;
  }
  if ((cniDirs['cni-bin-dir'] === undefined) !== (cniDirs['cni-conf-dir'] === undefined)) {
    fail(`--cni-bin-dir and --cni-conf-dir go together: the plugin is installed into both or neither`);
  }
  if (cniDirs['cni-conf-dir'] !== undefined && socketText === 'off')
    fail(`${from('cni-conf-dir')}: installing the CNI plugin needs --cni-socket (the socket it calls)`);
  const rtProtosDir = one('rt-protos-dir');
  if (rtProtosDir !== undefined && !rtProtosDir.startsWith('/'))
    fail(`${from('rt-protos-dir')}: expected an absolute path, got "${rtProtosDir}"`);
  const durationIn = (flag: string, minMs: number, maxMs: number, range: string): number => {
    const text = one(flag)!;
    const ms = parseDuration(text);
    if (!(ms >= minMs && ms <= maxMs)) fail(`${from(flag)}: expected a duration between ${range} (e.g. 30s, 2m), got "${text}"`);
    return ms;
  };
  const apiTimeoutMs = durationIn('api-timeout', 1000, 600_000, '1s and 10m');
  const watchIdleMs = durationIn('watch-idle-timeout', 1000, 3_600_000, '1s and 1h');
  const logLevel = one('log-level')!;
  if (!(AGENT_LOG_LEVELS as readonly string[]).includes(logLevel))
    fail(`${from('log-level')}: expected one of ${AGENT_LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  return {
    nodeName,
    planKeys,
    cniCacheDir: dirs['cni-cache-dir']!,
    netnsDir: dirs['netns-dir']!,
    procRoot: dirs['proc-root']!,
    stateDir: dirs['state-dir']!,
    netnsAnnotation,
    resyncPeriodMs,
    metricsAddr,
    maxParallel,
    kubeconfig: one('kubeconfig'),
    logLevel: logLevel as AgentLogLevel,
    cni: {
      socket: socketText === 'off' ? undefined : socketText,
      timeoutMs: cniTimeoutMs,
      missedDir: cniDirs['cni-missed-dir']!,
      binDir: cniDirs['cni-bin-dir'],
      confDir: cniDirs['cni-conf-dir'],
    },
    rtProtosDir,
    apiTimeoutMs,
    watchIdleMs,
  };
}
