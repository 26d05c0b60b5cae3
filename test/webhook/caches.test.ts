// The shared caches: ObjectStore semantics (events with old and new objects, relist,
// sorted memoised lists, a throwing subscriber), ClusterCaches built from plain objects,
// and the Informer driving client-node's real ListWatch through a scripted watch: initial
// sync, watch events, 410 Gone relist, restart with backoff after errors, transforms, stop.
// The same code against a real kube-apiserver is the e2e tier's job.
import t from 'tap';
import { KubeConfig } from '@kubernetes/client-node';
import type { KubeObject, Service } from '../../core/types.js';
import { cachesFromApi, cachesFromObjects, ownerMetadataOnly } from '../../webhook/caches/caches.js';
import { Informer, type ListResult, type WatchLike } from '../../webhook/caches/informer.js';
import { ObjectStore, type ChangeEvent } from '../../webhook/caches/store.js';
import { clusterObjects } from './helpers.js';

const svc = (name: string, ip: string, rv: string, namespace = 'default'): Service => ({
  metadata: { name, namespace, resourceVersion: rv },
  spec: { clusterIP: ip },
});

t.test('ObjectStore: events carry old and new, equal resourceVersions are no change', async (t) => {
  const s = new ObjectStore<Service>('services');
  const seen: ChangeEvent<Service>[] = [];
  s.onChange((e) => seen.push(e));
  s.upsert(svc('a', '10.0.0.1', '1'));
  s.upsert(svc('a', '10.0.0.1', '1'));
  s.upsert(svc('a', '10.0.0.2', '2'));
  s.remove(svc('a', '', '3'));
  s.remove(svc('a', '', '3'));
  t.same(
    seen.map((e) => [e.type, e.old?.spec?.clusterIP, e.object.spec?.clusterIP, e.resource]),
    [
      ['add', undefined, '10.0.0.1', 'services'],
      ['update', '10.0.0.1', '10.0.0.2', 'services'],
      ['delete', '10.0.0.2', '', 'services'],
    ],
  );
  t.equal(s.size, 0);
  t.notOk(s.isSynced(), 'not synced until a full list');
  s.replace([svc('b', '10.0.0.3', '5'), svc('a', '10.0.0.4', '6', 'kube-system')]);
  t.ok(s.isSynced(), 'replace() marks it synced');
  await s.synced;
  s.replace([svc('b', '10.0.0.3', '5')]);
  t.same(
    seen.slice(3).map((e) => `${e.type} ${e.object.metadata?.namespace}/${e.object.metadata?.name}`),
    ['add default/b', 'add kube-system/a', 'delete kube-system/a'],
    'relist: adds, then deletes what vanished, no event for the unchanged',
  );
});

t.test('ObjectStore: lists are sorted and reused until a change', async (t) => {
  const s = new ObjectStore<Service>('services');
  s.replace([svc('z', '1', '1', 'b'), svc('a', '2', '2', 'b'), svc('m', '3', '3', 'a')]);
  const l1 = s.list();
  t.same(
    l1.map((o) => `${o.metadata?.namespace}/${o.metadata?.name}`),
    ['a/m', 'b/a', 'b/z'],
    'by namespace, then name',
  );
  t.equal(s.list(), l1, 'the same array while nothing changes');
  t.same(
    s.list('b').map((o) => o.metadata?.name),
    ['a', 'z'],
    'one namespace',
  );
  s.upsert(svc('c', '4', '4', 'a'));
  t.not(s.list(), l1, 'a new array after a change');
  t.equal(s.get('c', 'a')?.spec?.clusterIP, '4');
  t.equal(s.get('c'), undefined, 'a namespaced object is not found without its namespace');
});

t.test('ObjectStore: a throwing subscriber is reported and does not stop the others', async (t) => {
  const reported: unknown[] = [];
  const s = new ObjectStore<Service>('services', (err) => reported.push(err));
  const got: string[] = [];
  s.onChange(() => {
    throw new Error('subscriber bug');
  });
  const off = s.onChange((e) => got.push(e.object.metadata!.name!));
  s.upsert(svc('a', '1', '1'));
  off();
  s.upsert(svc('b', '1', '1'));
  t.same(got, ['a'], 'the second subscriber ran, and stopped after unsubscribing');
  t.equal(reported.length, 2, 'each throw reported');
  t.equal(s.size, 2, 'the store kept both objects');
});

