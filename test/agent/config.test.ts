// The agent's configuration: flags and environment into one validated AgentConfig, and
// --help generated from the same table (so it names every flag that is parsed).
import t from 'tap';
import { AGENT_FLAGS, agentHelp, parseAgentConfig, parseDuration } from '../../injector/agent/config.js';

const base = ['--node-name', 'node-1', '--plan-key', '/keys/a'];

t.test('defaults', async (t) => {
  const c = parseAgentConfig(base, {});
  t.same(c, {
    nodeName: 'node-1',
    planKeys: ['/keys/a'],
    cniCacheDir: '/var/lib/cni/results',
    netnsDir: '/var/run/netns',
    procRoot: '/proc',
    stateDir: '/var/lib/ovnkube-route',
    netnsAnnotation: undefined,
    resyncPeriodMs: 60_000,
    metricsAddr: { host: '0.0.0.0', port: 9479 },
    maxParallel: 8,
    kubeconfig: undefined,
    logLevel: 'info',
    apiTimeoutMs: 60_000,
    watchIdleMs: 300_000,
    cni: { socket: undefined, timeoutMs: 2500, missedDir: '/run/ovnkube-route/cni-missed', binDir: undefined, confDir: undefined },
  });
});

t.test('environment, flags win, repeated keys', async (t) => {
  const env = {
    NODE_NAME: 'from-env',
    OVNKUBE_ROUTE_PLAN_KEYS: '/k/1, /k/2',
    OVNKUBE_ROUTE_RESYNC_PERIOD: '5m',
    OVNKUBE_ROUTE_METRICS_ADDR: 'off',
    OVNKUBE_ROUTE_NETNS_ANNOTATION: 'example.com/netns',
    KUBECONFIG: '/kc',
  };
  const c = parseAgentConfig([], env);
  t.match(c, {
    nodeName: 'from-env',
    planKeys: ['/k/1', '/k/2'],
    resyncPeriodMs: 300_000,
    metricsAddr: undefined,
    netnsAnnotation: 'example.com/netns',
    kubeconfig: '/kc',
  });
  const f = parseAgentConfig(
    ['--node-name', 'flag', '--plan-key', '/a', '--plan-key', '/b', '--metrics-addr', '[::1]:9000', '--state-dir', '/s/'],
    env,
  );
  t.match(f, { nodeName: 'flag', planKeys: ['/a', '/b'], metricsAddr: { host: '::1', port: 9000 }, stateDir: '/s' });
});

t.test('errors name the flag and what was expected', async (t) => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [['--plan-key', '/a'], {}, /--node-name \(or \$NODE_NAME\) is required/],
    [['--node-name', 'n'], {}, /--plan-key .* is required/],
    [[...base, '--node-name', 'Bad_Name'], {}, /--node-name: expected a node name/],
    [[...base, '--cni-cache-dir', 'relative'], {}, /--cni-cache-dir: expected an absolute path/],
    [[...base, '--resync-period', '500ms'], {}, /--resync-period: expected a duration between 1s and 24h/],
    [[...base, '--resync-period', 'soon'], {}, /--resync-period: expected a duration/],
    [[...base], { OVNKUBE_ROUTE_MAX_PARALLEL: '0' }, /\$OVNKUBE_ROUTE_MAX_PARALLEL: expected an integer 1-256/],
    [[...base, '--metrics-addr', 'localhost:80'], {}, /--metrics-addr: expected an IP address as host/],
    [[...base, '--metrics-addr', '9479'], {}, /--metrics-addr: expected HOST:PORT/],
    [[...base, '--netns-annotation', 'not a key'], {}, /--netns-annotation: expected an annotation key/],
    [[...base, '--log-level', 'loud'], {}, /--log-level: expected one of error, warn, info, debug/],
    [[...base, '--bogus'], {}, /Unknown option '--bogus'/],
  ];
  for (const [argv, env, re] of cases) {
    t.throws(() => parseAgentConfig(argv, env), { name: 'AgentConfigError', message: re }, argv.join(' '));
  }
});

t.test('durations', async (t) => {
  // Go-style durations, as the webhook's flags (core/flags.ts): a unit is required.
  t.equal(parseAgentConfig([...base, '--resync-period', '10s'], {}).resyncPeriodMs, 10_000);
  t.throws(
    () => parseAgentConfig([...base, '--resync-period', '10'], {}),
    /--resync-period: expected a duration/,
    'a bare number is refused',
  );
  t.same(['500ms', '30s', '30', '5m', '1h', '1.5s', 'x', '5 m', ''].map(parseDuration), [
    500,
    30_000,
    NaN,
    300_000,
    3_600_000,
    1500,
    NaN,
    NaN,
    NaN,
  ]);
});

t.test('--help names every flag and its variable', async (t) => {
  const help = agentHelp();
  for (const [name, f] of Object.entries(AGENT_FLAGS)) {
    t.match(help, `--${name} ${f.value}`, `--${name}`);
    t.match(help, `env ${f.env}`, f.env);
  }
});
