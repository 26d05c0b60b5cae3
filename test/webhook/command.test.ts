// `ovnkube-route webhook`: flags and environment into one validated config, a --help that
// lists exactly what is parsed, startup errors that name the file, and the real command
// run as a child process (HTTPS with certs/gen.sh certs, an API server that is not there:
// alive, not ready, failing open, and a clean exit on SIGTERM).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t from 'tap';
import { PLAN_ANNOTATION } from '../../core/types.js';
import { FLAGS, parseWebhookConfig, webhookHelp } from '../../webhook/config.js';
import type { AdmissionReview } from '../../webhook/admission/review.js';
import { runCli } from '../util/cli.js';
import { cliPath } from '../util/fixtures.js';
import { annotate, genCerts, patchOps, reviewWith } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'ovnkube-route-cmd-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
await genCerts(dir, ['--san', 'IP:127.0.0.1']);
const files = ['--tls-cert', join(dir, 'tls.crt'), '--tls-key', join(dir, 'tls.key'), '--plan-key', join(dir, 'plan.key')];

t.test('flags and environment become one validated config', async (t) => {
  // t.has: the controller running in the same process adds its own settings to the config.
  t.has(
    parseWebhookConfig(['--tls-cert', 'c', '--tls-key', 'k', '--plan-key', 'p'], {}),
    {
      listenAddress: '0.0.0.0',
      port: 8443,
      tlsCert: 'c',
      tlsKey: 'k',
      planKeys: ['p'],
      mode: 'default',
      kubeconfig: undefined,
      trustedUsers: [],
      logLevel: 'info',
    },
    'defaults',
  );
  const env = {
    OVNKUBE_ROUTE_TLS_CERT: 'env-c',
    OVNKUBE_ROUTE_TLS_KEY: 'env-k',
    OVNKUBE_ROUTE_PLAN_KEYS: 'new.key, old.key',
    OVNKUBE_ROUTE_MODE: 'opt-in',
    OVNKUBE_ROUTE_PORT: '9443',
    KUBECONFIG: '/kc',
    OVNKUBE_ROUTE_TRUSTED_USERS: 'a,b',
    OVNKUBE_ROUTE_LISTEN_ADDRESS: '::1',
    OVNKUBE_ROUTE_LOG_LEVEL: 'debug',
  };
  t.has(
    parseWebhookConfig([], env),
    {
      listenAddress: '::1',
      port: 9443,
      tlsCert: 'env-c',
      tlsKey: 'env-k',
      planKeys: ['new.key', 'old.key'],
      mode: 'opt-in',
      kubeconfig: '/kc',
      trustedUsers: ['a', 'b'],
      logLevel: 'debug',
    },
    'all from the environment, lists comma-separated',
  );
  const c = parseWebhookConfig(['--port', '0', '--plan-key', 'x', '--plan-key', 'y', '--mode', 'default', '--trusted-user', 'me'], env);
  t.same(
    [c.port, c.planKeys, c.mode, c.trustedUsers, c.tlsCert],
    [0, ['x', 'y'], 'default', ['me'], 'env-c'],
    'flags win; repeated flags are lists',
  );
});

t.test('bad configuration is refused naming the flag or variable and what was expected', async (t) => {
  const base = ['--tls-cert', 'c', '--tls-key', 'k', '--plan-key', 'p'];
  const cases: [string, string[], Record<string, string>, RegExp][] = [
    ['no cert', ['--tls-key', 'k', '--plan-key', 'p'], {}, /--tls-cert is required/],
    ['no plan key', ['--tls-cert', 'c', '--tls-key', 'k'], {}, /--plan-key \(or \$OVNKUBE_ROUTE_PLAN_KEYS\) is required/],
    ['a bad port', [...base, '--port', '70000'], {}, /--port: expected a port number 0-65535, got "70000"/],
    ['a bad port from env', base, { OVNKUBE_ROUTE_PORT: 'https' }, /\$OVNKUBE_ROUTE_PORT: expected a port number/],
    ['a bad mode', [...base, '--mode', 'opt-out'], {}, /--mode: expected "default" or "opt-in", got "opt-out"/],
    ['a bad address', [...base, '--listen-address', 'localhost'], {}, /--listen-address: expected an IPv4 or IPv6 address/],
    ['a bad log level', [...base, '--log-level', 'loud'], {}, /--log-level: expected one of fatal, error/],
    ['an unknown flag', [...base, '--tls-ca', 'x'], {}, /Unknown option '--tls-ca'/],
    ['a positional argument', [...base, 'serve'], {}, /Unexpected argument 'serve'/],
  ];
  for (const [what, argv, env, msg] of cases) {
    t.throws(() => parseWebhookConfig(argv, env), { code: 'OVNKR_ERR_CONFIG', message: msg }, what);
  }
});

