// Issue #16: a quiet watch must not be ended by the idle watchdog while the API server is
// healthy. The shared watch (platform/kube-client.ts DeadlineWatch) asks for bookmarks,
// and every bookmark re-arms the watchdog.
//
// kube-apiserver's watch cache sends a bookmark to a quiet watcher about every 60 s: that
// frequency is fixed in its code (no flag), so the watchdog period here can be no shorter
// than ~60 s plus slack; this file takes ~80 s. And it sends one only when the cache's
// resourceVersion has moved past the watch's: a watch of a resource type that nothing in
// the whole cluster writes gets no bookmark (seen on v1.36: none in 75 s for configmaps on
// a fresh server). In a live cluster other writers of the type move it; here a configmap
// in another namespace is updated every 2 s while the watched namespace stays quiet.
//
// Two watches of the same quiet collection start together with the same watchdog (75 s):
// without bookmarks one is ended by the watchdog (evidence the period has passed); the
// one with bookmarks is still open then, having received at least one.
import t from 'tap';
import { ApiTimeoutError, DeadlineWatch } from '../../platform/kube-client.js';
import { kubeRequest } from '../cluster/k8s.js';
import { withControlPlane } from '../cluster/tap.js';
import { until } from '../agent/rig.js';

const IDLE_MS = 75_000;

const cp = await withControlPlane(t);
if (cp) {
  await t.test('a quiet watch with bookmarks outlives the idle watchdog; one without is ended by it', async (t) => {
    t.equal((await kubeRequest(cp.kc, 'POST', '/api/v1/namespaces', { body: { metadata: { name: 'quiet' } } })).status, 201);
    t.equal(
      (await kubeRequest(cp.kc, 'POST', '/api/v1/namespaces/quiet/configmaps', { body: { metadata: { name: 'one' }, data: { a: '1' } } }))
        .status,
      201,
    );
    const list = await kubeRequest(cp.kc, 'GET', '/api/v1/namespaces/quiet/configmaps');
    const rv = (list.body as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
    t.equal((await kubeRequest(cp.kc, 'POST', '/api/v1/namespaces', { body: { metadata: { name: 'busy' } } })).status, 201);
    t.equal(
      (
        await kubeRequest(cp.kc, 'POST', '/api/v1/namespaces/busy/configmaps', {
          body: { metadata: { name: 'tick' }, data: { n: 'start' } },
        })
      ).status,
      201,
    );
    let ticks = 0;
    let ticking = true;
    const ticker = (async () => {
      while (ticking) {
        await kubeRequest(cp.kc, 'PUT', '/api/v1/namespaces/busy/configmaps/tick', {
          body: { metadata: { name: 'tick' }, data: { n: String(ticks++) } },
        }).catch(() => {});
        await new Promise((r) => setTimeout(r, 2000));
      }
    })();
    t.teardown(async () => {
      ticking = false;
      await ticker;
    });
    const watch = new DeadlineWatch(cp.kc, { connectMs: 10_000, idleMs: IDLE_MS });
    const seen = { with: [] as string[], without: [] as string[] };
    const ended: { with?: unknown; without?: unknown } = {};
    const path = '/api/v1/namespaces/quiet/configmaps';
    const acs = [
      await watch.watch(
        path,
        { resourceVersion: rv, timeoutSeconds: 900 },
        (phase) => {
          seen.with.push(phase);
        },
        (err) => {
          ended.with = err ?? 'closed';
        },
      ),
      await watch.watch(
        path,
        { resourceVersion: rv, timeoutSeconds: 900, allowWatchBookmarks: false },
        (phase) => {
          seen.without.push(phase);
        },
        (err) => {
          ended.without = err ?? 'closed';
        },
      ),
    ];
    t.teardown(() => {
      for (const ac of acs) ac.abort();
    });
    const err = await until('the watch without bookmarks is ended by the watchdog', () => ended.without, IDLE_MS + 60_000);
    t.ok(err instanceof ApiTimeoutError, 'a watchdog deadline error');
    t.match((err as Error).message, /watch \/api\/v1\/namespaces\/quiet\/configmaps.*: no event or bookmark within 75 s/);
    t.same(seen.without, [], 'it got nothing: the collection was quiet');
    t.equal(ended.with, undefined, 'the watch with bookmarks is still open past the watchdog period');
    t.ok(seen.with.length >= 1 && seen.with.every((p) => p === 'BOOKMARK'), `it got bookmarks only (${seen.with.join(', ')})`);
    t.ok(ticks > 10, `the other namespace was written meanwhile (${ticks} updates)`);
  });
}
