// `via: gateway` on the real kernel (issue 14), in network namespaces the test made: one plan,
// two "nodes" whose eth1 subnets have different gateways, each pod gets its own node's
// gateway; a pod whose eth1 has no gateway is reported (no-gateway), not given a guess; a
// gateway the CNI changes is followed; a gateway of a device whose default route ours replaced
// comes from the saved original at every later apply; and traffic really leaves through that gateway.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import t from 'tap';
import type { Plan } from '../../core/types.js';
import { applyPlan, RTPROT_OVNKUBE_ROUTE, type SavedDefault } from '../../injector/routes/engine.js';
import { addVeth, makeNetns, makePod, type TestNetns } from '../util/netns.js';
import { rootUnavailable, tierGate } from '../util/tier.js';

const P = RTPROT_OVNKUBE_ROUTE;
const PLAN: Plan = { v: 1, routes: [{ dst: '172.16.30.0/24', dev: 'eth1', via: 'gateway', mtu: 1400 }] };
const shown = (ns: TestNetns, dst: string): string => ns.ip('route', 'show', 'table', 'main', 'exact', dst).trim().replace(/\s+/g, ' ');

t.test("one plan, each pod its own node's gateway; none known is reported", async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  // Node A: eth1 on 10.124.2.0/24, the CNI's route 10.124.0.0/16 via 10.124.2.1.
  const a = makePod(t);
  a.pod.ip('route', 'add', '10.124.0.0/16', 'via', '10.124.2.1', 'dev', 'eth1');
  // Node B: eth1 on 10.124.3.0/24 with gateway 10.124.3.1.
  const b = makePod(t, { eth1: false });
  addVeth(b.pod, 'eth1', b.node, ['10.124.3.5/24']);
  b.pod.ip('route', 'add', '10.124.0.0/16', 'via', '10.124.3.1', 'dev', 'eth1');
  // Node C: eth1 without any gateway route.
  const c = makePod(t);

  const ra = await applyPlan(a.pod.path, PLAN);
  const rb = await applyPlan(b.pod.path, PLAN);
  t.same([ra.skipped, rb.skipped], [[], []], 'nothing skipped where a gateway is known');
  t.equal(shown(a.pod, '172.16.30.0/24'), `172.16.30.0/24 via 10.124.2.1 dev eth1 proto ${P} mtu 1400`, 'node A: its gateway');
  t.equal(shown(b.pod, '172.16.30.0/24'), `172.16.30.0/24 via 10.124.3.1 dev eth1 proto ${P} mtu 1400`, 'node B: its gateway');
  t.notOk((await applyPlan(a.pod.path, PLAN)).changed, 'idempotent');

  const rc = await applyPlan(c.pod.path, PLAN);
  t.same(
    rc.skipped.map((s) => `${s.dst} ${s.dev} via ${s.via}: ${s.reason}`),
    ['172.16.30.0/24 eth1 via gateway: no-gateway'],
    'node C: reported',
  );
  t.match(rc.skipped[0]?.detail, /no IPv4 route through a gateway on eth1/);
  t.equal(shown(c.pod, '172.16.30.0/24'), '', 'and nothing guessed');

  // The CNI's gateway changes on node A (e.g. the node's subnet moved): the route follows.
  a.pod.ip('route', 'replace', '10.124.0.0/16', 'via', '10.124.2.254', 'dev', 'eth1');
  const moved = await applyPlan(a.pod.path, PLAN, { reclaim: ra.owned });
  t.same(
    moved.replaced.map((r) => `${r.dst} ${r.from.via} -> ${r.via}`),
    ['172.16.30.0/24 10.124.2.1 -> 10.124.2.254'],
  );
  t.equal(shown(a.pod, '172.16.30.0/24'), `172.16.30.0/24 via 10.124.2.254 dev eth1 proto ${P} mtu 1400`);
});

