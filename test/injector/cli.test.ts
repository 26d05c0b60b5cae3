// `ovnkube-route inject` and `ovnkube-route routes` through the real built binary, on real netns.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { RTPROT_OVNKUBE_ROUTE } from '../../injector/routes/engine.js';
import { runCli } from '../util/cli.js';
import { repoRoot } from '../util/fixtures.js';
import { ipRoutes, makePod, routeLines } from '../util/netns.js';
import { until } from '../agent/rig.js';
import { rootUnavailable, tierGate } from '../util/tier.js';

const P = String(RTPROT_OVNKUBE_ROUTE);
const bundle = join(repoRoot, 'examples', 'demo-bundle.yaml');
const tmp = mkdtempSync(join(tmpdir(), 'ovr-inject-cli-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
// A throwaway plan key made for this run (never committed).
const keyFile = join(tmp, 'plan-key.test-only');
writeFileSync(keyFile, randomBytes(32).toString('base64'));
const otherKeyFile = join(tmp, 'other-key.test-only');
writeFileSync(otherKeyFile, randomBytes(32).toString('base64'));

/** `ovnkube-route plan` for a pod of the demo bundle, as an operator would pipe it. */
function planOf(pod: string, key?: string): string {
  const r = runCli(['plan', '-f', bundle, '--pod', pod, ...(key ? ['--key', key] : [])]);
  if (r.code !== 0) throw new Error(`plan failed: ${r.stderr}`);
  return r.stdout;
}

t.test('--help is true to the flags', async (t) => {
  for (const cmd of ['inject', 'routes']) {
    const h = runCli([cmd, '--help']);
    t.equal(h.code, 0);
    t.match(h.stdout, new RegExp(`^Usage: ovnkube-route ${cmd} `));
  }
  t.match(
    runCli(['inject', '--help']).stdout,
    /--netns PATH[\s\S]*--plan FILE[\s\S]*--key FILE[\s\S]*--namespace NS[\s\S]*--netns-dir DIR[\s\S]*--state-dir DIR/,
  );
  t.match(runCli(['routes', '--help']).stdout, /--netns PATH[\s\S]*--pod NS\/NAME[\s\S]*--cni-cache-dir DIR/);
  t.equal(runCli(['inject', '--plan', '-']).code, 2, 'missing --netns is a usage error');
  t.equal(runCli(['routes', '--netns', '/x', '--pod', 'a/b']).code, 2, '--netns and --pod together is a usage error');
  t.equal(runCli(['inject', '--netns', '/x', '--plan', '-', '--bogus']).code, 2, 'unknown flags are refused');
});

t.test('plan | inject reproduces the target table; a second run changes nothing', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const plan = planOf('default/web-7d4f9-abcde');
  const state = join(tmp, 'state-1');
  const first = runCli(['inject', '--netns', pod.path, '--plan', '-', '--state-dir', state], { input: plan });
  t.equal(first.code, 0, first.stderr);
  t.match(first.stdout, /^added +10\.86\.69\.17\/32 dev eth0$/m);
  t.match(first.stdout, /^added +10\.124\.0\.0\/16 via 10\.124\.2\.1 dev eth1$/m);
  t.match(first.stdout, /5 added, 0 replaced, 0 restored, 0 removed, 0 unchanged, 0 skipped\n$/);
  t.same(routeLines(pod), [
    `10.124.0.0/16 via 10.124.2.1 dev eth1 proto ${P}`,
    '10.124.2.0/24 dev eth1 proto kernel',
    `10.86.205.109 dev eth1 proto ${P}`,
    `10.86.69.17 dev eth0 proto ${P}`,
    '169.254.1.1 dev eth0',
    `172.16.10.0/24 dev eth1 proto ${P}`,
    `192.168.2.0/24 dev eth0 proto ${P}`,
    'default via 169.254.1.1 dev eth0',
  ]);
  const second = runCli(['inject', '--netns', pod.path, '--plan', '-', '--state-dir', state], { input: plan });
  t.equal(second.code, 0);
  t.equal(second.stdout, `netns ${pod.path}: nothing changed: 5 routes already in place\n`);

  const table = runCli(['routes', '--netns', pod.path, '--family', '4']);
  t.equal(table.code, 0, table.stderr);
  const rows = table.stdout.split('\n');
  t.ok(rows.includes('Destination     Gateway         Genmask         Flags Metric Iface  Proto  Owner'));
  t.ok(rows.includes('10.86.69.17     0.0.0.0         255.255.255.255 UH    0      eth0   111    ovnkube-route'));
  t.ok(rows.includes('10.124.0.0      10.124.2.1      255.255.0.0     UG    0      eth1   111    ovnkube-route'));
  t.ok(rows.includes('169.254.1.1     0.0.0.0         255.255.255.255 UH    0      eth0   boot'), 'CNI routes are listed, not marked');
  t.equal(rows.filter((r) => r.endsWith('ovnkube-route')).length, 5);
});

t.test('signatures: a forged plan is refused; a signed plan needs the key and namespace', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const signed = planOf('default/web-7d4f9-abcde', keyFile);
  const forged = signed.replace('"dst":"172.16.10.0/24","dev":"eth1"', '"dst":"172.16.10.0/24","dev":"eth0"');
  t.not(forged, signed, 'the forgery changed the plan');
  const base = ['inject', '--netns', pod.path, '--plan', '-', '--state-dir', join(tmp, 'state-2')];
  const before = routeLines(pod);
  const cases: [string, string[], string, RegExp][] = [
    [
      'forged',
      ['--key', keyFile, '--namespace', 'default'],
      forged,
      /refused: plan signature does not verify for namespace "default" \(bad-signature\)/,
    ],
    ['other namespace', ['--key', keyFile, '--namespace', 'kube-system'], signed, /bad-signature/],
    ['other key', ['--key', otherKeyFile, '--namespace', 'default'], signed, /unknown-key/],
    ['no key', [], signed, /carries a signature; give --key FILE/],
    ['no namespace', ['--key', keyFile], signed, /give --namespace NS/],
  ];
  for (const [name, flags, input, re] of cases) {
    const r = runCli([...base, ...flags], { input });
    t.equal(r.code, 1, `${name}: exit 1`);
    t.equal(r.stdout, '', `${name}: nothing printed on stdout`);
    t.match(r.stderr, re, name);
  }
  t.same(routeLines(pod), before, 'nothing was written by a refused plan');
  const ok = runCli([...base, '--key', keyFile, '--namespace', 'default'], { input: signed });
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /5 added/);
});

