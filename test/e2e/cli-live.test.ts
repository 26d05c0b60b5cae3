// The live CLI commands against a real kube-apiserver (test/e2e/cli-fixture.ts puts the
// cluster state in): explain (text and JSON, kubeconfig/context/namespace handling, RBAC
// limits said plainly), plan without -f (one pod, --all as a table and as JSON, signing),
// routes --remote from the agent's report (no node here: the pods never run; the exec path
// is test/node-e2e/cli.test.ts), and the kubectl plugin.
import { mkdtempSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { PLAN_ANNOTATION } from '../../core/types.js';
import { serviceAccountKubeConfig } from '../cluster/helpers.js';
import { kubeRequest } from '../cluster/k8s.js';
import { withControlPlane } from '../cluster/tap.js';
import { runCli, runCliInProcess } from '../util/cli.js';
import { repoRoot } from '../util/fixtures.js';
import { NS, setupLiveFixture } from './cli-fixture.js';

const cp = await withControlPlane(t);
if (cp) {
  const tmp = mkdtempSync(join(tmpdir(), 'ovnkube-route-cli-live-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const f = await setupLiveFixture(cp.kc);
  const kc = cp.kubeconfigPath;
  const env = { HOME: tmp, KUBECONFIG: '' };
  // Most commands run in this process (main(), the same code path minus a process start: the
  // client library's load per spawn made this file slow on a loaded machine); KUBECONFIG
  // discovery and the plugin are checked with real processes.
  const cli = (args: string[], e: NodeJS.ProcessEnv = {}) => runCliInProcess(args, { env: { ...env, ...e } });
  const spawned = (args: string[], e: NodeJS.ProcessEnv = {}) => runCli(args, { env: { ...env, ...e } });

  await t.test('explain: every Route and what decided, conflicts, plan, annotation, agent, Events', async (t) => {
    const r = await cli(['explain', '--pod', `${NS}/web`, '--kubeconfig', kc]);
    t.equal(r.code, 0, r.stderr);
    t.comment(r.stdout);
    const o = r.stdout;
    t.match(o, /^Pod app\/web on node node-x /);
    t.match(o, /Mode: default \(Deployment ovnkube-route\/ovnkube-route-webhook args\)/, 'the mode as deploy/ runs the webhook');
    t.match(o, /pass +host-network +pod is not hostNetwork/);
    t.match(o, /a-svc +0 +yes +include\[1\] +included by include\[1\]: matches namespaces \[app\]/);
    t.match(o, /b-override +0 +yes +include\[0\] +included by include\[0\]: matches podSelector \{tier=web\}/);
    t.match(o, /c-excluded +0 +no +exclude\[0\] +excluded by exclude\[0\]: matches pods \[app\/web\] \(exclude wins over include\)/);
    t.match(
      o,
      /d-elsewhere +0 +no +include \(no term matched\) +not included: include\[0\]: namespace "app" labels do not match namespaceSelector \{team=red\}/,
    );
    t.match(
      o,
      /Conflicts \(resolved\):\n  destination 172\.16\.10\.0\/24: Route b-override \(spec\.route\[0\], priority 0\) wants eth0, Route a-svc \(spec\.route\[0\], priority 0\) wins with eth1/,
    );
    t.match(o, /Route a-svc: Service app\/missing: Service not found/);
    t.match(
      o,
      new RegExp(
        `Plan \\(resolved now, hash [0-9a-f]{16}\\):\\n  ${f.svcIP.replace(/\./g, '\\.')}/32 dev eth1 +from Route a-svc spec\\.svc\\[0\\] app/nginx\\n  172\\.16\\.10\\.0/24 dev eth1 +from Route a-svc spec\\.route\\[0\\]`,
      ),
    );
    t.match(
      o,
      new RegExp(
        `equals the plan resolved now\\n  signature: verified with key ${f.key.id} of Secret ovnkube-route/ovnkube-route-plan-key \\(plan\\.key\\)`,
      ),
    );
    t.match(
      o,
      /node node-x, written .*\n  plan in force: [0-9a-f]{16} \(= the annotation's plan\)\n  routes applied: 1, skipped: 1\n    172\.16\.10\.0\/24 dev eth1: missing-dev \(no interface eth1 in the netns\)\n  start: routes written during CNI ADD/,
    );
    t.match(
      o,
      /Events \(ovnkube-route\):\n  \S+  Warning RoutesSkipped \(ovnkube-route-injector, x2\): 172\.16\.10\.0\/24 dev eth1: missing-dev/,
    );
    t.notMatch(o, /BackOff/, "other components' Events are left out");

    const j = await cli(['explain', '--pod', `${NS}/web`, '--kubeconfig', kc, '-o', 'json']);
    t.equal(j.code, 0, j.stderr);
    const x = JSON.parse(j.stdout);
    t.same(x.plan, f.webPlan);
    t.same(
      x.trace.routes.map((r: { route: string; selects: string; decidedBy: string }) => [r.route, r.selects, r.decidedBy]),
      [
        ['a-svc', 'yes', 'include[1]'],
        ['b-override', 'yes', 'include[0]'],
        ['c-excluded', 'no', 'exclude[0]'],
        ['d-elsewhere', 'no', 'include (no term matched)'],
      ],
    );
    t.match(x.annotation, { present: true, equalsResolved: true, signature: 'ok', keyId: f.key.id });
    t.match(x.agent, { applied: 1, matchesAnnotation: true, start: { mode: 'cni' } });
    t.same(
      x.events.map((e: { reason: string }) => e.reason),
      ['RoutesSkipped'],
    );
  });

  await t.test('explain: a stale annotation, a forged signature, a hostNetwork pod', async (t) => {
    const stale = await cli(['explain', '--pod', `${NS}/stale`, '--kubeconfig', kc]);
    t.match(
      stale.stdout,
      /DIFFERS from the plan resolved now \(annotation hash [0-9a-f]{16}\)\n    - 172\.16\.10\.0\/24 dev eth0 +\(in the annotation, not resolved now\)/,
    );
    t.match(stale.stdout, /\+ 192\.168\.2\.0\/24 dev eth0 +\(resolved now, not in the annotation\)/);
    const forged = await cli(['explain', '--pod', `${NS}/forged`, '--kubeconfig', kc]);
    t.match(forged.stdout, /signature: REFUSED: unknown-key: plan is signed with key [0-9a-f]{12}, which is not one of the accepted keys/);
    const host = await cli(['explain', '--pod', `${NS}/host`, '--kubeconfig', kc]);
    t.match(
      host.stdout,
      /STOP +host-network +pod uses the host network \(hostNetwork: true\)\n\nRoutes \(4\) -- not used: a gate above stops the pod:/,
    );
    t.match(host.stdout, /Plan: none \(host-network: pod uses the host network/);
    t.match(host.stdout, /Annotation routes\.k8s\.ovn\.org\/plan:\n  absent \(as expected: no plan\)/);
    const gone = await cli(['explain', '--pod', `${NS}/nope`, '--kubeconfig', kc]);
    t.equal(gone.code, 1);
    t.match(gone.stderr, /pod app\/nope: not found \(context "ovnkube-route-test", server https:\/\/127\.0\.0\.1:\d+\)/);
  });

  await t.test("kubeconfig as kubectl finds it: KUBECONFIG, --context, -n, the context's namespace", async (t) => {
    // Two contexts: the current one points at a dead server, "live" at the test's (namespace app).
    const cfg = JSON.parse(cp.kc.exportConfig());
    const cluster = cfg.clusters[0];
    const user = cfg.users[0];
    cfg.clusters = [cluster, { name: 'dead', cluster: { server: 'https://127.0.0.1:1', 'insecure-skip-tls-verify': true } }];
    cfg.contexts = [
      { name: 'live', context: { cluster: cluster.name, user: user.name, namespace: NS } },
      { name: 'dead', context: { cluster: 'dead', user: user.name } },
    ];
    cfg['current-context'] = 'dead';
    const two = join(tmp, 'two.kubeconfig');
    writeFileSync(two, JSON.stringify(cfg));
    const viaEnv = spawned(['explain', '--pod', 'web', '--context', 'live', '-o', 'json'], { KUBECONFIG: `${join(tmp, 'absent')}:${two}` });
    t.equal(viaEnv.code, 0, viaEnv.stderr);
    t.equal(JSON.parse(viaEnv.stdout).pod, 'app/web', "KUBECONFIG list honoured, the context's namespace used for a bare name");
    const dead = await cli(['explain', '--pod', 'web'], { KUBECONFIG: two });
    t.equal(dead.code, 1);
    t.match(dead.stderr, /cannot reach the API server https:\/\/127\.0\.0\.1:1 \(context "dead" of KUBECONFIG=/);
    const ns = await cli(['explain', '--pod', 'stale', '-n', NS, '--kubeconfig', kc, '-o', 'json']);
    t.equal(JSON.parse(ns.stdout).pod, 'app/stale', '-n for a bare name');
    const home = join(tmp, 'home');
    mkdirSync(join(home, '.kube'), { recursive: true });
    writeFileSync(join(home, '.kube', 'config'), JSON.stringify({ ...cfg, 'current-context': 'live' }));
    const fromHome = await cli(['plan', '--pod', 'web'], { HOME: home });
    t.equal(fromHome.code, 0, fromHome.stderr);
    t.same(JSON.parse(fromHome.stdout), f.webPlan, '~/.kube/config');
  });

  await t.test('explain with less RBAC: says what it could not read', async (t) => {
    t.equal(
      (await kubeRequest(cp.kc, 'POST', '/api/v1/namespaces/default/serviceaccounts', { body: { metadata: { name: 'reader' } } })).status,
      201,
    );
    await kubeRequest(cp.kc, 'POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', {
      body: {
        metadata: { name: 'route-reader' },
        rules: [
          { apiGroups: [''], resources: ['pods', 'namespaces', 'services', 'events'], verbs: ['get', 'list'] },
          { apiGroups: ['k8s.ovn.org'], resources: ['routes'], verbs: ['get', 'list'] },
        ],
      },
    });
    await kubeRequest(cp.kc, 'POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      body: {
        metadata: { name: 'route-reader' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'route-reader' },
        subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: 'default' }],
      },
    });
    const path = join(tmp, 'reader.kubeconfig');
    writeFileSync(path, (await serviceAccountKubeConfig(cp, 'default', 'reader')).exportConfig());
    const r = await cli(['explain', '--pod', `${NS}/web`, '--kubeconfig', path]);
    t.equal(r.code, 0, r.stderr);
    t.match(
      r.stdout,
      /signature: NOT CHECKED \(plan key not readable: Secret ovnkube-route\/ovnkube-route-plan-key: forbidden \(HTTP 403\)/,
    );
    t.match(
      r.stdout,
      /Mode: default \(default \(Deployment ovnkube-route\/ovnkube-route-webhook: forbidden \(HTTP 403\).*; give --mode\)\)/,
    );
    t.match(r.stdout, /equals the plan resolved now/, 'the rest is still explained');
    const given = await cli(['explain', '--pod', `${NS}/web`, '--kubeconfig', path, '--mode', 'opt-in']);
    t.match(
      given.stdout,
      /Mode: opt-in \(--mode\)\n[\s\S]*STOP +not-opted-in +opt-in mode: neither the pod nor its namespace is labelled routes\.k8s\.ovn\.org\/inject=enabled/,
    );
  });

  await t.test('plan from the live cluster: one pod, signed, and --all as a table and JSON', async (t) => {
    const one = await cli(['plan', '--pod', `${NS}/web`, '--kubeconfig', kc]);
    t.equal(one.code, 0, one.stderr);
    t.same(JSON.parse(one.stdout), f.webPlan);
    t.match(one.stderr, /mode: default \(Deployment ovnkube-route\/ovnkube-route-webhook args\)/);
    t.match(one.stderr, /warning: app\/web: conflict: destination 172\.16\.10\.0\/24/);
    const keyFile = join(tmp, 'plan.key');
    writeFileSync(keyFile, f.keyText);
    const signed = await cli(['plan', '--pod', `${NS}/web`, '--kubeconfig', kc, '--key', keyFile]);
    const pod = await kubeRequest(cp.kc, 'GET', `/api/v1/namespaces/${NS}/pods/web`);
    t.equal(signed.stdout.trim(), pod.body.metadata.annotations[PLAN_ANNOTATION], 'byte for byte what the webhook writes');
    const table = await cli(['plan', '--all', '--kubeconfig', kc]);
    t.equal(table.code, 0, table.stderr);
    const lines = table.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(/ {2,}/));
    t.same(lines[0], ['POD', 'NODE', 'PLAN', 'ROUTES', 'ANNOTATION', 'SIGNED BY', 'AGENT']);
    const row = (p: string) => lines.find((l) => l[0] === p);
    t.match(row('app/web'), ['app/web', 'node-x', /^[0-9a-f]{16}$/, '2', '=', f.key.id, "annotation's plan: 1 applied, 1 skipped"]);
    t.match(row('app/stale'), [
      'app/stale',
      'node-x',
      /^[0-9a-f]{16}$/,
      '3',
      'differs',
      f.key.id,
      "annotation's plan: 1 applied, 0 skipped",
    ]);
    t.same(row('app/host'), ['app/host', 'node-x', 'skipped: host-network', '0', '-', '-', '-']);
    t.not(row('app/forged')![5], f.key.id, "the forged pod's key id is another");
    t.ok(
      lines.some((l) => l[0]?.startsWith('ovnkube-route/') === false),
      'pods of every namespace',
    );
    const json = await cli(['plan', '--all', '-n', NS, '--kubeconfig', kc, '-o', 'json']);
    const all = JSON.parse(json.stdout);
    t.same(Object.keys(all), ['app/forged', 'app/host', 'app/stale', 'app/web']);
    t.same(all['app/web'], f.webPlan);
    t.same(all['app/host'], { skipped: 'pod uses the host network (hostNetwork: true)' });
  });

  await t.test("routes --remote: a pod that is not running is read from the agent's report", async (t) => {
    const r = await cli(['routes', '--pod', `${NS}/web`, '--kubeconfig', kc, '--family', '4']);
    t.equal(r.code, 0, r.stderr);
    t.match(
      r.stdout,
      /^pod app\/web \(agent report: not read from the pod \(pod is Pending: cannot exec\); only the routes of ovnkube-route the agent reports in force: node node-x reported at/,
    );
    t.match(
      r.stdout,
      new RegExp(
        `Kernel IP routing table\\nDestination +Gateway +Genmask +Flags Metric Iface +Proto +Owner\\n${f.svcIP.replace(/\./g, '\\.')} +0\\.0\\.0\\.0 +255\\.255\\.255\\.255 UH +0 +eth1 +111 +ovnkube-route\\n$`,
      ),
      'the applied route only: the skipped one is not in place',
    );
    const exec = await cli(['routes', '--pod', `${NS}/web`, '--kubeconfig', kc, '--from', 'exec']);
    t.equal(exec.code, 1);
    t.match(exec.stderr, /pod app\/web: cannot read its routing table with exec: pod is Pending: cannot exec/);
  });

  await t.test('the kubectl plugin runs the same commands', async (t) => {
    const bin = join(tmp, 'bin');
    mkdirSync(bin, { recursive: true });
    symlinkSync(join(repoRoot, 'dist', 'bin', 'kubectl-ovnkube_route.js'), join(bin, 'kubectl-ovnkube_route'));
    const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
    const [cmd, pre] = kubectl.status === 0 ? ['kubectl', ['ovnkube-route']] : ['kubectl-ovnkube_route', []];
    const r = spawnSync(cmd, [...pre, 'explain', '--pod', `${NS}/web`, '--kubeconfig', kc, '-o', 'json'], {
      encoding: 'utf8',
      env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` },
      timeout: 60_000,
    });
    t.equal(r.status, 0, r.stderr);
    t.same(JSON.parse(r.stdout).plan, f.webPlan, `${cmd} ${pre.join(' ')} explain`);
  });

  await t.test('explain during a key rotation names the Secret entry that holds the verifying key', async (t) => {
    // docs/troubleshooting.md, key rotation step 1: a second entry next to plan.key. Before,
    // explain listed every entry, as if the key were in each ("(plan-next.key, plan.key)").
    const path = '/api/v1/namespaces/ovnkube-route/secrets/ovnkube-route-plan-key';
    const next = Buffer.from(Buffer.alloc(32, 9).toString('base64') + '\n').toString('base64');
    const add = await kubeRequest(cp.kc, 'PATCH', path, {
      body: [{ op: 'add', path: '/data/plan-next.key', value: next }],
      contentType: 'application/json-patch+json',
    });
    t.equal(add.status, 200, 'plan-next.key added to the Secret');
    try {
      const r = await cli(['explain', '--pod', `${NS}/web`, '--kubeconfig', kc]);
      t.equal(r.code, 0, r.stderr);
      t.match(
        r.stdout,
        new RegExp(
          `signature: verified with key ${f.key.id} of Secret ovnkube-route/ovnkube-route-plan-key \\(plan\\.key; the Secret also holds plan-next\\.key\\)`,
        ),
      );
      const j = JSON.parse((await cli(['explain', '--pod', `${NS}/web`, '--kubeconfig', kc, '-o', 'json'])).stdout);
      t.same(j.keys.entries[f.key.id], ['plan.key'], 'JSON: the entries holding each key id');
      t.equal(Object.keys(j.keys.entries).length, 2, 'two keys');
    } finally {
      const rm = await kubeRequest(cp.kc, 'PATCH', path, {
        body: [{ op: 'remove', path: '/data/plan-next.key' }],
        contentType: 'application/json-patch+json',
      });
      t.equal(rm.status, 200, 'plan-next.key removed again');
    }
  });
}
