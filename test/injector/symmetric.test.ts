// Symmetric return paths on the real kernel (issue 14), in network namespaces the test made:
// a pod with eth0 (Calico-like, the default route) and eth1 (OVN-like, gateway 10.124.2.1);
// a client behind eth1's gateway sends to the pod's eth1 address. Without the rule the reply
// leaves by eth0 (and lands on a decoy listening on the client's address in eth0's peer
// netns); with `symmetric: [eth1]` it leaves by eth1 and reaches the client. Also: the exact
// table and rule written (proto 111), foreign rules and routes left alone, drift repaired
// from rule and route events, exact removal, and the pure planner's table.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import t, { type Test } from 'tap';
import type { Plan } from '../../core/types.js';
import { RT_SCOPE_LINK, RT_SCOPE_UNIVERSE } from '../../injector/kernel/netlink-codec.js';
import { applyPlan, RTPROT_OVNKUBE_ROUTE } from '../../injector/routes/engine.js';
import { RouteKeeper, type KeeperReport } from '../../injector/routes/keeper.js';
import { planSymmetric, symmetricTable, SYMMETRIC_RULE_PRIORITY } from '../../injector/routes/symmetric.js';
import { addVeth, makeNetns, type TestNetns } from '../util/netns.js';
import { rootUnavailable, tierGate } from '../util/tier.js';
import { until } from '../util/until.js';
import { runCli } from '../util/cli.js';

const P = RTPROT_OVNKUBE_ROUTE;
const BASE: Plan = { v: 1, routes: [{ dst: '172.16.60.0/24', dev: 'eth1', via: 'gateway' }] };
const SYM: Plan = { ...BASE, symmetric: ['eth1'] };

t.test('symmetricTable and the planner (pure)', async (t) => {
  const tables: [string, number][] = [
    ['eth0', 1000],
    ['eth1', 1001],
    ['eth12', 1012],
    ['net1', 2001],
    ['net999', 2999],
  ];
  for (const [dev, table] of tables) t.equal(symmetricTable(dev), table, `${dev} -> ${table}`);
  for (const dev of ['eth1000', 'eth01', 'ovn-udn1', 'lan']) {
    const n = symmetricTable(dev);
    t.ok(n >= 100_000 && n < 1_000_000 && n === symmetricTable(dev), `${dev} -> ${n}: hashed, stable, in range`);
  }
  const links = [
    { index: 2, name: 'eth0', up: true },
    { index: 3, name: 'eth1', up: true },
  ];
  const addrs = [
    { index: 3, family: 4 as const, address: '10.124.2.5', prefixLen: 24, scope: RT_SCOPE_UNIVERSE },
    { index: 3, family: 6 as const, address: 'fe80::1', prefixLen: 64, scope: RT_SCOPE_LINK },
  ];
  const main = [
    {
      family: 4 as const,
      dst: '10.124.0.0/16',
      table: 254,
      protocol: 4,
      scope: 0,
      type: 'UNICAST',
      priority: 0,
      tos: 0,
      oif: 3,
      dev: 'eth1',
      via: '10.124.2.1',
    },
  ];
  const cases: { name: string; devices: string[]; main?: typeof main; want: string[]; skipped?: string[] }[] = [
    {
      name: 'eth1 with a gateway',
      devices: ['eth1'],
      want: ['route 10.124.2.0/24 1001', 'route 0.0.0.0/0 1001 via 10.124.2.1', `rule 10.124.2.5/32 1001 ${SYMMETRIC_RULE_PRIORITY}`],
    },
    {
      name: 'no gateway: subnet only, reported',
      devices: ['eth1'],
      main: [],
      want: ['route 10.124.2.0/24 1001', `rule 10.124.2.5/32 1001 ${SYMMETRIC_RULE_PRIORITY}`],
      skipped: ['0.0.0.0/0 table 1001 no-gateway'],
    },
    { name: 'a missing device', devices: ['eth7'], want: [], skipped: ['symmetric eth7 dev-missing'] },
    { name: 'a device without a global address', devices: ['eth0'], want: [], skipped: ['symmetric eth0 dev-missing'] },
  ];
  for (const c of cases) {
    const d = planSymmetric(c.devices, links, addrs, c.main ?? main, [], [], P);
    const got = [
      ...d.addRoutes.map((r) => `route ${r.dst} ${r.table}${r.via ? ` via ${r.via}` : ''}`),
      ...d.addRules.map((r) => `rule ${r.src} ${r.table} ${r.priority}`),
    ];
    t.same(got, c.want, `${c.name}: writes`);
    t.same(
      d.skipped.map((s) => `${s.dst} ${s.reason}`),
      c.skipped ?? [],
      `${c.name}: skipped`,
    );
  }
});

/** `ip rule` lines with our protocol (and everything else for the foreign check). */
// The protocol as a number, whether or not this machine's rt_protos names it.
const norm = (l: string): string =>
  l
    .trim()
    .replace(/\s+/g, ' ')
    .replace(/proto ovnkube-route\b/, `proto ${P}`);