t.test('netns safety and a vanished netns', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const plan = planOf('default/web-7d4f9-abcde');
  const outside = runCli(['inject', '--netns', pod.path, '--plan', '-', '--netns-dir', tmp], { input: plan });
  t.equal(outside.code, 1);
  t.match(outside.stderr, /outside the netns dir/);
  const host = runCli(['inject', '--netns', '/proc/1/ns/net', '--plan', '-'], { input: plan });
  t.equal(host.code, 1);
  t.match(host.stderr, /only paths in the netns dir are accepted/);
  const gone = runCli(['routes', '--netns', '/var/run/netns/ovrt-does-not-exist']);
  t.equal(gone.code, 1);
  t.match(gone.stderr, /does not exist/);
});

t.test('default route via --state-dir: saved, replaced, restored by a plan without one', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  const state = join(tmp, 'state-3');
  const batch = planOf('batch/nightly-report-2890-x7k2p'); // default via gateway dev eth1
  t.match(batch, /"default":\{"dev":"eth1","via":"gateway"\}/, 'the plan names no address');
  // The CNI's route through eth1's gateway on this "node": where via gateway is found.
  pod.ip('route', 'add', '10.124.0.0/16', 'via', '10.124.2.1', 'dev', 'eth1');
  const r1 = runCli(['inject', '--netns', pod.path, '--plan', '-', '--state-dir', state], { input: batch });
  t.equal(r1.code, 0, r1.stderr);
  t.match(r1.stdout, /replaced +0\.0\.0\.0\/0 via 10\.124\.2\.1 dev eth1 \(was 0\.0\.0\.0\/0 via 169\.254\.1\.1 dev eth0\)/);
  t.equal(readdirSync(state).length, 1, 'the original is saved in the state dir');
  const r2 = runCli(['inject', '--netns', pod.path, '--plan', '-', '--state-dir', state], { input: '{"v":1,"routes":[]}' });
  t.equal(r2.code, 0, r2.stderr);
  t.match(r2.stdout, /restored +0\.0\.0\.0\/0 via 169\.254\.1\.1 dev eth0 \(original default route\)/);
  t.ok(routeLines(pod).includes('default via 169.254.1.1 dev eth0'));
  t.same(readdirSync(state), []);
});