t.test('ClusterCaches from plain objects: lookups and change hooks', async (t) => {
  const c = cachesFromObjects(clusterObjects());
  t.ok(c.isSynced(), 'synced at once');
  await c.synced;
  t.same(c.sizes(), { routes: 2, namespaces: 5, services: 2, replicasets: 1, jobs: 1 });
  t.equal(c.service('default', 'nginx')?.spec?.clusterIP, '10.86.205.109');
  t.equal(c.service('kube-system', 'nginx'), undefined);
  t.equal(c.lookupOwner('ReplicaSet', 'default', 'web-7d4f9')?.metadata?.ownerReferences?.[0]?.name, 'web');
  t.equal(c.lookupOwner('Job', 'batch', 'nightly-report-2890')?.metadata?.ownerReferences?.[0]?.kind, 'CronJob');
  t.equal(c.lookupOwner('Deployment', 'default', 'web'), undefined, 'kinds without a cache end the chain');
  const events: string[] = [];
  c.onServiceChange((e) => events.push(`svc ${e.type} ${e.old?.spec?.clusterIP} -> ${e.object.spec?.clusterIP}`));
  c.onNamespaceChange((e) =>
    events.push(`ns ${e.type} ${JSON.stringify(e.old?.metadata?.labels)} -> ${JSON.stringify(e.object.metadata?.labels)}`),
  );
  const offRoutes = c.onRouteChange((e) => events.push(`route ${e.type} ${e.object.metadata?.name}`));
  c.store('services').upsert(svc('nginx', '10.86.0.99', '99'));
  c.store('namespaces').upsert({ metadata: { name: 'batch', labels: { x: 'y' } } });
  c.store('routes').remove({ metadata: { name: 'target' } });
  offRoutes();
  c.store('routes').upsert({ metadata: { name: 'again' } });
  t.same(events, [
    'svc update 10.86.205.109 -> 10.86.0.99',
    'ns update {"kubernetes.io/metadata.name":"batch"} -> {"x":"y"}',
    'route delete target',
  ]);
});

/** A WatchLike the test drives: each watch() call is queued for the test to act on. */
class ScriptedWatch implements WatchLike {
  private calls: Call[] = [];
  private waiting: ((c: Call) => void)[] = [];
  async watch(
    path: string,
    params: Record<string, unknown>,
    callback: Call['callback'],
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const controller = new AbortController();
    let ended = false;
    const call: Call = {
      path,
      params,
      callback,
      done: (err) => {
        if (!ended) {
          ended = true;
          done(err);
        }
      },
    };
    // Like client-node's Watch: aborting the request ends the watch with an error.
    controller.signal.addEventListener('abort', () => call.done(new Error('The user aborted a request.')));
    const w = this.waiting.shift();
    if (w) w(call);
    else this.calls.push(call);
    return controller;
  }
  next(): Promise<Call> {
    const c = this.calls.shift();
    return c ? Promise.resolve(c) : new Promise((resolve) => this.waiting.push(resolve));
  }
}
interface Call {
  path: string;
  params: Record<string, unknown>;
  callback: (phase: string, obj: unknown) => void;
  done: (err: unknown) => void;
}

/** An API server's list endpoint, as far as the informer sees it. */
function server(items: KubeObject[], rv: number) {
  const state = { items, rv, failNext: 0, lists: 0 };
  const list = async (): Promise<ListResult> => {
    state.lists++;
    if (state.failNext > 0) {
      state.failNext--;
      throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' });
    }
    return { items: structuredClone(state.items), metadata: { resourceVersion: String(state.rv) } };
  };
  return { state, list };
}

function informerFor(items: KubeObject[], rv: number, transform?: (o: KubeObject) => KubeObject) {
  const store = new ObjectStore<KubeObject>('services');
  const watch = new ScriptedWatch();
  const api = server(items, rv);
  const errors: { err: unknown; retryInMs: number }[] = [];
  const inf = new Informer<KubeObject>({
    store,
    path: '/api/v1/services',
    list: api.list,
    watch,
    backoff: { initialMs: 5, maxMs: 40 },
    random: () => 0.5,
    observer: { onError: (_r, err, retryInMs) => errors.push({ err, retryInMs }) },
    ...(transform ? { transform } : {}),
  });
  const events: string[] = [];
  store.onChange((e) => events.push(`${e.type} ${e.object.metadata?.name}${e.old ? ` (was rv ${e.old.metadata?.resourceVersion})` : ''}`));
  return { store, watch, api, errors, inf, events };
}

t.test("Informer: initial sync, then watch events from the list's resourceVersion", async (t) => {
  const { store, watch, inf, events } = informerFor([svc('a', '10.0.0.1', '3'), svc('b', '10.0.0.2', '4')], 10);
  t.teardown(() => inf.stop());
  inf.start();
  const call = await watch.next();
  await store.synced;
  t.equal(store.size, 2, 'listed objects stored before synced');
  t.equal(call.path, '/api/v1/services');
  t.equal(call.params.resourceVersion, '10', "watch starts at the list's resourceVersion");
  t.equal(call.params.allowWatchBookmarks, true, 'bookmarks requested');
  t.equal(call.params.timeoutSeconds, 450, 'bounded, randomised server-side timeout (300 s x 1.5 here)');
  call.callback('ADDED', svc('c', '10.0.0.3', '11'));
  call.callback('MODIFIED', svc('a', '10.0.0.9', '12'));
  call.callback('MODIFIED', svc('a', '10.0.0.9', '12'));
  call.callback('BOOKMARK', { metadata: { resourceVersion: '13' } });
  call.callback('DELETED', svc('b', '10.0.0.2', '14'));
  t.same(events, ['add a', 'add b', 'add c', 'update a (was rv 3)', 'delete b (was rv 4)']);
  t.equal((store.get('a', 'default') as Service | undefined)?.spec?.clusterIP, '10.0.0.9');
});