t.test('--help lists exactly the flags that are parsed, with their variables', async (t) => {
  const help = webhookHelp();
  const listed = [...help.matchAll(/^ {2}--([a-z-]+)/gm)].map((m) => m[1]);
  t.same(listed, Object.keys(FLAGS), 'every flag, in order');
  for (const f of Object.values(FLAGS)) t.match(help, `env ${f.env}`, `${f.env} documented`);
  const res = runCli(['webhook', '--help']);
  t.equal(res.code, 0);
  t.equal(res.stdout, help, 'the CLI prints the same text');
  t.match(runCli(['--help']).stdout, /webhook +run the mutating admission webhook/, 'listed in the top-level help');
});

t.test('the command: usage errors exit 2, unusable files exit 1 naming the file', async (t) => {
  const usage = runCli(['webhook', '--mode', 'x', ...files]);
  t.equal(usage.code, 2);
  t.match(usage.stderr, /--mode: expected "default" or "opt-in"/);
  const missing = runCli(['webhook', ...files.slice(0, 4), '--plan-key', join(dir, 'nope.key')]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /cannot load the plan key: ENOENT.*nope\.key/);
  writeFileSync(join(dir, 'short.key'), Buffer.alloc(16).toString('base64'));
  const short = runCli(['webhook', ...files.slice(0, 4), '--plan-key', join(dir, 'short.key')]);
  t.equal(short.code, 1);
  t.match(short.stderr, /short\.key: plan key too short: 16 bytes, expected at least 32/);
  const mismatched = runCli([
    'webhook',
    '--tls-cert',
    join(dir, 'tls.crt'),
    '--tls-key',
    join(dir, 'ca.key'),
    '--plan-key',
    join(dir, 'plan.key'),
  ]);
  t.equal(mismatched.code, 1);
  t.match(mismatched.stderr, /ca\.key does not load with .*tls\.crt/);
  const noKubeconfig = runCli(['webhook', ...files, '--kubeconfig', join(dir, 'nope.kubeconfig')]);
  t.equal(noKubeconfig.code, 1);
  t.match(noKubeconfig.stderr, /cannot load kubeconfig .*nope\.kubeconfig: ENOENT/);
  t.notMatch(noKubeconfig.stderr, /\n\s+at /, 'a message, not a stack trace');
  t.equal(usage.stdout + missing.stdout + short.stdout + mismatched.stdout + noKubeconfig.stdout, '', 'stdout stays empty on failure');
});