t.test('skipped routes are listed and exit 3', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t, { eth1: false });
  const r = runCli(['inject', '--netns', pod.path, '--plan', '-', '--state-dir', join(tmp, 'state-4'), '-o', 'json'], {
    input: planOf('default/web-7d4f9-abcde'),
  });
  t.equal(r.code, 3);
  const res = JSON.parse(r.stdout) as { skipped: { dst: string; reason: string }[]; added: unknown[] };
  t.same(res.skipped.map((s) => `${s.dst} ${s.reason}`).sort(), [
    '10.124.0.0/16 dev-missing',
    '10.86.205.109/32 dev-missing',
    '172.16.10.0/24 dev-missing',
  ]);
  t.equal(res.added.length, 2);
});

t.test('routes --pod finds the netns through the CNI result cache', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const { pod } = makePod(t);
  // The kernel adds each new veth's IPv6 link-local route on its own time: wait for both, so
  // the two tables below are read from the same state.
  await until('IPv6 link-local routes of eth0 and eth1', () => ipRoutes(pod, 6).filter((r) => r.dst === 'fe80::/64').length === 2);
  const cache = mkdtempSync(join(tmpdir(), 'ovr-cni-cache-'));
  t.teardown(() => rmSync(cache, { recursive: true, force: true }));
  const cid = randomBytes(32).toString('hex');
  writeFileSync(
    join(cache, `cni-loopback-${cid}-lo`),
    JSON.stringify({
      kind: 'cniCacheV1',
      containerId: cid,
      ifName: 'lo',
      networkName: 'cni-loopback',
      cniArgs: [
        ['K8S_POD_NAMESPACE', 'default'],
        ['K8S_POD_NAME', 'web-7d4f9-abcde'],
        ['K8S_POD_INFRA_CONTAINER_ID', cid],
        ['K8S_POD_UID', '174eecc3-58fa-42d1-8501-7f9004a28b76'],
        ['IgnoreUnknown', '1'],
      ],
      result: {
        cniVersion: '0.3.1',
        interfaces: [{ mac: '00:00:00:00:00:00', name: 'lo', sandbox: pod.path }],
        ips: [{ address: '127.0.0.1/8', interface: 0 }],
      },
    }),
  );
  runCli(['inject', '--netns', pod.path, '--plan', '-', '--state-dir', join(tmp, 'state-5')], { input: planOf('default/web-7d4f9-abcde') });
  const byPod = runCli(['routes', '--pod', 'default/web-7d4f9-abcde', '--cni-cache-dir', cache]);
  t.equal(byPod.code, 0, byPod.stderr);
  const byNetns = runCli(['routes', '--netns', pod.path]);
  t.equal(byPod.stdout, byNetns.stdout, 'same table as --netns');
  t.match(byPod.stdout, /^netns \/var\/run\/netns\/ovrt-/);
  t.match(byPod.stdout, /Kernel IPv6 routing table/);
  const missing = runCli(['routes', '--pod', 'default/nope', '--cni-cache-dir', cache]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /pod default\/nope: no CNI cache file .* names it \(1 pod entries found\)/);
});
