// The agent and `via: gateway` (issue 14) on the real kernel: a pod whose eth1 has no gateway
// gets a clear report (status annotation reason no-gateway, a Warning Event, the skipped-routes
// metric, the readiness condition), and once the CNI's gateway route appears the keeper
// notices it (a route through a gateway is relevant to such a plan) and writes the route.
import t from 'tap';
import { decodeInjectorStatus } from '../../core/injector-status.js';
import { STATUS_ANNOTATION, type Plan, type Pod } from '../../core/types.js';
import { routeLines } from '../util/netns.js';
import { rootUnavailable, tierGate } from '../util/tier.js';
import { ownedLines, startRig, until, type Rig } from './rig.js';

const statusOf = (rig: Rig, pod: Pod) =>
  decodeInjectorStatus(rig.api.pods.get(pod.metadata!.uid!)?.metadata?.annotations?.[STATUS_ANNOTATION]);
const PLAN: Plan = {
  v: 1,
  routes: [
    { dst: '172.16.30.0/24', dev: 'eth1', via: 'gateway' },
    { dst: '192.168.2.0/24', dev: 'eth0' },
  ],
};

t.test('no gateway known: reported; a gateway appearing is followed', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const rig = await startRig(t);
  const { ns, pod } = rig.sandbox({ name: 'nogw', plan: PLAN });
  const uid = pod.metadata!.uid!;
  await until('the skip is announced', () => rig.api.eventsOf(uid).some((e) => /no-gateway/.test(e.message)));
  const ev = rig.api.events.find((e) => e.pod.uid === uid && /no-gateway/.test(e.message))!;
  t.match(ev, { type: 'Warning' }, 'a Warning Event');
  t.match(ev.message, /172\.16\.30\.0\/24.*no-gateway/, 'naming the route and the reason');
  t.match(
    statusOf(rig, pod),
    {
      applied: 1,
      skipped: [{ dst: '172.16.30.0/24', dev: 'eth1', reason: 'no-gateway', detail: /no IPv4 route through a gateway on eth1/ }],
    },
    'status annotation',
  );
  t.equal(await rig.metric('ovnkube_route_injector_routes_skipped_total', { reason: 'no-gateway' }), 1, 'counted by reason');
  t.same(ownedLines(routeLines(ns)), ['192.168.2.0/24 dev eth0 proto 111'], 'the other route is written; nothing guessed for eth1');

  // The CNI's route through eth1's gateway appears (as a CNI or an operator would write it).
  ns.ip('route', 'add', '10.124.0.0/16', 'via', '10.124.2.1', 'dev', 'eth1');
  await until('written through the gateway that appeared', () =>
    routeLines(ns).includes('172.16.30.0/24 via 10.124.2.1 dev eth1 proto 111'),
  );
  await until('status: both in place', () => statusOf(rig, pod)?.applied === 2 && statusOf(rig, pod)?.skipped.length === 0);
  t.pass('the route followed the gateway, and the report cleared');
});
