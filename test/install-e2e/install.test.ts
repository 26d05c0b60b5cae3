// The add-on installed as users install it, on a whole local cluster (test/cluster/cluster.ts:
// kube-apiserver, etcd, kube-controller-manager, kube-scheduler, kube-proxy in iptables mode,
// and a real kubelet + containerd + Multus node), from the image assembled in code
// (test/cluster/addon-image.ts, imported into the node's containerd as ovnkube-route:0.1.0):
//   certs/gen.sh into a folder outside the repository, the two Secrets, `kubectl apply -f
//   crds/`, `kubectl apply -f deploy/`, the caBundle patch (the README's steps, literally);
//   the webhook Deployment (2 replicas) and the agent DaemonSet come up as real pods that
//   reach the API server through the `kubernetes` Service with their own tokens (RBAC and the
//   ValidatingAdmissionPolicy in force), under Pod Security `baseline` by default;
//   a pod is stamped by the webhook through its Service, its routes appear inside it, a live
//   Route edit moves them;
//   scripts/uninstall.sh then puts every pod back to exactly its CNI routes (the replaced
//   default route restored) and removes the add-on.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { PLAN_ANNOTATION, STATUS_ANNOTATION, type Pod } from '../../core/types.js';
import { cleanAgentHostDirs, installFromDeploy } from '../cluster/addon-install.js';
import { clusterBinaries, HOST_CNI_DIRS, startCluster, type LocalCluster } from '../cluster/cluster.js';
import { kubeRequest } from '../cluster/k8s.js';
import { nodeUnavailable } from '../cluster/node.js';
import { nodePod, podExec, podRunning, waitPod } from '../cluster/pods.js';
import { repoRoot } from '../util/fixtures.js';
import { tierGate } from '../util/tier.js';

import { INSTALL_TIER } from './tier.js';
const NS = 'ovnkube-route';
/** Where the agent (state dir /var/lib/ovnkube-route, a hostPath) keeps the original default routes it replaced. */
const SAVED_DEFAULTS = '/var/lib/ovnkube-route/agent/defaults';
const APPS = 'install-apps';
/** The CNI rows of a new pod (node.ts), what uninstall must leave: `dst[ via gw] dev`. */
const CNI_ROWS = [
  '10.124.0.0/16 via 10.124.2.1 dev eth1',
  '10.124.2.0/24 dev eth1',
  '169.254.1.1 dev eth0',
  'default via 169.254.1.1 dev eth0',
];

/** `dst[ via gw] dev` of each line of busybox `ip route` inside a pod, sorted. */
export function insideRoutes(text: string): string[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const m = /^(\S+)(?: via (\S+))? dev (\S+)/.exec(l.trim());
      return m ? `${m[1]}${m[2] ? ` via ${m[2]}` : ''} dev ${m[3]}` : `? ${l}`;
    })
    .sort();
}

export async function podRoutes(c: LocalCluster, ns: string, pod: string): Promise<{ rows: string[]; raw: string }> {
  const r = await podExec(c.cp.kc, ns, pod, 'c', ['ip', 'route']);
  if (r.status !== 'Success') throw new Error(`ip route in ${ns}/${pod}: ${r.status} ${r.message ?? ''} ${r.stderr}`);
  return { rows: insideRoutes(r.stdout), raw: r.stdout };
}