t.test('Informer: 410 Gone relists, deleting what vanished meanwhile', async (t) => {
  const { store, watch, api, inf, events } = informerFor([svc('a', '1', '3'), svc('b', '2', '4')], 10);
  t.teardown(() => inf.stop());
  inf.start();
  const first = await watch.next();
  api.state.items = [svc('b', '2', '4'), svc('d', '4', '30')];
  api.state.rv = 31;
  first.callback('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version: 10 (25)' });
  first.done(null);
  const second = await watch.next();
  t.equal(api.state.lists, 2, 'listed again');
  t.equal(second.params.resourceVersion, '31', 'and watches from the new list');
  t.same(events.slice(2), ['delete a (was rv 3)', 'add d'], 'the vanished object is deleted, the new one added');
  t.same(
    store.list().map((o) => o.metadata?.name),
    ['b', 'd'],
  );
});

t.test('Informer: errors restart it with growing backoff; stop() ends it for good', async (t) => {
  const { store, watch, api, errors, inf } = informerFor([svc('a', '1', '3')], 10);
  api.state.failNext = 2;
  inf.start();
  const call = await watch.next();
  await store.synced;
  t.equal(api.state.lists, 3, 'a failing list is retried until it succeeds');
  t.same(
    errors.map((e) => e.retryInMs),
    [5, 10],
    'backoff doubles',
  );
  t.match(String(errors[0]?.err), /ECONNREFUSED/);
  call.done(Object.assign(new Error('Internal Server Error'), { statusCode: 500 }));
  const resumed = await watch.next();
  t.equal(errors.at(-1)?.retryInMs, 5, 'reset by the successful list');
  t.equal(resumed.params.resourceVersion, '10', 'a broken watch resumes from its resourceVersion');
  t.equal(api.state.lists, 3, 'without relisting');
  t.same(inf.stats(), { lists: 1, errors: 3, lastError: 'Internal Server Error' }, 'one successful list, three failures');
  resumed.callback('ADDED', svc('b', '2', '11'));
  const before = errors.length;
  await inf.stop();
  t.equal(errors.length, before, 'the abort caused by stop() is not treated as an error to retry');
  t.equal(store.size, 2, 'the store keeps its content');
});

t.test('Informer: the transform applies to listed and watched objects', async (t) => {
  const rs = (name: string, rv: string) =>
    ({
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name,
        namespace: 'default',
        resourceVersion: rv,
        managedFields: [{ manager: 'kube-controller-manager' }],
        ownerReferences: [{ kind: 'Deployment', name: 'web', controller: true }],
      },
      spec: { template: { spec: { containers: [{ name: 'web', image: 'nginx' }] } } },
    }) as KubeObject;
  const { store, watch, inf } = informerFor([rs('web-1', '3')], 10, ownerMetadataOnly('ReplicaSet', 'apps/v1'));
  t.teardown(() => inf.stop());
  inf.start();
  const call = await watch.next();
  call.callback('ADDED', rs('web-2', '11'));
  for (const name of ['web-1', 'web-2']) {
    const o = store.get(name, 'default') as KubeObject & { spec?: unknown; metadata: { managedFields?: unknown } };
    t.notOk(o.spec, `${name}: pod template dropped`);
    t.notOk(o.metadata.managedFields, `${name}: managedFields dropped`);
    t.same(o.metadata.ownerReferences, [{ kind: 'Deployment', name: 'web', controller: true }], `${name}: owner kept`);
    t.equal(o.kind, 'ReplicaSet');
  }
});

t.test('cachesFromApi against an address where nothing listens: not synced, retrying, stoppable', async (t) => {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'none', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
    users: [{ name: 'u', token: 'x' }],
    contexts: [{ name: 'c', cluster: 'none', user: 'u' }],
    currentContext: 'c',
  });
  const failed = new Set<string>();
  let resolveAll!: () => void;
  const allFailed = new Promise<void>((r) => {
    resolveAll = r;
  });
  const c = cachesFromApi(kc, {
    backoff: { initialMs: 10, maxMs: 20 },
    observer: {
      onError: (resource, _e, wait) => {
        t.ok(wait >= 8, `${resource}: retry scheduled`);
        failed.add(resource);
        if (failed.size === 5) resolveAll();
      },
    },
  });
  c.start();
  await allFailed;
  t.notOk(c.isSynced(), 'not synced');
  t.same(c.syncedByResource(), { routes: false, namespaces: false, services: false, replicasets: false, jobs: false });
  t.ok(
    Object.values(c.stats()).every((s) => s && s.errors >= 1 && s.lists === 0),
    'every informer counted its failure',
  );
  await c.stop();
});
