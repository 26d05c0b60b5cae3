// platform/listwatch.ts, the retrying list+watch both processes use (the webhook's informers
// and the agent's sources are bindings of it; their own tests cover lists, events, restarts
// and stop()). Here: what they used to do differently. A 410 Gone ERROR event is progress (a
// relist follows at once, no back-off); any other ERROR event is not (the re-watch waits for
// the back-off); stop() cuts that back-off short.
import type { KubernetesObject } from '@kubernetes/client-node';
import t from 'tap';
import type { WatchFn } from '../../platform/kube-client.js';
import { ListWatchLoop } from '../../platform/listwatch.js';
import { backoffMs } from '../../platform/backoff.js';
import { until } from '../cluster/helpers.js';

interface Call {
  params: Record<string, unknown>;
  callback: (phase: string, obj: unknown) => void;
  done: (err: unknown) => void;
}

function rig() {
  const calls: Call[] = [];
  const counts = { lists: 0, synced: 0, failed: 0 };
  const watch: WatchFn = {
    watch: async (_path, params, callback, done) => {
      const ac = new AbortController();
      let ended = false;
      const call: Call = {
        params,
        callback,
        done: (err) => {
          if (!ended) {
            ended = true;
            done(err);
          }
        },
      };
      ac.signal.addEventListener('abort', () => call.done(new Error('The user aborted a request.')));
      calls.push(call);
      return ac;
    },
  };
  const loop = new ListWatchLoop<KubernetesObject>({
    path: '/api/v1/pods',
    list: async () => {
      counts.lists++;
      return { items: [], metadata: { resourceVersion: String(10 + counts.lists) } };
    },
    watch,
    // A back-off of ten minutes: a re-watch that waits for it never comes within the test.
    backoff: { initialMs: 600_000, maxMs: 600_000 },
    random: () => 0.5,
    handler: {
      added() {},
      updated() {},
      deleted() {},
      synced: () => {
        counts.synced++;
      },
      failed: () => {
        counts.failed++;
      },
    },
  });
  return { calls, counts, loop };
}

t.test('a 410 Gone ERROR event then an immediate end: relisted and re-watched at once', async (t) => {
  const { calls, counts, loop } = rig();
  t.teardown(() => loop.stop());
  loop.start();
  await until('the first watch', () => calls.length === 1, 10_000);
  calls[0]!.callback('ERROR', { kind: 'Status', code: 410, reason: 'Expired' });
  calls[0]!.done(null);
  await until('a second watch, without the ten-minute back-off', () => calls.length === 2, 10_000);
  t.equal(counts.lists, 2, 'relisted');
  t.equal(calls[1]!.params.resourceVersion, '12', 'watching from the new list');
  t.equal(counts.failed, 0, 'not a failure');
});

t.test('another ERROR event then an immediate end: the re-watch waits; stop() cuts the wait short', async (t) => {
  const { calls, counts, loop } = rig();
  loop.start();
  await until('the first watch', () => calls.length === 1, 10_000);
  calls[0]!.callback('ERROR', { kind: 'Status', code: 500, reason: 'InternalError' });
  calls[0]!.done(null);
  // The re-watch is asked for (synced is called on entry), and waits before opening it.
  await until('the re-watch was asked for', () => counts.synced === 2, 10_000);
  t.equal(calls.length, 1, 'no second watch: it waits for the back-off');
  t.equal(counts.lists, 1, 'no relist for a non-410 error');
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const before = timers();
  await loop.stop();
  t.ok(timers() < before, 'the back-off timer is gone after stop()');
  t.equal(loop.stalled(), undefined);
});

t.test('backoffMs: doubles from initial to max, +-jitter', async (t) => {
  const p = { initialMs: 100, maxMs: 1000 };
  t.same(
    [0, 1, 2, 3, 4, 10, 1e6].map((n) => backoffMs(n, p, () => 0.5)),
    [100, 200, 400, 800, 1000, 1000, 1000],
  );
  t.equal(
    backoffMs(0, p, () => 0),
    80,
    '-20 %',
  );
  t.equal(
    backoffMs(0, p, () => 1),
    120,
    '+20 %',
  );
  t.equal(
    backoffMs(3, { ...p, jitter: 0 }, () => 0),
    800,
    'no jitter when asked',
  );
});