export async function until<T>(what: string, cond: () => Promise<T | undefined | false> | T | undefined | false, ms = 120_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`${what}: not after ${ms / 1000} s${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Run kubectl and fail the test with its output when it fails. */
export function kubectlOk(t: Test, c: LocalCluster, args: string[], input?: string): string {
  const r = c.kubectl(args, input);
  t.equal(r.status, 0, `kubectl ${args.join(' ')}`, r.status === 0 ? {} : { stderr: r.stderr.slice(-3000), stdout: r.stdout.slice(-1000) });
  return r.stdout;
}

/** The app pod: scheduled by kube-scheduler (no nodeName), eth0 and eth1. */
export function appPod(name: string): Pod {
  const p = nodePod(name, 'unused');
  delete p.spec!.nodeName;
  return p;
}

/** Pods' routes, a live edit, then uninstall; shared by the kubectl and the helm paths. */
export async function exerciseAddon(
  t: Test,
  c: LocalCluster,
  uninstall: () => { status: number | null; stdout: string; stderr: string },
): Promise<void> {
  const kc = c.cp.kc;
  kubectlOk(t, c, ['create', 'namespace', APPS]);
  const route = {
    apiVersion: 'k8s.ovn.org/v1',
    kind: 'Route',
    metadata: { name: 'install-demo' },
    spec: { route: [{ dst: '172.16.10.0/24', dev: 'eth1' }], svc: [], feature_gate: {}, defaultRoute: { dev: 'eth1', via: '10.124.2.1' } },
  };
  kubectlOk(t, c, ['apply', '-f', '-'], JSON.stringify(route));
  const created = await kubeRequest(kc, 'POST', `/api/v1/namespaces/${APPS}/pods`, { body: appPod('app') });
  t.equal(created.status, 201, 'the app pod is created');
  t.ok(
    created.body?.metadata?.annotations?.[PLAN_ANNOTATION],
    'admission stamped it: the API server called the webhook through its Service',
  );
  const pod = await waitPod(kc, APPS, 'app', 'Running', podRunning, 120_000);
  t.equal(pod.spec?.nodeName, c.node.name, 'kube-scheduler placed it on the node');
  const want = [
    '10.124.0.0/16 via 10.124.2.1 dev eth1',
    '10.124.2.0/24 dev eth1',
    '169.254.1.1 dev eth0',
    '172.16.10.0/24 dev eth1',
    'default via 10.124.2.1 dev eth1',
  ];
  const applied = await until('the Route in the pod', async () => {
    const r = await podRoutes(c, APPS, 'app');
    return JSON.stringify(r.rows) === JSON.stringify(want) ? r : undefined;
  });
  t.same(applied.rows, want, 'inside the pod: the CIDR on eth1 and the default route replaced by eth1');
  const status0 = JSON.parse(
    (await kubeRequest(kc, 'GET', `/api/v1/namespaces/${APPS}/pods/app`)).body.metadata.annotations[STATUS_ANNOTATION],
  );
  t.match(
    status0,
    { applied: 2, skipped: [], start: { mode: 'cni' } },
    'the agent wrote them during CNI ADD, through its chained CNI plugin',
  );
  t.equal(
    readdirSync(SAVED_DEFAULTS).filter((f) => f.endsWith('.default-v4.json')).length,
    1,
    "the agent saved the pod's original default route in its state dir (a hostPath)",
  );

  kubectlOk(t, c, [
    'patch',
    'route',
    'install-demo',
    '--type=merge',
    '-p',
    JSON.stringify({ spec: { route: [{ dst: '172.16.10.0/24', dev: 'eth0' }] } }),
  ]);
  const moved = await until('the live edit in the pod', async () => {
    const r = await podRoutes(c, APPS, 'app');
    return r.rows.includes('172.16.10.0/24 dev eth0') ? r : undefined;
  });
  t.notOk(moved.rows.includes('172.16.10.0/24 dev eth1'), 'a live Route edit moved the CIDR to eth0 in the running pod');
  const status = JSON.parse(
    (await kubeRequest(kc, 'GET', `/api/v1/namespaces/${APPS}/pods/app`)).body.metadata.annotations[STATUS_ANNOTATION],
  );
  t.equal(status.node, c.node.name, 'the agent (a DaemonSet pod) reported on the pod');

  const u = uninstall();
  t.equal(u.status, 0, 'the uninstall procedure succeeds', { stderr: u.stderr.slice(-3000) });
  const after = await podRoutes(c, APPS, 'app');
  t.same(after.rows, CNI_ROWS, 'after uninstall the pod has exactly its CNI routes: ours removed, the default route restored');
  const left = await kubeRequest(kc, 'GET', `/api/v1/namespaces/${APPS}/pods/app`);
  t.notOk(left.body.metadata.annotations?.[PLAN_ANNOTATION], 'the pod carries no plan');
  await until('the add-on namespace gone', async () => (await kubeRequest(kc, 'GET', `/api/v1/namespaces/${NS}`)).status === 404);
  t.equal(
    (await kubeRequest(kc, 'GET', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/ovnkube-route')).status,
    404,
    'no webhook configuration left',
  );
  const conf = readdirSync(HOST_CNI_DIRS.conf)
    .map((f) => readFileSync(join(HOST_CNI_DIRS.conf, f), 'utf8'))
    .join('\n');
  t.notMatch(conf, /"type": *"ovnkube-route-cni"/, "the agent took its CNI plugin out of the node's network config");
  t.match(conf, /"type": *"multus"/, "and left the node's own network config in place");
  t.notOk(existsSync(join(HOST_CNI_DIRS.bin, 'ovnkube-route-cni')), 'and removed its CNI plugin binary');
  t.same(
    existsSync(SAVED_DEFAULTS) ? readdirSync(SAVED_DEFAULTS) : [],
    [],
    "no saved default route is left in the agent's state dir: every one was restored",
  );
  kubectlOk(t, c, ['delete', 'namespace', APPS, '--wait=true', '--timeout=120s']);
}

const bins = await clusterBinaries();
const why = nodeUnavailable() ?? ('reason' in bins ? bins.reason : null);
if ('fatal' in bins && bins.fatal) throw new Error(`cluster binaries: ${bins.reason}`);
if (tierGate(t, INSTALL_TIER, why) && !('reason' in bins)) {
  await t.test('kubectl apply -f deploy/, then helm install, on a whole local cluster', async (t) => {
    const work = mkdtempSync(join(tmpdir(), 'ovrt-install-e2e-'));
    const c = await startCluster(bins, { log: (l) => t.comment(l) });
    t.teardown(async () => {
      await c.stop();
      rmSync(work, { recursive: true, force: true });
    });
    cleanAgentHostDirs();
    // The README's steps (certs/gen.sh prints the same commands), both rollouts included.
    const installed = installFromDeploy(c, repoRoot, work, (l) => t.comment(l));
    t.ok(existsSync(join(installed.certs, 'plan.key')), 'certs/gen.sh wrote the plan key outside the repository');
    t.notOk(existsSync(join(repoRoot, 'certs', 'out')), 'no key is written into the repository');
    const events = () =>
      c
        .kubectl(['-n', NS, 'get', 'events', '--sort-by=.lastTimestamp'])
        .stdout.split('\n')
        .filter((l) => /Warning/.test(l))
        .join('\n')
        .slice(-4000);
    const dep = (await kubeRequest(c.cp.kc, 'GET', `/apis/apps/v1/namespaces/${NS}/deployments/ovnkube-route-webhook`)).body;
    t.equal(dep.status?.readyReplicas, 2, 'two webhook replicas are ready');
    const dset = (await kubeRequest(c.cp.kc, 'GET', `/apis/apps/v1/namespaces/${NS}/daemonsets/ovnkube-route-injector`)).body;
    t.equal(dset.status?.numberReady, 1, 'the agent runs on the node');
    const uninstall = () => {
      const r = spawnSync('bash', [join(repoRoot, 'scripts', 'uninstall.sh'), '--timeout', '120'], {
        encoding: 'utf8',
        timeout: 300_000,
        env: { ...process.env, KUBECONFIG: c.cp.kubeconfigPath, KUBECTL: join(c.binDir, 'kubectl') },
      });
      t.comment(r.stderr.trim());
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    await exerciseAddon(t, c, uninstall);

    // The same, installed with the Helm chart on the same cluster (the uninstall above left
    // it clean: checked there).
    const helmEnv = {
      HELM_CACHE_HOME: join(work, 'helm-cache'),
      HELM_CONFIG_HOME: join(work, 'helm-config'),
      HELM_DATA_HOME: join(work, 'helm-data'),
    };
    kubectlOk(t, c, ['apply', '-f', join(repoRoot, 'deploy', 'namespace.yaml')]);
    const chart = join(repoRoot, 'deploy', 'helm', 'ovnkube-route');
    const inst = c.helm(['install', 'ovnkube-route', chart, '--namespace', NS, '--wait', '--timeout', '150s']);
    t.equal(inst.status, 0, 'helm install', { stdout: inst.stdout.slice(-2000), stderr: inst.stderr.slice(-3000), events: events() });
    const hdep = (await kubeRequest(c.cp.kc, 'GET', `/apis/apps/v1/namespaces/${NS}/deployments/ovnkube-route-webhook`)).body;
    t.equal(hdep.status?.readyReplicas, 2, 'helm: two webhook replicas are ready');
    const hds = c.kubectl(['-n', NS, 'rollout', 'status', 'daemonset/ovnkube-route-injector', '--timeout=120s']);
    t.equal(hds.status, 0, 'helm: the agent DaemonSet is ready', { stderr: hds.stderr, events: events() });
    await exerciseAddon(t, c, () => {
      const r = spawnSync('bash', [join(repoRoot, 'scripts', 'uninstall.sh'), '--helm', 'ovnkube-route', '--timeout', '120'], {
        encoding: 'utf8',
        timeout: 300_000,
        env: {
          ...process.env,
          ...helmEnv,
          KUBECONFIG: c.cp.kubeconfigPath,
          KUBECTL: join(c.binDir, 'kubectl'),
          HELM: join(c.binDir, 'helm'),
        },
      });
      t.comment(r.stderr.trim());
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    });
  });
}
