// Route attributes (src, metric, mtu, advmss; issue 14) on the real kernel, in network
// namespaces the test made: written exactly, read back two ways (iproute2 and our netlink
// client), in effect for traffic (the kernel's own route lookup and a DF ping bigger than the
// route's MTU), idempotent, repaired on drift, moved to a new metric without leaving the old
// route behind, and on the default route saved and restored with the original's attributes.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { Plan } from '../../core/types.js';
import { RtnlClient } from '../../injector/kernel/netlink.js';
import { applyPlan, RTPROT_OVNKUBE_ROUTE } from '../../injector/routes/engine.js';
import { SavedDefaultStore } from '../../injector/routes/saved.js';
import { makePod, type TestNetns } from '../util/netns.js';
import { rootUnavailable, tierGate } from '../util/tier.js';

const P = RTPROT_OVNKUBE_ROUTE;
const D = '172.16.10.0/24';
const G = '10.124.0.0/16';

/** `ip route show` lines for one destination (every metric), whitespace-normalised. */
const shown = (ns: TestNetns, dst: string, family: 4 | 6 = 4): string[] =>
  ns
    .ip(`-${family}`, 'route', 'show', 'table', 'main', 'exact', dst)
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => l.trim().replace(/\s+/g, ' '));

/** Run a node script in a netns of the test; its stdout lines come out of `lines`. */
function inNetns(t: Tap, ns: TestNetns, script: string): { child: ChildProcess; line: () => Promise<string> } {
  const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill();
  });
  const rl = createInterface({ input: child.stdout! });
  const queue: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  rl.on('line', (l) => {
    const w = waiters.shift();
    if (w) w(l);
    else queue.push(l);
  });
  const line = (): Promise<string> => {
    const q = queue.shift();
    if (q !== undefined) return Promise.resolve(q);
    return Promise.race([
      new Promise<string>((r) => waiters.push(r)),
      once(child, 'exit').then(([code]) => {
        throw new Error(`script in ${ns.name} exited (${code}) before answering`);
      }),
    ]);
  };
  return { child, line };
}

type Tap = Test;

/**
 * 172.16.10.9 lives on the node netns's lo (it answers ARP for it on the veth), which routes
 * 10.124.2.5 back over the peer of the pod's eth1. A TCP connection from the pod is then
 * checked on both ends with ss: the client's path MTU is the route's, the server saw the
 * pod's src address and took the advertised MSS (advmss, deliberately not mtu - 40) as its
 * own send MSS.
 */
async function tcpEvidence(t: Tap, pod: TestNetns, node: TestNetns): Promise<void> {
  const eth1 = pod.json<{ link_index?: number }[]>('link', 'show', 'eth1')[0];
  const peer = node.json<{ ifindex: number; ifname: string }[]>('link', 'show').find((l) => l.ifindex === eth1?.link_index);
  if (!peer) throw new Error("the peer of the pod's eth1 is not in the node netns");
  node.ip('addr', 'add', '172.16.10.9/32', 'dev', 'lo');
  node.ip('route', 'add', '10.124.2.5/32', 'dev', peer.ifname);
  const server = inNetns(
    t,
    node,
    `
    const s = require('net').createServer((c) => { console.log('peer ' + c.remoteAddress); c.on('data', () => {}); });
    s.listen(0, '172.16.10.9', () => console.log('port ' + s.address().port));
    process.stdin.on('end', () => process.exit(0)); process.stdin.resume();`,
  );
  const port = Number((await server.line()).replace('port ', ''));
  const client = inNetns(
    t,
    pod,
    `
    const c = require('net').connect(${port}, '172.16.10.9', () => { c.write(Buffer.alloc(20000)); console.log('connected'); });
    c.on('error', (e) => { console.log('error ' + e.message); });
    process.stdin.on('end', () => process.exit(0)); process.stdin.resume();`,
  );
  t.equal(await client.line(), 'connected', 'the pod connects to 172.16.10.9 over eth1');
  t.equal(await server.line(), 'peer 10.124.2.5', "the server sees the route's src as the source address");
  const ss = (ns: TestNetns, filter: string): string =>
    execFileSync('ip', ['netns', 'exec', ns.name, 'ss', '-tin', 'state', 'established', filter], { encoding: 'utf8' });
  // ss prints the send MSS, less the 12 bytes of TCP timestamps when they are on.
  const mine = ss(pod, 'dst 172.16.10.9');
  t.match(mine, /pmtu:1400\b/, "the pod's socket has the route's mtu as its path MTU", { mine });
  t.match(mine, /\bmss:(1348|1360)\b/, 'and sends segments that fit it (1400 - 40)', { mine });
  const theirs = ss(node, 'src 172.16.10.9');
  t.match(theirs, /\bmss:(1188|1200)\b/, 'the peer, whose own path allows 1460, sends segments of the advmss 1200 the pod advertised', {
    theirs,
  });
  client.child.stdin!.end();
  server.child.stdin!.end();
  await Promise.all([once(client.child, 'exit'), once(server.child, 'exit')]);
}

