// The whole local cluster itself (test/cluster/cluster.ts): what production gives an add-on
// works here — the scheduler places pods, kube-controller-manager makes ServiceAccounts and
// EndpointSlices, kube-proxy (iptables) takes pods and the host to the API server through the
// `kubernetes` Service — traffic to the Service range that no rule handles goes into the sink
// link (never off the machine), and stop() or, after a crash, the node's reaper leave nothing
// on the host: no link, no KUBE-SERVICES chain, no bind mounts, no CNI folders, no processes.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import {
  CLUSTER_API_ADDRESS,
  CLUSTER_LINK,
  CLUSTER_SERVICE_CIDR,
  clusterBinaries,
  HOST_CNI_DIRS,
  startCluster,
  type LocalCluster,
} from '../cluster/cluster.js';
import { firstServiceIP } from '../cluster/controlplane.js';
import { kubeRequest } from '../cluster/k8s.js';
import { nodeUnavailable, reapNode } from '../cluster/node.js';
import { nodePod, podExec, podRunning, waitPod } from '../cluster/pods.js';
import { alive } from '../cluster/procs.js';
import { tierGate } from '../util/tier.js';
import { INSTALL_TIER } from './tier.js';

const svcIP = firstServiceIP(CLUSTER_SERVICE_CIDR);
const natServices = () => spawnSync('iptables', ['-w', '-t', 'nat', '-S', 'KUBE-SERVICES'], { encoding: 'utf8' });
const mounted = (dir: string) =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === dir);
const componentPids = (c: LocalCluster) =>
  ['kube-controller-manager', 'kube-scheduler', 'kube-proxy'].map((n) => Number(readFileSync(join(c.cp.dir, `${n}.pid`), 'utf8').trim()));

/** Everything the cluster put on the host is gone. */
function nothingLeft(t: Test, pids: number[]): void {
  t.not(spawnSync('ip', ['link', 'show', CLUSTER_LINK]).status, 0, `no ${CLUSTER_LINK} link`);
  t.notMatch(spawnSync('ip', ['route', 'show', CLUSTER_SERVICE_CIDR], { encoding: 'utf8' }).stdout, /dev/, 'no route of the Service range');
  t.not(natServices().status, 0, 'no KUBE-SERVICES chain (kube-proxy --cleanup ran)');
  for (const d of Object.values(HOST_CNI_DIRS)) t.notOk(mounted(d) || existsSync(d), `${d} neither mounted nor left`);
  t.same(pids.filter(alive), [], 'kube-controller-manager, kube-scheduler and kube-proxy are gone');
}

function httpsStatus(url: string, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, timeout: 10_000, servername: 'kubernetes.default.svc' }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

const bins = await clusterBinaries();
if ('fatal' in bins && bins.fatal) throw new Error(`cluster binaries: ${bins.reason}`);
if (tierGate(t, INSTALL_TIER, nodeUnavailable() ?? ('reason' in bins ? bins.reason : null)) && !('reason' in bins)) {
  await t.test('a whole cluster: scheduler, controllers, kube-proxy, and a clean stop', async (t) => {
    const c = await startCluster(bins, { log: (l) => t.comment(l) });
    let pids: number[] = [];
    try {
      pids = componentPids(c);
      const kc = c.cp.kc;
      t.match(
        spawnSync('ip', ['route', 'get', '10.98.255.254'], { encoding: 'utf8' }).stdout,
        new RegExp(`dev ${CLUSTER_LINK}`),
        'a Service address no rule handles is routed into the sink link, not off the machine',
      );
      t.equal(
        await httpsStatus(`https://${svcIP}/readyz`, c.cp.caPem),
        200,
        `the host reaches the API server at the kubernetes Service ${svcIP} (kube-proxy OUTPUT rules)`,
      );
      const pod = nodePod('probe', 'unused', { eth1: false });
      delete pod.spec!.nodeName;
      pod.spec!.automountServiceAccountToken = true;
      t.equal((await kubeRequest(kc, 'POST', '/api/v1/namespaces/default/pods', { body: pod })).status, 201);
      const running = await waitPod(kc, 'default', 'probe', 'Running', podRunning, 120_000);
      t.equal(running.spec?.nodeName, c.node.name, 'kube-scheduler placed the pod');
      t.equal(
        running.spec?.serviceAccountName,
        'default',
        'the ServiceAccount admission gave it the default ServiceAccount (made by kube-controller-manager)',
      );
      const token = await podExec(kc, 'default', 'probe', 'c', ['cat', '/var/run/secrets/kubernetes.io/serviceaccount/namespace']);
      t.equal(token.stdout, 'default', 'its token volume is mounted');
      const env = await podExec(kc, 'default', 'probe', 'c', ['sh', '-c', 'echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT']);
      t.equal(env.stdout.trim(), `${svcIP}:443`, 'in-cluster config points at the kubernetes Service');
      const nc = await podExec(kc, 'default', 'probe', 'c', ['sh', '-c', `nc -w 5 ${svcIP} 443 </dev/null && echo connected`]);
      t.equal(nc.stdout.trim(), 'connected', 'the pod reaches the API server through the Service (kube-proxy PREROUTING rules)');
      // A Service with no endpoints: kube-proxy rejects its traffic, so the connect fails at once.
      const svc = await kubeRequest(kc, 'POST', '/api/v1/namespaces/default/services', {
        body: {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name: 'nobody' },
          spec: { selector: { app: 'nobody' }, ports: [{ port: 80 }] },
        },
      });
      t.equal(svc.status, 201);
      const ip = svc.body.spec.clusterIP as string;
      await new Promise<void>((resolve, reject) => {
        const deadline = Date.now() + 60_000;
        const poll = () => {
          if (
            natServices().stdout.includes(`${ip}/32`) ||
            spawnSync('iptables', ['-w', '-S', 'KUBE-SERVICES'], { encoding: 'utf8' }).stdout.includes(`${ip}/32`)
          )
            resolve();
          else if (Date.now() > deadline) reject(new Error(`kube-proxy has no rule for ${ip} after 60 s`));
          else setTimeout(poll, 300);
        };
        poll();
      });
      const refused = await podExec(kc, 'default', 'probe', 'c', ['sh', '-c', `nc -w 5 ${ip} 80 </dev/null; echo rc=$?`]);
      t.match(refused.stdout, /rc=1/, "a Service without endpoints is refused by kube-proxy's rule");
      t.ok(mounted(HOST_CNI_DIRS.bin) && mounted(HOST_CNI_DIRS.conf), "the usual CNI folders are the node's while the cluster runs");
      t.ok(existsSync(join(HOST_CNI_DIRS.conf, '00-multus.conf')), "and show the node's network configuration");
    } finally {
      await c.stop();
    }
    nothingLeft(t, pids);
  });

  await t.test('after a crash, the node reaper removes what the cluster put on the host', async (t) => {
    const c = await startCluster(bins, { log: (l) => t.comment(l) });
    const pids = componentPids(c);
    try {
      t.equal(natServices().status, 0, 'kube-proxy made its chains');
      // What the node's watchdog (or the next node start, or `npm run node:down`) runs once
      // this process is gone; kubelet and containerd keep running meanwhile.
      const did = reapNode((l) => t.comment(l));
      t.ok(
        did.some((d) => d.startsWith('removed: ') && d.includes('kube-proxy --cleanup')),
        'the recorded kube-proxy cleanup ran',
      );
      nothingLeft(t, pids);
    } finally {
      await c.stop();
    }
  });
}
