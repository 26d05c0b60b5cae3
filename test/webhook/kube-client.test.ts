// Deadlines on every API call and a watchdog on every watch (issue #16, defect 1), against
// a real silent TCP endpoint (accepts, never answers) on loopback, then a fake API server
// behind the same address: the informer logs its retries and recovers; a loop that stalls
// makes /healthz answer 503.
import { CoreV1Api } from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { buildApp } from '../../webhook/admission/server.js';
import { cachesFromApi, ClusterCaches, CACHED_RESOURCES } from '../../webhook/caches/caches.js';
import { Informer } from '../../webhook/caches/informer.js';
import { apiClient, ApiTimeoutError, DeadlineWatch } from '../../platform/kube-client.js';
import { liveness } from '../../webhook/main.js';
import { ObjectStore } from '../../webhook/caches/store.js';
import { Registry } from 'prom-client';
import type { KubeObject } from '../../core/types.js';
import { FakeApi, loopbackKubeConfig, SwitchableFront } from '../util/fake-api.js';
import { repoRoot } from '../util/fixtures.js';
import { until } from '../agent/rig.js';
import { testKey } from './helpers.js';

t.test('an API call to a silent endpoint fails with a deadline error naming the request', async (t) => {
  const front = new SwitchableFront();
  const port = await front.listen();
  t.teardown(() => front.close());
  const core = apiClient(loopbackKubeConfig(port), CoreV1Api, 300);
  const err = await core.listNamespace().then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof ApiTimeoutError, `rejected with ApiTimeoutError (got ${String(err)})`);
  t.match((err as Error).message, /^GET \/api\/v1\/namespaces.*: no complete answer from the API server within 0\.3 s$/);
  t.equal(front.accepted, 1, 'the request reached the endpoint');
  await until('the client closed the silent connection', () => front.silentClosed >= 1, 10_000);
});

t.test('a watch of a silent endpoint ends with a deadline error; one answered but idle ends too', async (t) => {
  const front = new SwitchableFront();
  const port = await front.listen();
  const api = new FakeApi();
  await api.listen();
  t.teardown(async () => {
    await front.close();
    await api.close();
  });
  const w = new DeadlineWatch(loopbackKubeConfig(port), { connectMs: 300, idleMs: 300 });
  const first = await new Promise<unknown>((resolve) => void w.watch('/api/v1/pods', {}, () => {}, resolve));
  t.ok(first instanceof ApiTimeoutError);
  t.match(
    (first as Error).message,
    /^watch \/api\/v1\/pods\?watch=true&allowWatchBookmarks=true: no answer from the API server within 0\.3 s$/,
  );

  front.forwardTo({ host: '127.0.0.1', port: api.port });
  api.watchSilent = true;
  const second = await new Promise<unknown>((resolve) => void w.watch('/api/v1/pods', {}, () => {}, resolve));
  t.equal(api.watches, 1, 'the watch was answered');
  t.match((second as Error).message, /no event or bookmark within 0\.3 s$/);

  api.watchSilent = false;
  const events: string[] = [];
  let ended: unknown = 'not yet';
  const ac = await w.watch(
    '/api/v1/pods',
    {},
    (type, obj) => events.push(`${type} ${(obj as KubeObject).metadata?.name}`),
    (e) => {
      ended = e;
    },
  );
  await until('the watch is open', () => api.openWatches === 1, 10_000);
  api.emit('/api/v1/pods', 'ADDED', { metadata: { name: 'p1', namespace: 'ns' } });
  await until('the event arrived', () => events.length === 1, 10_000);
  t.same(events, ['ADDED p1']);
  ac.abort();
  await until('the server saw the watch closed', () => api.openWatches === 0, 10_000);
  t.equal(ended, 'not yet', 'aborting a watch does not report it as ended (ListWatch would restart it)');
});

t.test('aborting a watch that has no answer yet closes its connection', async (t) => {
  const front = new SwitchableFront();
  const port = await front.listen();
  t.teardown(() => front.close());
  const w = new DeadlineWatch(loopbackKubeConfig(port), { connectMs: 60_000, idleMs: 60_000 });
  let ended = false;
  const ac = await w.watch(
    '/api/v1/pods',
    {},
    () => {},
    () => {
      ended = true;
    },
  );
  await until('the endpoint accepted the watch', () => front.accepted === 1, 10_000);
  ac.abort();
  await until('the connection was closed by the client', () => front.silentClosed === 1, 10_000);
  t.notOk(ended);
});

