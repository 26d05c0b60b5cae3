// `npm run demo -- -o json`, as a newcomer runs it: its own control plane and real node, the
// add-on, the world, traffic, a live edit and the cleanup. The JSON it prints is checked
// against what the demo must show, and the machine against what it must not leave behind.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { findBinaries } from '../cluster/binaries.js';
import { ETH1_BRIDGE, nodeUnavailable } from '../cluster/node.js';
import { repoRoot } from '../util/fixtures.js';
import { tierGate } from '../util/tier.js';

const NODE_TIER = 'node (real kubelet + containerd + Multus)';

function runDemo(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(repoRoot, 'dist', 'demo', 'main.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const bins = nodeUnavailable() === null ? await findBinaries({ allowBuild: false, set: 'node' }) : null;
if (tierGate(t, NODE_TIER, nodeUnavailable() ?? (bins?.dir ? null : (bins?.reason ?? 'no node binaries')))) {
  t.test('npm run demo -o json', async (t) => {
    const run = await runDemo(['-o', 'json']);
    t.comment(
      run.stderr
        .split('\n')
        .filter((l) => /^\[\d\/7\]|done in|PASS|FAIL|the pod had/.test(l.trim()))
        .join('\n'),
    );
    t.equal(run.code, 0, 'exit 0', { stderr: run.stderr.slice(-3000) });
    const d = JSON.parse(run.stdout) as Record<string, any>;
    t.equal(d.verdict, 'pass', 'verdict pass', { problems: d.problems });
    t.same(d.problems, [], 'no problem');
    t.same(
      d.phases.map((p: { name: string; ok: boolean }) => p.ok),
      d.phases.map(() => true),
      'every phase ok',
    );

    // The table read from inside the pod: every target row, ours marked by their protocol.
    const ips = d.services as Record<string, string>;
    const rows = (d.before.table as Array<Record<string, string>>).map(
      (r) => `${r.destination} ${r.gateway} ${r.genmask} ${r.flags} ${r.iface} ${r.owner}`,
    );
    for (const want of [
      '0.0.0.0 169.254.1.1 0.0.0.0 UG eth0 cni',
      `${ips['default/nginx']} 0.0.0.0 255.255.255.255 UH eth1 ovnkube-route`,
      `${ips['kube-system/nginx1']} 0.0.0.0 255.255.255.255 UH eth0 ovnkube-route`,
      '10.124.0.0 10.124.2.1 255.255.0.0 UG eth1 cni',
      '10.124.2.0 0.0.0.0 255.255.255.0 U eth1 cni',
      '169.254.1.1 0.0.0.0 255.255.255.255 UH eth0 cni',
      '172.16.10.0 0.0.0.0 255.255.255.0 U eth1 ovnkube-route',
      '192.168.2.0 0.0.0.0 255.255.255.0 U eth0 ovnkube-route',
      '172.16.20.0 10.124.2.1 255.255.255.0 UG eth1 ovnkube-route',
    ])
      t.ok(rows.includes(want), `in the pod before the edit: ${want}`, { rows });
    t.same(d.before.start, { mode: 'cni' }, 'the routes were written during CNI ADD');

    // Traffic: each Service's pings seen only on the planned NIC's host-side veth, answered.
    const carried = (x: Array<Record<string, any>>) =>
      x.map((r) => `${r.what} ${r.carriedBy} ${r.seen[r.planned] >= r.sent} ${r.replies}/${r.sent}`);
    t.same(
      carried(d.before.traffic),
      ['Service default/nginx eth1 true 3/3', 'Service kube-system/nginx1 eth0 true 3/3'],
      'before: nginx by eth1, nginx1 by eth0',
    );
    t.same(
      carried(d.edit.traffic),
      ['Service default/nginx eth0 true 3/3', 'Service kube-system/nginx1 eth0 true 3/3'],
      'after the failover: both by eth0',
    );
    t.ok(
      (d.edit.table as Array<Record<string, string>>).some(
        (r) => r.destination === ips['default/nginx'] && r.iface === 'eth0' && r.owner === 'ovnkube-route',
      ),
      "the pod's table shows nginx on eth0 after the edit",
    );
    t.ok(d.edit.sameUid && d.edit.sameStart, 'no pod restarted');
    t.type(d.edit.secondsToPod, 'number');
    t.comment(`edit to routes in the pod: ${d.edit.secondsToPod} s (a figure, not an assertion)`);

    // The other pods, explained.
    const others = Object.fromEntries((d.others as Array<Record<string, any>>).map((o) => [o.kind, o]));
    t.match(others['opted-out namespace'], { plan: 'none', why: /inject=disabled/ });
    t.match(others.hostNetwork, { plan: 'none', why: /hostNetwork/ });
    t.match(others['no eth1'], { status: /skipped 2 .*dev-missing/, events: [/RoutesSkipped/] });

    // Nothing left behind.
    t.same(d.cleanup.left, [], 'the demo reports nothing left');
    if (!existsSync('/run/ovnkube-route-node/state.json')) t.notOk(existsSync(`/sys/class/net/${ETH1_BRIDGE}`), 'no bridge');
    t.ok((d.netns as string[]).length >= 4, "the pods' netns were recorded");
    t.same(
      readdirSync('/run/netns').filter((n) => (d.netns as string[]).includes(n) || n.startsWith('ovnkr-demo')),
      [],
      'none of its netns is left',
    );
  });

  t.test('bad flags are refused with a message, and --help is printed', async (t) => {
    const bad = await runDemo(['-o', 'yaml']);
    t.equal(bad.code, 2, 'exit 2');
    t.match(bad.stderr, /--output: expected text or json, got "yaml"/);
    t.notMatch(bad.stderr, /\n\s+at /, 'no stack trace');
    const help = await runDemo(['--help']);
    t.equal(help.code, 0);
    t.match(help.stdout, /Usage: npm run demo -- \[-o text\|json\] \[--keep\] \[--down\]/);
  });
}
