// The live CLI on the real node: a pod's routing table read from a "laptop" (through the API
// server, exec in the pod), compared with what `routes` reads with netlink on the node; the
// agent-report fallback when exec is forbidden; explain on a pod the add-on really stamped
// and the agent really served; the agent's rt_protos.d file. Short on purpose: one node per
// machine (a lock), shared with the other node tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { decodeInjectorStatus } from '../../core/injector-status.js';
import { STATUS_ANNOTATION } from '../../core/types.js';
import { findBinaries } from '../cluster/binaries.js';
import { serviceAccountKubeConfig } from '../cluster/helpers.js';
import { kubeRequest } from '../cluster/k8s.js';
import { CNI_CACHE_DIR, nodeUnavailable, startNode } from '../cluster/node.js';
import { nodePod, podRunning, waitPod } from '../cluster/pods.js';
import { withControlPlane } from '../cluster/tap.js';
import { runCli } from '../util/cli.js';
import { cliPath } from '../util/fixtures.js';
import { freePort, httpGet } from '../util/http.js';
import { tierGate } from '../util/tier.js';
import { applyRoute, createNamespace, installAddon, registerWebhook, startWebhook, until } from '../webhook-e2e/helpers.js';

const NODE_TIER = 'node (real kubelet + containerd + Multus)';
const NS = 'cli-apps';

const cp = await withControlPlane(t);
if (cp && tierGate(t, NODE_TIER, nodeUnavailable())) {
  const bins = await findBinaries({ allowBuild: false, set: 'node' });
  if (bins.dir === null && bins.fatal) throw new Error(`node binaries: ${bins.reason}`);
  if (bins.dir !== null || tierGate(t, NODE_TIER, bins.reason)) await t.test('the live CLI on a real node', (t) => scenario(t, bins.dir!));
}

/** The rows of a `route -n` table, without the Proto and Metric columns (how each side reads them differs). */
function rows(table: string): string[] {
  return table
    .split('\n')
    .filter((l) => /^\d+\.\d+\.\d+\.\d+ /.test(l))
    .map((l) => {
      const c = l.trim().split(/\s+/);
      return [c[0], c[1], c[2], c[3], c[5], c[7] ?? ''].join(' ').trim();
    })
    .sort();
}

