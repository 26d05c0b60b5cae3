// The agent's list+watch against a silent API endpoint (issue #16, defects 1 and 7): the
// real `ovnkube-route agent` binary pointed at a TCP endpoint that accepts and never
// answers logs its retries, stays unready, and becomes ready once an API server answers
// behind the same address; a stalled loop makes /healthz 503; stop() cuts a back-off short.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import t from 'tap';
import { listWatchLiveness, NamespaceSource, PodSource } from '../../injector/agent/kube.js';
import { memoryLogger } from '../../platform/log.js';
import { serveMetrics } from '../../injector/metrics.js';
import { FakeApi, loopbackKubeConfig, SwitchableFront } from '../util/fake-api.js';
import { cliPath } from '../util/fixtures.js';
import { testKey, until } from './rig.js';
import type { AddressInfo } from 'node:net';
import { freePort, httpGet as get } from '../util/http.js';

const memoryLog = () => memoryLogger('debug');

t.test('the agent binary against a silent API endpoint: retries logged, unready, then ready once an API server answers', async (t) => {
  const front = new SwitchableFront();
  const apiPort = await front.listen();
  const api = new FakeApi();
  await api.listen();
  api.objects.set('/api/v1/namespaces', [{ metadata: { name: 'default', resourceVersion: '1' } }]);
  const dir = mkdtempSync(join(tmpdir(), 'agent-silent-'));
  t.teardown(async () => {
    await front.close();
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, loopbackKubeConfig(apiPort).exportConfig());
  const keyFile = join(dir, 'plan.key');
  writeFileSync(keyFile, testKey().secret.toString('base64') + '\n', { mode: 0o600 });
  for (const d of ['cni', 'netns', 'state']) rmSync(join(dir, d), { recursive: true, force: true });
  const port = await freePort();
  const agent = spawn(
    process.execPath,
    [
      cliPath,
      'agent',
      '--node-name',
      'n1',
      '--plan-key',
      keyFile,
      '--cni-cache-dir',
      join(dir, 'cni'),
      '--netns-dir',
      join(dir, 'netns'),
      '--state-dir',
      join(dir, 'state'),
      '--kubeconfig',
      kubeconfig,
      '--metrics-addr',
      `127.0.0.1:${port}`,
      '--api-timeout',
      '1s',
      '--watch-idle-timeout',
      '2s',
      '--log-level',
      'debug',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_NAME: '' } },
  );
  let log = '';
  agent.stderr!.on('data', (d: Buffer) => {
    log += d.toString();
  });
  const exited = new Promise<number | null>((r) => agent.once('exit', (code) => r(code)));
  t.teardown(() => {
    if (agent.exitCode === null) agent.kill('SIGKILL');
  });
  const retries = (re: RegExp): number => log.split('\n').filter((l) => l.includes('list/watch failed; retrying') && re.test(l)).length;
  await until(
    'both lists were retried twice, each with a log line naming the deadline',
    () =>
      retries(/"what":"pods of node n1".*no complete answer from the API server within 1 s/) >= 2 &&
      retries(/"what":"namespaces".*no complete answer from the API server within 1 s/) >= 2,
    30_000,
  );
  t.equal((await get(port, '/readyz')).status, 503, 'not ready while the API server does not answer');
  t.equal((await get(port, '/healthz')).status, 200, 'alive: the loops are retrying');
  t.match(await get(port, '/metrics'), { body: /ovnkube_route_injector_failures_total\{reason="api-list-watch"\} [1-9]/ });

  front.forwardTo({ host: '127.0.0.1', port: api.port });
  await until('the agent becomes ready once the API server answers', async () => (await get(port, '/readyz')).status === 200, 30_000);
  // Idle watches are restarted (no bookmark from this fake) with a log line.
  await until('an idle watch was restarted', () => retries(/no event or bookmark within 2 s/) >= 1, 30_000);
  agent.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM: clean exit');
  t.match(log, /"msg":"stopping; routes stay in place"/);
});