t.test('the command serves over HTTPS, fails open before its caches sync, and exits cleanly on SIGTERM', async (t) => {
  // An API server address where nothing listens: the informers keep retrying.
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'c',
      clusters: [{ name: 'none', cluster: { server: 'https://127.0.0.1:1', 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'u', user: { token: 'x' } }],
      contexts: [{ name: 'c', context: { cluster: 'none', user: 'u' } }],
    }),
  );
  const child = spawn(
    process.execPath,
    [cliPath, 'webhook', ...files, '--listen-address', '127.0.0.1', '--port', '0', '--kubeconfig', kubeconfig],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const logs: { msg?: string; port?: number; resource?: string }[] = [];
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  const lines = createInterface(child.stderr);
  const listening = new Promise<number>((resolve) =>
    lines.on('line', (l) => {
      const o = JSON.parse(l) as { msg?: string; port?: number };
      logs.push(o);
      if (o.msg === 'webhook listening') resolve(o.port!);
    }),
  );
  const port = await listening;
  const ca = readFileSync(join(dir, 'ca.crt'));
  const get = (path: string, body?: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', port, path, method: body ? 'POST' : 'GET', ca, agent: false, headers: { 'content-type': 'application/json' } },
        (res) => {
          let b = '';
          res.on('data', (d: Buffer) => {
            b += d.toString();
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  t.equal((await get('/healthz')).status, 200, '/healthz: alive');
  const ready = await get('/readyz');
  t.equal(ready.status, 503, '/readyz: not ready');
  t.match(ready.body, /caches not synced yet: routes, namespaces, services, replicasets, jobs/);
  const forged = reviewWith('review-create-replicaset-pod.json', (p) => annotate(p, PLAN_ANNOTATION, '{"v":1,"routes":[]}'));
  const answer = JSON.parse((await get('/mutate', JSON.stringify(forged))).body) as AdmissionReview;
  t.equal(answer.response?.allowed, true, 'admission fails open');
  t.same(
    patchOps(answer.response),
    [{ op: 'remove', path: '/metadata/annotations/routes.k8s.ovn.org~1plan' }],
    'and still removes a forged plan',
  );
  const metrics = (await get('/metrics')).body;
  t.match(metrics, /ovnkube_route_webhook_plans_skipped_total\{reason="unsynced"\} 1/);
  t.match(metrics, /ovnkube_route_cache_watch_errors_total\{resource="routes"\} [1-9]/, 'the failing informers are counted');
  t.match(metrics, /process_cpu_user_seconds_total/, 'process metrics on the process registry');
  t.match(metrics, /ovnkube_route_webhook_cert_expiry_timestamp_seconds \d/);
  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number | null];
  t.equal(code, 0, 'exit 0 on SIGTERM');
  t.ok(
    logs.some((l) => l.msg === 'shutting down'),
    'logged the shutdown',
  );
  t.ok(
    logs.some((l) => l.msg?.includes('cache list/watch failed') && l.resource),
    'logged the informer failures',
  );
  t.equal(stdout, '', 'logs go to stderr only');
});

// Issue #16, defect 1: an API endpoint that accepts connections and never answers.
t.test('against a silent API endpoint: retries logged with the deadline, alive, unready; SIGTERM exits with no overrun', async (t) => {
  const { SwitchableFront } = await import('../util/fake-api.js');
  const front = new SwitchableFront();
  const apiPort = await front.listen();
  t.teardown(() => front.close());
  const kubeconfig = join(dir, 'silent.kubeconfig');
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'c',
      clusters: [{ name: 'silent', cluster: { server: `http://127.0.0.1:${apiPort}`, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'u', user: { token: 'x' } }],
      contexts: [{ name: 'c', context: { cluster: 'silent', user: 'u' } }],
    }),
  );
  const child = spawn(
    process.execPath,
    [
      cliPath,
      'webhook',
      ...files,
      '--listen-address',
      '127.0.0.1',
      '--port',
      '0',
      '--kubeconfig',
      kubeconfig,
      '--api-timeout',
      '1s',
      '--watch-idle-timeout',
      '2s',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const logs: { msg?: string; port?: number; resource?: string; err?: string }[] = [];
  let stderr = '';
  const lines = createInterface(child.stderr);
  let port = 0;
  lines.on('line', (l) => {
    stderr += l + '\n';
    const o = JSON.parse(l) as { msg?: string; port?: number };
    logs.push(o);
    if (o.msg === 'webhook listening') port = o.port!;
  });
  const ca = readFileSync(join(dir, 'ca.crt'));
  const get = (path: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port, path, ca, agent: false }, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => {
          b += d.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
      });
      req.on('error', reject);
      req.end();
    });
  const { until } = await import('../agent/rig.js');
  await until('listening', () => port > 0, 30_000);
  const retried = (resource: string): number =>
    logs.filter(
      (l) =>
        l.msg === 'cache list/watch failed; retrying' &&
        l.resource === resource &&
        /no complete answer from the API server within 1 s$/.test(l.err ?? ''),
    ).length;
  await until(
    'every cache retried twice, each logged with the request and its deadline',
    () => ['routes', 'namespaces', 'services', 'replicasets', 'jobs', 'pods'].every((r) => retried(r) >= 2),
    60_000,
  );
  t.match(logs.find((l) => l.resource === 'routes' && l.err)?.err, /^GET \/apis\/k8s\.ovn\.org\/v1\/routes: no complete answer/);
  t.ok(
    logs.some(
      (l) =>
        l.msg === 'leader election: Lease read/write failed; retrying' &&
        /leases\/ovnkube-route-controller: no complete answer/.test(l.err ?? ''),
    ),
    'the Lease calls time out too',
  );
  t.equal((await get('/healthz')).status, 200, '/healthz: alive (the loops retry)');
  t.equal((await get('/readyz')).status, 503, '/readyz: not ready');
  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number | null];
  t.equal(code, 0, 'exit 0 on SIGTERM');
  t.notMatch(stderr, /shutdown did not finish/, 'no request left keeping the process alive');
});