const PLAN: Plan = {
  v: 1,
  routes: [
    { dst: G, dev: 'eth1', via: '10.124.2.1', mtu: 1450 },
    { dst: D, dev: 'eth1', src: '10.124.2.5', metric: 100, mtu: 1400, advmss: 1200 },
  ],
};

t.test('attributes are written exactly, read back, in effect, and idempotent', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod, node } = makePod(t, { ipv6: true });
  const plan: Plan = {
    ...PLAN,
    routes: [...PLAN.routes, { dst: 'fd00:99::/64', dev: 'eth1', via: 'fd00:124::1', src: 'fd00:124::5', metric: 2048, mtu: 1280 }],
  };
  const res = await applyPlan(pod.path, plan);
  t.same(res.skipped, [], 'nothing skipped');
  t.same(res.added.map((a) => a.dst).sort(), [G, D, 'fd00:99::/64'].sort());
  t.same(
    shown(pod, D),
    [`${D} dev eth1 proto ${P} scope link src 10.124.2.5 metric 100 mtu 1400 advmss 1200`],
    'iproute2 sees every attribute',
  );
  t.same(shown(pod, G), [`${G} via 10.124.2.1 dev eth1 proto ${P} mtu 1450`]);
  t.match(
    shown(pod, 'fd00:99::/64', 6)[0],
    new RegExp(`^fd00:99::/64 via fd00:124::1 dev eth1 proto ${P} src fd00:124::5 metric 2048 mtu 1280 `),
  );

  const c = RtnlClient.open(pod.path);
  t.teardown(() => c.close());
  const ours = (await c.listRoutes())
    .filter((r) => r.protocol === P)
    .map((r) => ({ dst: r.dst, prefsrc: r.prefsrc, priority: r.priority, mtu: r.mtu, advmss: r.advmss }));
  t.same(
    ours.sort((a, b) => (a.dst < b.dst ? -1 : 1)),
    [
      { dst: G, prefsrc: undefined, priority: 0, mtu: 1450, advmss: undefined },
      { dst: D, prefsrc: '10.124.2.5', priority: 100, mtu: 1400, advmss: 1200 },
      { dst: 'fd00:99::/64', prefsrc: 'fd00:124::5', priority: 2048, mtu: 1280, advmss: undefined },
    ],
    'our netlink client reads them back',
  );

  // In effect: the kernel's lookup for traffic to the destination uses our src and mtu ...
  t.match(
    pod.ip('route', 'get', '172.16.10.9').replace(/\s+/g, ' '),
    /172\.16\.10\.9 dev eth1 src 10\.124\.2\.5 .*mtu 1400 advmss 1200/,
    'ip route get',
  );
  // ... and over real TCP between two namespaces of this test: the pod's SYN leaves from src
  // and advertises the route's advmss, which the peer (whose own path allows 1460) adopts.
  await tcpEvidence(t, pod, node);

  const again = await applyPlan(pod.path, plan);
  t.notOk(again.changed, 'a second apply changes nothing');
  t.same(again.unchanged.length, 3);
});