const rules = (ns: TestNetns): string[] => ns.ip('rule', 'show').trim().split('\n').map(norm);
const table = (ns: TestNetns, id: number): string[] => {
  try {
    return ns.ip('route', 'show', 'table', String(id)).trim().split('\n').filter(Boolean).map(norm);
  } catch {
    return []; // a table that no longer exists
  }
};

function sysctl(ns: TestNetns, ...kv: string[]): void {
  const r = spawnSync('ip', ['netns', 'exec', ns.name, 'sysctl', '-q', '-w', ...kv]);
  if (r.status !== 0) throw new Error(`sysctl ${kv.join(' ')} in ${ns.name} failed: ${r.stderr.toString()}`);
}

/** A node process in `ns` printing what it receives; resolves once it is bound. */
async function listener(t: Test, ns: TestNetns, script: string): Promise<{ proc: ChildProcess; out: () => string }> {
  const proc = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (proc.exitCode === null) proc.kill();
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  while (!out.includes('ready')) await once(proc.stdout!, 'data');
  return { proc, out: () => out };
}

t.test('a reply to what came in on eth1 leaves by eth1 with the rule, by eth0 without', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  // node (eth0's peer, Calico-like: 169.254.1.1, and a decoy at the client's address)
  // gw (eth1's gateway 10.124.2.1, forwarding) -- client 172.16.50.9
  const node = makeNetns(t, 'node');
  const gw = makeNetns(t, 'gw');
  const client = makeNetns(t, 'client');
  const pod = makeNetns(t, 'pod');
  for (const ns of [node, gw, client, pod]) sysctl(ns, 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0');
  sysctl(gw, 'net.ipv4.conf.all.forwarding=1');
  addVeth(pod, 'eth0', node, ['10.244.1.5/32']);
  const nodeSide = node.json<{ ifname: string }[]>('link', 'show', 'type', 'veth')[0]!.ifname;
  node.ip('addr', 'add', '169.254.1.1/32', 'dev', nodeSide);
  node.ip('route', 'add', '10.124.2.5/32', 'dev', nodeSide);
  node.ip('addr', 'add', '172.16.50.9/32', 'dev', 'lo'); // the decoy
  node.ip('link', 'set', 'lo', 'up');
  pod.ip('route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link');
  pod.ip('route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0');
  addVeth(pod, 'eth1', gw, ['10.124.2.5/24']);
  const gwPod = gw.json<{ ifname: string }[]>('link', 'show', 'type', 'veth')[0]!.ifname;
  gw.ip('addr', 'add', '10.124.2.1/24', 'dev', gwPod);
  addVeth(client, 'eth0', gw, ['172.16.50.9/24']);
  const gwClient = gw
    .json<{ ifname: string }[]>('link', 'show', 'type', 'veth')
    .map((l) => l.ifname)
    .find((n) => n !== gwPod)!;
  gw.ip('addr', 'add', '172.16.50.1/24', 'dev', gwClient);
  client.ip('route', 'add', 'default', 'via', '172.16.50.1');
  pod.ip('route', 'add', '10.124.0.0/16', 'via', '10.124.2.1', 'dev', 'eth1'); // the CNI's gateway route

  // The pod's server answers from the address it was reached at (a UDP socket bound to it).
  await listener(
    t,
    pod,
    `
    const s = require('dgram').createSocket('udp4');
    s.on('message', (m, r) => s.send('echo:' + m, r.port, r.address));
    s.bind(7000, '10.124.2.5', () => console.log('ready'));`,
  );
  const decoy = await listener(
    t,
    node,
    `
    const s = require('dgram').createSocket('udp4');
    s.on('message', (m) => console.log('decoy ' + m));
    s.bind(6000, '172.16.50.9', () => console.log('ready'));`,
  );
  const clientScript = `
    const s = require('dgram').createSocket('udp4');
    s.on('message', (m) => console.log('client ' + m));
    s.bind(6000, '172.16.50.9', () => { console.log('ready'); setInterval(() => s.send(process.argv[1], 7000, '10.124.2.5'), 200); });`;
  const probe = async (token: string): Promise<{ out: () => string; stop: () => void }> => {
    const proc = spawn('ip', ['netns', 'exec', client.name, process.execPath, '-e', clientScript, token], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const stop = (): void => {
      if (proc.exitCode === null) proc.kill();
    };
    t.teardown(stop);
    return { out: () => out, stop };
  };

  // 1. No plan asks for it: the reply follows the main table's default, out of eth0.
  const r1 = await applyPlan(pod.path, BASE);
  t.same(r1.skipped, []);
  t.same(r1.symmetric?.added, [], 'nothing symmetric written');
  let p = await probe('one');
  await until('the reply to "one" reaches eth0\'s peer', () => decoy.out().includes('decoy echo:one'), 30_000);
  t.notMatch(p.out(), /client echo:one/, 'the client did not get it: the reply went by eth0');
  p.stop();

  // 2. symmetric: [eth1]: table 1001 and the rule, marked proto 111.
  pod.ip('rule', 'add', 'from', '10.124.2.5', 'lookup', '1001', 'pref', '1200'); // a foreign rule, same selector
  pod.ip('route', 'add', '192.0.2.0/24', 'dev', 'eth1', 'table', '1001', 'proto', 'static'); // a foreign route in "our" table
  const r2 = await applyPlan(pod.path, SYM);
  t.same(r2.skipped, [], 'nothing skipped');
  t.same(r2.symmetric?.tables, [{ dev: 'eth1', table: 1001 }]);
  t.ok(rules(pod).includes(`${SYMMETRIC_RULE_PRIORITY}: from 10.124.2.5 lookup 1001 proto ${P}`), 'the rule', { rules: rules(pod) });
  t.same(
    table(pod, 1001).sort(),
    [
      `10.124.2.0/24 dev eth1 proto ${P} scope link`,
      '192.0.2.0/24 dev eth1 proto static scope link',
      `default via 10.124.2.1 dev eth1 proto ${P}`,
    ],
    "the table: eth1's subnet and its gateway (and the foreign route, untouched)",
  );
  t.same(node.ip('rule', 'show').match(new RegExp(`proto ${P}`, 'g')), null, 'nothing in any other netns');
  // `routes` on the node shows them after the tables.
  const shown = runCli(['routes', '--netns', pod.path, '--family', '4']);
  t.equal(shown.code, 0);
  t.match(
    shown.stdout,
    new RegExp(`Symmetric return paths[^\\n]*\\n${SYMMETRIC_RULE_PRIORITY}:\\tfrom 10\\.124\\.2\\.5/32 lookup 1001\\n`),
    'routes: our rule',
  );
  t.match(
    shown.stdout,
    /table 1001: 0\.0\.0\.0\/0 via 10\.124\.2\.1 dev eth1\ntable 1001: 10\.124\.2\.0\/24 dev eth1\ntable 1001: 192\.0\.2\.0\/24 dev eth1 proto 4\n/,
    'routes: the table, foreign routes marked',
  );
  const again = await applyPlan(pod.path, SYM);
  t.notOk(again.changed, 'idempotent');
  t.equal(again.symmetric?.unchanged.length, 3);
  p = await probe('two');
  await until('the reply to "two" reaches the client', () => p.out().includes('client echo:two'), 30_000);
  t.notMatch(decoy.out(), /decoy echo:two/, "not eth0's peer: the reply went by eth1");
  p.stop();

  // 3. Drift: the keeper repairs our rule and our table route from their events.
  const reports: KeeperReport[] = [];
  const k = new RouteKeeper(pod.path, SYM, { onReport: (r) => reports.push(r), debounceMs: 20, resyncMs: 0 });
  t.teardown(() => k.close());
  await k.start();
  pod.ip('rule', 'del', 'pref', String(SYMMETRIC_RULE_PRIORITY), 'from', '10.124.2.5', 'lookup', '1001');
  const fixed = await until('the deleted rule is restored', () => reports.find((r) => r.kind === 'applied' && r.drift), 30_000);
  t.equal(fixed.kind === 'applied' && fixed.trigger, 'event', 'on the rule event, not a timer');
  t.ok(rules(pod).includes(`${SYMMETRIC_RULE_PRIORITY}: from 10.124.2.5 lookup 1001 proto ${P}`), 'rule back');
  const n = reports.length;
  pod.ip('route', 'del', 'default', 'table', '1001');
  await until('the deleted table route is restored', () => reports.slice(n).find((r) => r.kind === 'applied' && r.drift), 30_000);
  t.ok(table(pod, 1001).includes(`default via 10.124.2.1 dev eth1 proto ${P}`), 'table default back');

  // 4. Exact removal: the plan no longer asks; ours go, the foreign rule and route stay.
  const r4 = await k.setPlan(BASE);
  t.same(
    r4?.symmetric?.removed.map((i) => `${i.kind} ${i.dst} ${i.table}`).sort(),
    ['route 0.0.0.0/0 1001', 'route 10.124.2.0/24 1001', 'rule 10.124.2.5/32 1001'],
    'exactly ours removed',
  );
  t.same(
    rules(pod).filter((l) => l.includes(`proto ${P}`)),
    [],
    'no rule of ours left',
  );
  t.ok(rules(pod).includes('1200: from 10.124.2.5 lookup 1001'), 'the foreign rule stays');
  t.same(table(pod, 1001), ['192.0.2.0/24 dev eth1 proto static scope link'], 'only the foreign route stays in 1001');
  // The foreign rule would send the reply to table 1001, which no longer routes the client:
  // remove it, and the reply is back on eth0.
  pod.ip('rule', 'del', 'pref', '1200');
  p = await probe('three');
  await until('the reply to "three" reaches eth0\'s peer again', () => decoy.out().includes('decoy echo:three'), 30_000);
  p.stop();
});