async function scenario(t: Test, binDir: string): Promise<void> {
  const { kc } = cp!;
  const node = await startNode(cp!, { binDir, log: (l) => t.comment(l) });
  const work = mkdtempSync(join(tmpdir(), 'ovrt-cli-node-'));
  let agent: ChildProcess | undefined;
  try {
    const addon = await installAddon(t, cp!);
    // The plan key Secret as certs/gen.sh has it created: explain verifies with it.
    const secret = await kubeRequest(kc, 'POST', '/api/v1/namespaces/ovnkube-route/secrets', {
      body: {
        metadata: { name: 'ovnkube-route-plan-key' },
        data: { 'plan.key': readFileSync(join(addon.certDir, 'plan.key')).toString('base64') },
      },
    });
    t.equal(secret.status, 201, 'plan key Secret');
    const wh = await startWebhook({ kubeconfig: addon.kubeconfig, certDir: addon.certDir, args: ['--trusted-user', addon.user] });
    t.teardown(() => wh.stop('SIGKILL'));
    await registerWebhook(kc, wh.port, addon.certDir);
    // The agent (admin credentials here: its RBAC is node.test.ts's business), writing the
    // name of proto 111 where the DaemonSet mounts the host's rt_protos.d.
    const protos = join(work, 'rt_protos.d');
    const port = await freePort();
    agent = spawn(
      process.execPath,
      [
        cliPath,
        'agent',
        '--node-name',
        node.name,
        '--plan-key',
        join(addon.certDir, 'plan.key'),
        '--cni-cache-dir',
        CNI_CACHE_DIR,
        '--netns-dir',
        '/var/run/netns',
        '--state-dir',
        join(work, 'state'),
        '--kubeconfig',
        cp!.kubeconfigPath,
        '--metrics-addr',
        `127.0.0.1:${port}`,
        '--rt-protos-dir',
        protos,
      ],
      { stdio: ['ignore', 'ignore', openSync(join(work, 'agent.log'), 'w')], env: { ...process.env, NODE_NAME: '' } },
    );
    await until('the agent is ready', async () => (await httpGet(port, '/readyz')).status === 200, 60_000);
    t.match(
      readFileSync(join(protos, 'ovnkube-route.conf'), 'utf8'),
      /^111\tovnkube-route$/m,
      'the agent wrote the iproute2 name of proto 111',
    );

    const svc = await kubeRequest(kc, 'POST', '/api/v1/namespaces/default/services', {
      body: { metadata: { name: 'nginx' }, spec: { ports: [{ port: 80 }] } },
    });
    const svcIP = String(svc.body.spec.clusterIP);
    await createNamespace(kc, NS);
    await applyRoute(kc, 'cli', {
      route: [{ dst: '172.16.10.0/24', dev: 'eth1' }],
      svc: [{ namespace: 'default', name: 'nginx', dev: 'eth1' }],
    });
    t.equal((await kubeRequest(kc, 'POST', `/api/v1/namespaces/${NS}/pods`, { body: nodePod('web', node.name) })).status, 201);
    await waitPod(kc, NS, 'web', 'Running', podRunning);
    await until('the agent reports both routes applied', async () => {
      const p = await waitPod(kc, NS, 'web', 'read', () => true);
      const s = decodeInjectorStatus(p.metadata?.annotations?.[STATUS_ANNOTATION]);
      return s && s.applied === 2 && s.skipped.length === 0;
    });
    const admin = cp!.kubeconfigPath;

    await t.test('routes from a laptop (exec ip route) print the rows routes prints on the node', async (t) => {
      const remote = runCli(['routes', '--pod', `${NS}/web`, '--kubeconfig', admin, '--family', '4']);
      t.equal(remote.code, 0, remote.stderr);
      t.comment(`routes --pod ${NS}/web --kubeconfig (from a laptop):\n${remote.stdout}`);
      t.match(
        remote.stdout,
        /^pod cli-apps\/web \(exec ip route: read in container c with busybox ip, which prints no protocols \(Proto "\?"\); 2 route\(s\) marked ovnkube-route/,
      );
      const local = runCli(['routes', '--pod', `${NS}/web`, '--family', '4']);
      t.equal(local.code, 0, local.stderr);
      t.same(rows(remote.stdout), rows(local.stdout), 'the same rows, gateways, flags, devices and owners as netlink on the node');
      t.ok(rows(remote.stdout).includes(`${svcIP} 0.0.0.0 255.255.255.255 UH eth1 ovnkube-route`), 'the Service route, ours');
      t.ok(rows(remote.stdout).includes('172.16.10.0 0.0.0.0 255.255.255.0 U eth1 ovnkube-route'), 'the CIDR route, ours');
      t.ok(rows(remote.stdout).includes('0.0.0.0 169.254.1.1 0.0.0.0 UG eth0'), 'the CNI default route, not ours');
      const json = runCli(['routes', '--pod', 'web', '-n', NS, '--kubeconfig', admin, '-o', 'json']);
      const parsed = JSON.parse(json.stdout);
      t.equal(parsed.source, 'exec ip route');
      t.same(
        parsed.routes
          .filter((r: { owned: boolean }) => r.owned)
          .map((r: { dst: string }) => r.dst)
          .sort(),
        [`${svcIP}/32`, '172.16.10.0/24'].sort(),
      );
    });

    await t.test('exec forbidden: the routes the agent reports, and why', async (t) => {
      const sa = { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'viewer', namespace: 'default' } };
      t.equal((await kubeRequest(kc, 'POST', '/api/v1/namespaces/default/serviceaccounts', { body: sa })).status, 201);
      await kubeRequest(kc, 'POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', {
        body: { metadata: { name: 'cli-viewer' }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }] },
      });
      await kubeRequest(kc, 'POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
        body: {
          metadata: { name: 'cli-viewer' },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cli-viewer' },
          subjects: [{ kind: 'ServiceAccount', name: 'viewer', namespace: 'default' }],
        },
      });
      const viewer = await serviceAccountKubeConfig(cp!, 'default', 'viewer');
      const path = join(work, 'viewer.kubeconfig');
      writeFileSync(path, viewer.exportConfig());
      const r = runCli(['routes', '--pod', `${NS}/web`, '--kubeconfig', path, '--family', '4']);
      t.equal(r.code, 0, r.stderr);
      t.match(
        r.stdout,
        /agent report: not read from the pod \(.*forbidden \(HTTP 403\): exec needs "create pods\/exec" in namespace cli-apps.*\); only the routes of ovnkube-route the agent reports in force/,
      );
      t.same(
        rows(r.stdout),
        [`${svcIP} 0.0.0.0 255.255.255.255 UH eth1 ovnkube-route`, '172.16.10.0 0.0.0.0 255.255.255.0 U eth1 ovnkube-route'].sort(),
      );
      const strict = runCli(['routes', '--pod', `${NS}/web`, '--kubeconfig', path, '--from', 'exec']);
      t.equal(strict.code, 1, '--from exec fails instead');
      t.match(strict.stderr, /forbidden \(HTTP 403\)/);
      t.notMatch(strict.stderr, /\n\s+at /, 'no stack trace');
    });

    await t.test('explain a pod the add-on stamped and the agent served', async (t) => {
      const r = runCli(['explain', '--pod', `${NS}/web`, '--kubeconfig', admin, '-o', 'json']);
      t.equal(r.code, 0, r.stderr);
      const x = JSON.parse(r.stdout);
      t.same(
        x.trace.routes.map((rt: { route: string; selects: string; decidedBy: string }) => [rt.route, rt.selects, rt.decidedBy]),
        [['cli', 'yes', 'no include (every pod)']],
      );
      t.same(x.plan.routes, [
        { dst: `${svcIP}/32`, dev: 'eth1' },
        { dst: '172.16.10.0/24', dev: 'eth1' },
      ]);
      t.match(
        x.annotation,
        { present: true, equalsResolved: true, signature: 'ok' },
        "the webhook's annotation: the plan resolved now, signed with the cluster key",
      );
      t.match(x.agent, { node: node.name, applied: 2, skipped: [], matchesAnnotation: true, plan: x.planHash });
      const text = runCli(['explain', '--pod', `${NS}/web`, '--kubeconfig', admin]);
      t.match(
        text.stdout,
        /Agent report \(routes\.k8s\.ovn\.org\/status\):\n  node localhost, written .*\n  plan in force: [0-9a-f]{16} \(= the annotation's plan\)\n  routes applied: 2, skipped: 0/,
      );
    });
  } finally {
    if (agent && agent.exitCode === null) {
      const exited = new Promise((r) => agent!.once('exit', r));
      agent.kill('SIGTERM');
      await exited;
    }
    await node.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