t.test('the default moved to eth1, eth0 pinned via gateway: still so at every later apply', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  // What the DefaultRouteMovesServices warning advises: the default to eth1, the Service CIDR
  // (and eth0's return path) through eth0's gateway. Once ours replaced the CNI's default
  // route, the table shows no gateway of eth0 any more: it comes from the saved original. (It
  // did not: the second apply, any resync or restart, removed the Service route as no-gateway.)
  const { pod } = makePod(t);
  const plan: Plan = {
    v: 1,
    routes: [{ dst: '10.96.0.0/12', dev: 'eth0', via: 'gateway' }],
    default: { dev: 'eth1', via: '10.124.2.1' },
    symmetric: ['eth0'],
  };
  const saved: SavedDefault[] = [];
  const opts = {
    get savedDefault() {
      return [...saved];
    },
    saveDefault: (s: SavedDefault) => {
      saved.push(s);
    },
  };
  const first = await applyPlan(pod.path, plan, opts);
  t.same(first.skipped, [], 'the first apply writes everything');
  t.equal(saved[0]?.route?.via, '169.254.1.1', "the CNI's default route was saved");
  // (IPv4 only: the kernel adds IPv6 link-local routes on its own whenever it gets to them.)
  const routes = (): string => pod.ip('-4', 'route', 'show', 'table', 'all');
  const wanted = routes();
  t.match(wanted, /10\.96\.0\.0\/12 via 169\.254\.1\.1 dev eth0 proto 111/);
  t.match(wanted, /default via 10\.124\.2\.1 dev eth1 proto 111/);
  for (let i = 2; i <= 3; i++) {
    const again = await applyPlan(pod.path, plan, { ...opts, reclaim: first.owned });
    t.same(
      [again.skipped, again.removed, again.added, again.replaced],
      [[], [], [], []],
      `apply ${i}: nothing skipped, removed or rewritten`,
    );
    t.equal(routes(), wanted, `apply ${i}: the tables as the first left them`);
  }
});

t.test('traffic to the destination really goes through the resolved gateway (test netns only)', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  // pod --eth1--> gw netns (10.124.2.1, forwarding) --> sink netns (172.16.30.9).
  const gw = makeNetns(t, 'gw');
  const sink = makeNetns(t, 'sink');
  const pod = makeNetns(t, 'pod');
  addVeth(pod, 'eth1', gw, ['10.124.2.5/24']);
  const gwSide = gw.json<{ ifname: string }[]>('link', 'show', 'type', 'veth')[0]!.ifname;
  gw.ip('addr', 'add', '10.124.2.1/24', 'dev', gwSide);
  addVeth(sink, 'eth0', gw, ['172.16.30.9/24']);
  const sinkSide = gw
    .json<{ ifname: string }[]>('link', 'show', 'type', 'veth')
    .map((l) => l.ifname)
    .find((n) => n !== gwSide)!;
  gw.ip('addr', 'add', '172.16.30.1/24', 'dev', sinkSide);
  sink.ip('route', 'add', 'default', 'via', '172.16.30.1');
  execFileSync('ip', ['netns', 'exec', gw.name, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/conf/all/forwarding']);
  pod.ip('route', 'add', '10.124.0.0/16', 'via', '10.124.2.1', 'dev', 'eth1'); // the CNI's
  const res = await applyPlan(pod.path, { v: 1, routes: [{ dst: '172.16.30.0/24', dev: 'eth1', via: 'gateway' }] });
  t.same(res.skipped, []);
  // A UDP datagram from the pod reaches the sink, forwarded by the gateway netns.
  const recv = spawn(
    'ip',
    [
      'netns',
      'exec',
      sink.name,
      process.execPath,
      '-e',
      `
    const s = require('dgram').createSocket('udp4');
    s.on('message', (m, r) => { console.log(r.address + ' ' + m); process.exit(0); });
    s.bind(5555, '172.16.30.9', () => console.log('ready'));`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.teardown(() => {
    if (recv.exitCode === null) recv.kill();
  });
  let out = '';
  recv.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  while (!out.includes('ready')) await once(recv.stdout!, 'data');
  execFileSync('ip', [
    'netns',
    'exec',
    pod.name,
    process.execPath,
    '-e',
    `
    const s = require('dgram').createSocket('udp4');
    s.send('hello', 5555, '172.16.30.9', () => s.close());`,
  ]);
  await once(recv, 'exit');
  t.match(out, /10\.124\.2\.5 hello/, 'the sink got it from the pod, through the gateway netns');
  const fwd = gw.ip('-s', 'link', 'show', sinkSide);
  t.match(fwd, /TX:.*\n\s*\d+\s+[1-9]/, 'the gateway forwarded packets towards the sink', { fwd });
});