t.test('caches against a silent endpoint retry with a log line each, then sync once an API server answers', async (t) => {
  const front = new SwitchableFront();
  const port = await front.listen();
  const api = new FakeApi();
  await api.listen();
  api.objects.set('/api/v1/namespaces', [{ metadata: { name: 'default', resourceVersion: '1' } }]);
  t.teardown(async () => {
    await front.close();
    await api.close();
  });
  const errors: string[] = [];
  const caches = cachesFromApi(loopbackKubeConfig(port), {
    apiTimeoutMs: 300,
    watchDeadlines: { connectMs: 300, idleMs: 1000 },
    backoff: { initialMs: 50, maxMs: 200 },
    observer: { onError: (resource, err) => errors.push(`${resource}: ${(err as Error).message}`) },
  });
  caches.start();
  t.teardown(() => caches.stop());
  await until('every resource failed at least twice', () => CACHED_RESOURCES.every((r) => (caches.stats()[r]?.errors ?? 0) >= 2), 20_000);
  t.ok(
    errors.some((e) => /^namespaces: GET \/api\/v1\/namespaces.*no complete answer from the API server within 0\.3 s$/.test(e)),
    'the retry names the request and the deadline',
  );
  t.notOk(caches.isSynced());
  t.same(caches.stalled(5_000), [], 'retrying loops are alive');

  front.forwardTo({ host: '127.0.0.1', port: api.port });
  await caches.synced;
  t.equal(caches.namespaces.get('default')?.metadata?.name, 'default');
  // The watch is the DeadlineWatch: an event after sync reaches the store.
  await until('every watch is open', () => api.openWatches === CACHED_RESOURCES.length, 20_000);
  api.emit('/api/v1/namespaces', 'ADDED', { metadata: { name: 'late' } });
  await until('the watched namespace is cached', () => caches.namespaces.get('late'), 10_000);

  // Now idle watches: no event for idleMs ends them, each with a logged retry, and they reopen.
  const before = errors.length;
  await until('an idle watch was restarted', () => errors.slice(before).some((e) => /no event or bookmark within 1 s$/.test(e)), 20_000);
  await until('watches reopened', () => api.openWatches === CACHED_RESOURCES.length, 20_000);
  // With a 1 s idle bound the watches keep restarting, so one emit can fall between a close and
  // the reopen (the fake API sends only to open watches): emit until it arrives (ADDED again
  // is idempotent).
  await until(
    'an event after the restart is cached',
    () => {
      api.emit('/api/v1/namespaces', 'ADDED', { metadata: { name: 'later' } });
      return caches.namespaces.get('later');
    },
    10_000,
  );
});

t.test('/healthz turns 503 when a list+watch loop stalls (no progress past the bound), 200 otherwise', async (t) => {
  let now = 1_000_000;
  // A watch without any deadline that never answers: the dead loop the deadlines prevent.
  const hung = { watch: async () => new AbortController() };
  const store = new ObjectStore<KubeObject>('routes');
  const informer = new Informer<KubeObject>({
    store,
    path: '/apis/x',
    list: async () => ({ items: [], metadata: { resourceVersion: '1' } }),
    watch: hung,
    now: () => now,
  });
  const stores = Object.fromEntries(
    CACHED_RESOURCES.map((r) => [r, r === 'routes' ? store : new ObjectStore<KubeObject>(r)]),
  ) as ConstructorParameters<typeof ClusterCaches>[0];
  const caches = new ClusterCaches(stores, { routes: informer });
  caches.start();
  t.teardown(() => caches.stop());
  await store.synced;
  const app = buildApp({
    admit: { caches, mode: 'opt-in', keys: [testKey()], trustedUsers: [] },
    readiness: () => ({ ready: true, detail: '' }),
    liveness: liveness(caches, () => undefined, 60_000),
    registry: new Registry(),
  });
  t.teardown(() => app.close());
  t.equal((await app.inject('/healthz')).statusCode, 200, 'alive right after the watch started');
  now += 60_001;
  const res = await app.inject('/healthz');
  t.equal(res.statusCode, 503);
  t.match(res.body, /^not alive: list\/watch loop stalled: routes \(no progress for 60 s; last: watch started\)/);
});

t.test('leader election against a silent endpoint: Lease calls time out, are reported and retried; stop is prompt', async (t) => {
  const { CoordinationV1Api } = await import('@kubernetes/client-node');
  const { LeaderElector } = await import('../../webhook/controller/leader.js');
  const front = new SwitchableFront();
  const port = await front.listen();
  t.teardown(() => front.close());
  const errors: string[] = [];
  let led = false;
  const elector = new LeaderElector({
    api: apiClient(loopbackKubeConfig(port), CoordinationV1Api, 300),
    namespace: 'ns',
    name: 'lease',
    identity: 'me',
    leaseDurationMs: 3000,
    renewDeadlineMs: 2000,
    retryPeriodMs: 100,
    onStartedLeading: () => {
      led = true;
    },
    onStoppedLeading: () => {},
    onError: (e) => errors.push((e as Error).message),
  });
  const ac = new AbortController();
  const running = elector.run(ac.signal);
  await until('two Lease reads timed out and were reported', () => errors.length >= 2, 20_000);
  t.match(
    errors[0],
    /^GET \/apis\/coordination\.k8s\.io\/v1\/namespaces\/ns\/leases\/lease: no complete answer from the API server within 0\.3 s$/,
  );
  t.notOk(led, 'never leads without the API');
  ac.abort();
  await running;
  t.pass('run() ended after the abort');
});
