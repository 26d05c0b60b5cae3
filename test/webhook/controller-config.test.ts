// The controller's flags of `ovnkube-route webhook`, through the webhook's one config
// parser: defaults, environment variables, validation errors naming the flag, the
// leader-election timing rule, and --help listing every flag that is parsed.
import t from 'tap';
import { parseWebhookConfig, webhookHelp, FLAGS } from '../../webhook/config.js';
import { CONTROLLER_FLAGS, parseDuration } from '../../webhook/controller/config.js';

const base = ['--tls-cert', 'c.pem', '--tls-key', 'k.pem', '--plan-key', 'p.key'];
const parse = (argv: string[], env: Record<string, string> = {}) => parseWebhookConfig([...base, ...argv], env).controller;

t.test("defaults are client-go's leader election timings, 32 pods at once and a token bucket that only stops a runaway", async (t) => {
  t.same(parse([]), {
    enabled: true,
    leaseNamespace: 'ovnkube-route',
    leaseName: 'ovnkube-route-controller',
    leaderId: undefined,
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
    patchQps: 500,
    patchBurst: 1000,
    patchConcurrency: 32,
    resyncPeriodMs: 600_000,
  });
});

t.test('flags and environment variables (the flag wins)', async (t) => {
  const c = parse(
    [
      '--controller=false',
      '--lease-namespace',
      'kube-system',
      '--lease-name',
      'x.y',
      '--leader-id',
      'pod-1',
      '--lease-duration',
      '3s',
      '--renew-deadline',
      '2s',
      '--retry-period',
      '500ms',
      '--patch-qps',
      '2.5',
      '--patch-burst',
      '5',
      '--patch-concurrency',
      '1',
      '--resync-period',
      '0',
    ],
    { OVNKUBE_ROUTE_LEASE_NAMESPACE: 'ignored', OVNKUBE_ROUTE_PATCH_BURST: '99' },
  );
  t.same(c, {
    enabled: false,
    leaseNamespace: 'kube-system',
    leaseName: 'x.y',
    leaderId: 'pod-1',
    leaseDurationMs: 3000,
    renewDeadlineMs: 2000,
    retryPeriodMs: 500,
    patchQps: 2.5,
    patchBurst: 5,
    patchConcurrency: 1,
    resyncPeriodMs: 0,
  });
  const e = parse([], { OVNKUBE_ROUTE_CONTROLLER: 'false', OVNKUBE_ROUTE_LEADER_ID: 'from-env', OVNKUBE_ROUTE_PATCH_QPS: '7' });
  t.match(e, { enabled: false, leaderId: 'from-env', patchQps: 7 });
});

t.test('bad values are refused, naming the flag or variable and what was expected', async (t) => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [['--controller', 'yes'], {}, /--controller: expected "true" or "false", got "yes"/],
    [['--lease-namespace', 'Bad_NS'], {}, /--lease-namespace: expected a namespace name/],
    [['--lease-duration', '15'], {}, /--lease-duration: expected a positive duration such as 500ms, 2s or 10m, got "15"/],
    [['--retry-period', '0'], {}, /--retry-period: expected a positive duration/],
    [['--patch-qps', '0'], {}, /--patch-qps: expected a positive number, got "0"/],
    [['--patch-burst', '1.5'], {}, /--patch-burst: expected a positive integer/],
    [['--patch-concurrency', 'many'], {}, /--patch-concurrency: expected a positive integer/],
    [[], { OVNKUBE_ROUTE_PATCH_CONCURRENCY: '-1' }, /\$OVNKUBE_ROUTE_PATCH_CONCURRENCY: expected a positive integer/],
    [['--lease-duration', '10s'], {}, /lease duration \(10000 ms\) must be greater than the renew deadline \(10000 ms\)/],
    [['--renew-deadline', '2s'], {}, /renew deadline \(2000 ms\) must be greater than 1.2 x the retry period \(2000 ms\)/],
    [['--lease-duration', '900ms', '--renew-deadline', '500ms', '--retry-period', '100ms'], {}, /lease duration must be at least 1 s/],
  ];
  for (const [argv, env, re] of cases)
    t.throws(() => parse(argv, env), { code: 'OVNKR_ERR_CONFIG', message: re }, `${argv.join(' ')} ${JSON.stringify(env)}`);
});

t.test('parseDuration', async (t) => {
  t.same(['500ms', '2s', '1.5s', '10m', '1h', '0', '5', 's', '-1s', '1d'].map(parseDuration), [
    500,
    2000,
    1500,
    600_000,
    3_600_000,
    0,
    NaN,
    NaN,
    NaN,
    NaN,
  ]);
});

t.test('--help lists every controller flag with its variable and default', async (t) => {
  const help = webhookHelp();
  for (const [name, f] of Object.entries(CONTROLLER_FLAGS)) {
    t.ok(FLAGS[name], `--${name} is in the parsed table`);
    t.match(help, `--${name} ${f.value}`, `--${name} in --help`);
    t.match(help, f.env);
    if (f.default !== undefined) t.match(help, `default ${f.default}`);
  }
  t.match(help, /controller: replicas elect a leader through a Lease/);
});
