// High availability of the controller against the real control plane: Lease-based leader
// election (in-process electors, then two `ovnkube-route webhook` processes where only the
// leader patches, and hand-over on SIGKILL and on SIGTERM), and the pod cache surviving an
// expired watch (410 Gone) by relisting. This file's API server runs without its watch cache
// and compacts etcd every 2 s, so a watch resumed from an old resourceVersion really gets 410.
import { CoordinationV1Api, V1MicroTime, Watch, type V1Lease } from '@kubernetes/client-node';
import type { WatchLike } from '../../webhook/caches/informer.js';
import t from 'tap';
import { LeaderElector } from '../../webhook/controller/leader.js';
import { podsFromApi } from '../../webhook/caches/pods.js';
import { kubeRequest } from '../cluster/k8s.js';
import { withControlPlane } from '../cluster/tap.js';
import {
  applyRoute,
  createNamespace,
  createPod,
  expectStatus,
  getPod,
  installAddon,
  planRoutes,
  podBody,
  startWebhook,
  until,
  type WebhookProcess,
} from './helpers.js';

const cp = await withControlPlane(t, { apiserverArgs: ['--watch-cache=false', '--etcd-compaction-interval=2s'] });
if (cp) {
  const { kc } = cp;
  const started = Date.now();
  const leases = kc.makeApiClient(CoordinationV1Api);
  const readLease = (namespace: string, name: string): Promise<V1Lease> => leases.readNamespacedLease({ namespace, name });

  /** An in-process elector on Lease default/<lease> with fast timings, recording its callbacks. */
  const elector = (identity: string, lease: string) => {
    const log: string[] = [];
    const e = new LeaderElector({
      api: leases,
      namespace: 'default',
      name: lease,
      identity,
      leaseDurationMs: 2000,
      renewDeadlineMs: 1500,
      retryPeriodMs: 250,
      onStartedLeading: (signal) => {
        log.push('started');
        signal.addEventListener('abort', () => log.push('term aborted'));
      },
      onStoppedLeading: () => {
        log.push('stopped');
      },
      onNewLeader: (id) => log.push(`leader ${id}`),
    });
    const ac = new AbortController();
    const running = e.run(ac.signal);
    return {
      e,
      log,
      stop: async () => {
        ac.abort();
        await running;
      },
    };
  };

  await t.test('election: one leader; the other waits; a release hands over at once', async (t) => {
    const a = elector('a', 'le-release');
    await until('a leads', () => a.e.isLeader());
    const b = elector('b', 'le-release');
    // b must observe a as leader through several of a's renewals without ever leading.
    const renewals = new Set<string>();
    await until('a renewed three times while b watched', async () => {
      renewals.add(String((await readLease('default', 'le-release')).spec?.renewTime));
      return renewals.size >= 4 && b.e.leader() === 'a';
    });
    t.notOk(b.e.isLeader(), 'b never led while a renewed');
    t.same(b.log, ['leader a']);
    await a.stop();
    t.same(a.log, ['leader a', 'started', 'term aborted', 'stopped'], 'a: led one term, aborted its work, stopped');
    const released = await readLease('default', 'le-release');
    t.notOk(released.spec?.holderIdentity, 'released: no holder');
    await until('b takes over', () => b.e.isLeader());
    const lease = await readLease('default', 'le-release');
    t.match(lease.spec, { holderIdentity: 'b', leaseTransitions: 1, leaseDurationSeconds: 2 });
    await b.stop();
  });

  await t.test('election: a holder that stopped renewing (no release) is replaced once the lease expires', async (t) => {
    const now = new V1MicroTime();
    await leases.createNamespacedLease({
      namespace: 'default',
      body: {
        metadata: { name: 'le-expiry' },
        spec: { holderIdentity: 'ghost', leaseDurationSeconds: 2, renewTime: now, acquireTime: now, leaseTransitions: 4 },
      },
    });
    const c = elector('c', 'le-expiry');
    await until('c leads after the ghost expired', () => c.e.isLeader());
    t.same(c.log.slice(0, 2), ['leader ghost', 'leader c'], 'c saw the ghost lead first');
    t.match((await readLease('default', 'le-expiry')).spec, { holderIdentity: 'c', leaseTransitions: 5 });

    // Someone else now holds the Lease and keeps it fresh: c cannot renew and must step down
    // within its renew deadline, then win it back once the thief stops.
    let thief = true;
    const steal = async () => {
      while (thief) {
        const l = await readLease('default', 'le-expiry');
        try {
          await leases.replaceNamespacedLease({
            namespace: 'default',
            name: 'le-expiry',
            body: { ...l, spec: { ...l.spec, holderIdentity: 'thief', renewTime: new V1MicroTime(), leaseDurationSeconds: 2 } },
          });
        } catch {
          /* lost a race with c: try again */
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    const stealing = steal();
    await until('c steps down', () => !c.e.isLeader());
    t.same(
      c.log.filter((l) => !l.startsWith('leader ')),
      ['started', 'term aborted', 'stopped'],
      'its term was aborted and stopped',
    );
    t.ok(c.log.includes('leader thief'), 'it saw the thief hold the Lease');
    thief = false;
    await stealing;
    await until('c leads again', () => c.e.isLeader());
    t.equal(c.log.filter((l) => l === 'started').length, 2);
    await c.stop();
  });

  await t.test('the pod cache relists after an expired watch (410 Gone) and stays complete', async (t) => {
    await createNamespace(kc, 'relist');
    // The real Watch, with the ERROR events' codes noted on the way through.
    const codes: number[] = [];
    const real = new Watch(kc);
    const watch: WatchLike = {
      watch: (path, query, callback, done) =>
        real.watch(
          path,
          query,
          (phase, obj, raw) => {
            if (phase === 'ERROR') codes.push((obj as { code?: number }).code ?? 0);
            callback(phase, obj, raw);
          },
          done,
        ),
    };
    const { store, informer } = podsFromApi(kc, { watchTimeoutSeconds: 1, watch });
    informer.start();
    t.teardown(() => informer.stop());
    await store.synced;
    t.equal(informer.stats().lists, 1);
    // Advance etcd's revision with writes elsewhere, so the compaction passes the pod
    // list's resourceVersion; the next resumed pod watch is then too old.
    const cms = '/api/v1/namespaces/relist/configmaps';
    expectStatus(await kubeRequest(kc, 'POST', cms, { body: { metadata: { name: 'tick' }, data: { n: '0' } } }), [201], 'configmap');
    let n = 0;
    await until(
      'a relist without any error',
      async () => {
        expectStatus(
          await kubeRequest(kc, 'PUT', `${cms}/tick`, { body: { metadata: { name: 'tick' }, data: { n: String(++n) } } }),
          [200],
          'tick',
        );
        return informer.stats().lists >= 2;
      },
      90_000,
      250,
    );
    t.ok(codes.includes(410), `the server answered a resumed watch with 410 Gone (ERROR codes: ${codes.join(', ')})`);
    t.equal(informer.stats().errors, 0, 'a 410 is a relist, not an error');
    await createPod(kc, 'relist', podBody('after-relist'));
    await until('the watch after the relist delivers new pods', () => store.get('after-relist', 'relist'));
    const server = expectStatus(await kubeRequest(kc, 'GET', '/api/v1/pods'), [200], 'list pods').body.items as {
      metadata: { namespace: string; name: string };
    }[];
    t.same(
      store.list().map((p) => `${p.metadata.namespace}/${p.metadata.name}`),
      server.map((p) => `${p.metadata.namespace}/${p.metadata.name}`).sort(),
      'cache = server',
    );
  });

  await t.test('two replicas: only the leader patches; SIGKILL and SIGTERM both hand over', async (t) => {
    // As deploy/'s ServiceAccount: its Role allows exactly this Lease.
    const { certDir, keys, kubeconfig } = await installAddon(t, cp);
    const procs: WebhookProcess[] = [];
    t.teardown(() => Promise.all(procs.map((p) => p.stop('SIGKILL'))));
    const replica = async (id: string) => {
      const p = await startWebhook({
        kubeconfig,
        certDir,
        args: ['--leader-id', id, '--lease-duration', '3s', '--renew-deadline', '2s', '--retry-period', '300ms'],
      });
      procs.push(p);
      return p;
    };
    const holder = async () => (await readLease('ovnkube-route', 'ovnkube-route-controller')).spec?.holderIdentity;
    // No webhook is registered in this test: every plan comes from the controller.
    await createNamespace(kc, 'ha');
    await applyRoute(kc, 'ha', { include: [{ namespaces: ['ha'] }], route: [{ dst: '10.50.0.0/16', dev: 'eth1' }] });
    const names = ['h1', 'h2', 'h3'];
    for (const n of names) await createPod(kc, 'ha', podBody(n));
    const allHave = (dst: string) =>
      until(`every pod has ${dst}`, async () => {
        for (const n of names) if (!planRoutes(await getPod(kc, 'ha', n), keys)?.some((r) => r.startsWith(dst))) return false;
        return true;
      });
    const patched = (p: WebhookProcess) => p.metric('ovnkube_route_controller_pods_patched_total');

    const a = await replica('replica-a');
    await until('replica-a leads', async () => (await a.metric('ovnkube_route_controller_leader')) === 1);
    const b = await replica('replica-b');
    await allHave('10.50.0.0/16');
    await until(
      'replica-b caches the pods too (warm standby)',
      async () => (await b.metric('ovnkube_route_controller_pods_cached')) >= names.length,
    );
    t.equal(await holder(), 'replica-a');
    t.equal(
      await a.metric('ovnkube_route_controller_pods_patched_total', { action: 'set', previous: 'none' }),
      3,
      'the leader backfilled the three pods',
    );

    await applyRoute(kc, 'ha', { include: [{ namespaces: ['ha'] }], route: [{ dst: '10.51.0.0/16', dev: 'eth1' }] });
    await allHave('10.51.0.0/16');
    t.equal(await patched(a), 6, 'the leader re-stamped them');
    t.equal(await patched(b), 0, 'the follower patched nothing');
    t.equal(await b.metric('ovnkube_route_controller_leader'), 0);

    t.equal(await a.stop('SIGKILL'), 'SIGKILL', 'the leader dies without releasing the Lease');
    await until(
      'replica-b takes over once the lease expires',
      async () => (await holder()) === 'replica-b' && (await b.metric('ovnkube_route_controller_leader')) === 1,
    );
    await applyRoute(kc, 'ha', { include: [{ namespaces: ['ha'] }], route: [{ dst: '10.52.0.0/16', dev: 'eth1' }] });
    await allHave('10.52.0.0/16');
    t.equal(await patched(b), 3, 'the new leader re-stamped them');

    const c = await replica('replica-c');
    t.equal(await b.stop('SIGTERM'), 0, 'the leader stops cleanly');
    await until(
      'replica-c takes over from the released Lease',
      async () => (await holder()) === 'replica-c' && (await c.metric('ovnkube_route_controller_leader')) === 1,
    );
    await applyRoute(kc, 'ha', { include: [{ namespaces: ['ha'] }], route: [{ dst: '10.53.0.0/16', dev: 'eth1' }] });
    await allHave('10.53.0.0/16');
    t.equal(await patched(c), 3);
    const lease = await readLease('ovnkube-route', 'ovnkube-route-controller');
    t.equal(lease.spec?.leaseTransitions, 2, 'a -> b -> c');
  });

  t.comment(`whole file: ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