t.test('/healthz of the agent turns 503 when a list+watch loop stalls', async (t) => {
  let now = 5_000_000;
  const api = new FakeApi();
  await api.listen();
  t.teardown(() => api.close());
  let listed = false;
  const hung = { watch: async () => new AbortController() };
  const ns = new NamespaceSource(
    loopbackKubeConfig(api.port),
    {
      namespaceAdded() {},
      namespaceUpdated() {},
      namespaceDeleted() {},
      namespacesSynced: () => {
        listed = true;
      },
    },
    memoryLog(),
    { watch: hung, now: () => now },
  );
  ns.start();
  t.teardown(() => ns.stop());
  await until('namespaces listed', () => listed, 10_000);
  const server = await serveMetrics(
    new Registry(),
    { host: '127.0.0.1', port: 0 },
    () => true,
    () => listWatchLiveness([ns], 60_000),
  );
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as AddressInfo).port;
  t.equal((await get(port, '/healthz')).status, 200);
  now += 60_001;
  const res = await get(port, '/healthz');
  t.equal(res.status, 503);
  t.equal(res.body, 'not alive: list/watch loop stalled: namespaces (no progress for 60 s; last: watch started)\n');
});

t.test('stop() cuts a pending back-off short: no timer is left behind', async (t) => {
  const api = new FakeApi();
  await api.listen();
  api.watchEndsAtOnce = true;
  t.teardown(() => api.close());
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const before = timers();
  const log = memoryLog();
  const pods = new PodSource(
    loopbackKubeConfig(api.port),
    'n1',
    {
      podAdded() {},
      podUpdated() {},
      podDeleted() {},
      podsSynced() {},
    },
    log,
    { maxBackoffMs: 600_000, random: () => 0.5 },
  );
  pods.start();
  // Watches that end at once without an event are re-opened after a growing back-off:
  // after the third, one of 2 s is pending.
  await until('three watches ended at once', () => api.watches >= 3, 20_000);
  await until('a back-off is pending', () => timers() > before, 10_000);
  await pods.stop();
  t.equal(timers(), before, 'no timer left after stop()');
  t.equal(pods.stalled(), undefined, 'a stopped source reports no progress');
});

// Issue #16, defect 7: measured before this: SIGTERM while both lists waited on a silent API
// server left the process alive until the shutdown grace (8 s) cut it off.
t.test('SIGTERM while lists wait on a silent API server: the agent exits by itself, with no overrun', async (t) => {
  const front = new SwitchableFront();
  const apiPort = await front.listen();
  const dir = mkdtempSync(join(tmpdir(), 'agent-stop-'));
  t.teardown(async () => {
    await front.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, loopbackKubeConfig(apiPort).exportConfig());
  const keyFile = join(dir, 'plan.key');
  writeFileSync(keyFile, testKey().secret.toString('base64') + '\n', { mode: 0o600 });
  const agent = spawn(
    process.execPath,
    [
      cliPath,
      'agent',
      '--node-name',
      'n1',
      '--plan-key',
      keyFile,
      '--cni-cache-dir',
      join(dir, 'cni'),
      '--netns-dir',
      join(dir, 'netns'),
      '--state-dir',
      join(dir, 'state'),
      '--kubeconfig',
      kubeconfig,
      '--metrics-addr',
      'off',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_NAME: '' } },
  );
  let log = '';
  agent.stderr!.on('data', (d: Buffer) => {
    log += d.toString();
  });
  const exited = new Promise<number | null>((r) => agent.once('close', (code) => r(code)));
  t.teardown(() => {
    if (agent.exitCode === null) agent.kill('SIGKILL');
  });
  await until('both lists are waiting on the silent endpoint', () => front.accepted >= 2, 30_000);
  agent.kill('SIGTERM');
  t.equal(await exited, 0);
  t.match(log, /"msg":"stopping; routes stay in place"/);
  t.notMatch(log, /shutdown did not finish/, 'nothing kept the process alive: the in-flight lists were aborted');
  await until('the client closed its silent connections', () => front.silentClosed >= 2, 10_000);
});

t.test('stop() aborts a list in flight at once', async (t) => {
  const front = new SwitchableFront();
  const port = await front.listen();
  t.teardown(() => front.close());
  const log = memoryLog();
  const pods = new PodSource(loopbackKubeConfig(port), 'n1', { podAdded() {}, podUpdated() {}, podDeleted() {}, podsSynced() {} }, log, {
    apiTimeoutMs: 600_000,
  });
  pods.start();
  await until('the list is waiting', () => front.accepted === 1, 10_000);
  await pods.stop();
  await until('its connection was closed', () => front.silentClosed === 1, 10_000);
  t.same(
    log.lines.filter((l) => l.level === 'warn'),
    [],
    'a stop is not logged as a failure',
  );
});