t.test('drift of an attribute is repaired; a changed metric moves the route; a dropped attribute goes', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  let res = await applyPlan(pod.path, PLAN);
  const want = shown(pod, D);

  // Someone changes the mtu of our route (`ip route change` also rewrites the protocol).
  pod.ip('route', 'change', D, 'dev', 'eth1', 'src', '10.124.2.5', 'metric', '100', 'mtu', '9000', 'advmss', '1200');
  t.match(shown(pod, D)[0], /mtu 9000/, 'the drift is there');
  res = await applyPlan(pod.path, PLAN, { reclaim: res.owned });
  t.same(
    res.replaced.map((r) => `${r.dst} mtu ${r.from.mtu} -> ${r.mtu}`),
    [`${D} mtu 9000 -> 1400`],
    'reported as replaced, from mtu 9000',
  );
  t.same(shown(pod, D), want, 'back to the plan');

  // Someone adds an advmss to the gateway route (still ours: `ip route replace ... proto 111`).
  pod.ip('route', 'replace', G, 'via', '10.124.2.1', 'dev', 'eth1', 'proto', String(P), 'mtu', '1450', 'advmss', '1000');
  res = await applyPlan(pod.path, PLAN, { reclaim: res.owned });
  t.same(
    res.replaced.map((r) => r.dst),
    [G],
    'an attribute the plan does not set is drift too',
  );
  t.same(shown(pod, G), [`${G} via 10.124.2.1 dev eth1 proto ${P} mtu 1450`]);

  // A new metric: the kernel keys routes by metric, so the old one must be deleted, not left.
  const moved: Plan = { v: 1, routes: [PLAN.routes[0]!, { ...PLAN.routes[1]!, metric: 50 }] };
  res = await applyPlan(pod.path, moved, { reclaim: res.owned });
  t.same(
    res.replaced.map((r) => r.dst),
    [D],
  );
  t.same(
    shown(pod, D),
    [`${D} dev eth1 proto ${P} scope link src 10.124.2.5 metric 50 mtu 1400 advmss 1200`],
    'exactly one route, at metric 50',
  );
  t.notOk((await applyPlan(pod.path, moved)).changed, 'and it stays put');

  // The plan drops mtu/advmss/src (and metric: any metric will do, so the route keeps 50).
  const bare: Plan = {
    v: 1,
    routes: [
      { dst: G, dev: 'eth1', via: '10.124.2.1' },
      { dst: D, dev: 'eth1' },
    ],
  };
  res = await applyPlan(pod.path, bare);
  t.same(res.replaced.map((r) => r.dst).sort(), [G, D].sort());
  t.same(shown(pod, D), [`${D} dev eth1 proto ${P} scope link metric 50`]);
  t.same(shown(pod, G), [`${G} via 10.124.2.1 dev eth1 proto ${P}`]);
});

t.test('default route with a metric and an mtu: the original is saved with its attributes and restored exactly', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  // The CNI's default, with an mtu of its own.
  pod.ip('route', 'replace', 'default', 'via', '169.254.1.1', 'dev', 'eth0', 'mtu', '1480');
  const original = shown(pod, '0.0.0.0/0');
  t.same(original, ['default via 169.254.1.1 dev eth0 mtu 1480']);
  const dir = mkdtempSync(join(tmpdir(), 'ovnkr-attrs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const store = new SavedDefaultStore(dir, 'pod');
  const withDefault: Plan = { v: 1, routes: [], default: { dev: 'eth1', via: '10.124.2.1', metric: 10, mtu: 1450 } };
  const res = await applyPlan(pod.path, withDefault, {
    savedDefault: store.load(),
    saveDefault: (s) => store.save(s),
    forgetDefault: (f) => store.forget(f),
  });
  t.same(res.skipped, []);
  t.same(
    shown(pod, '0.0.0.0/0'),
    [`default via 10.124.2.1 dev eth1 proto ${P} metric 10 mtu 1450`],
    'ours at metric 10; the original is gone, not left at metric 0',
  );
  t.same(
    store.load(),
    [{ family: 4, route: { dev: 'eth0', via: '169.254.1.1', protocol: 3, scope: 0, priority: 0, mtu: 1480 } }],
    'saved with its mtu',
  );

  const back = await applyPlan(
    pod.path,
    { v: 1, routes: [] },
    { savedDefault: store.load(), saveDefault: (s) => store.save(s), forgetDefault: (f) => store.forget(f) },
  );
  t.same(
    back.restored.map((r) => r.dst),
    ['0.0.0.0/0'],
  );
  t.same(shown(pod, '0.0.0.0/0'), original, 'the original is back exactly: metric 0, mtu 1480, and ours is gone');
  t.same(store.load(), [], 'and forgotten');
});
