/**
 * A whole local cluster on this machine: the control plane of controlplane.ts, the real node
 * of node.ts, and the rest of what production has, built from the same module graph
 * (scripts/controlplane/go.mod): kube-controller-manager (service-account tokens, the
 * Deployment/ReplicaSet/DaemonSet controllers, EndpointSlices, garbage collection),
 * kube-scheduler, and kube-proxy in iptables mode. So an add-on installed with
 * `kubectl apply` runs as it does in production: its pods are scheduled, get tokens, reach the
 * API server through the `kubernetes` Service, and the API server calls the webhook through
 * its Service.
 *
 * Host network (all on this machine, all undone by stop() or, after a crash, by the next
 * node start through the node's state file):
 *   - a sink link `ovnkr-api0` (ifb) holding CLUSTER_API_ADDRESS (10.85.255.1/32): the API server
 *     listens there only (pods cannot reach 127.0.0.1 of the host), and the `kubernetes`
 *     Service's endpoint is that address;
 *   - the Service range CLUSTER_SERVICE_CIDR routed to that sink link: a ClusterIP that
 *     kube-proxy has no rule for is dropped there, never sent off the machine (kube-proxy's
 *     OUTPUT and PREROUTING DNAT rules turn Service traffic into pod or API traffic first);
 *   - kube-proxy's KUBE-* chains (removed with `kube-proxy --cleanup`);
 *   - /opt/cni/bin and /etc/cni/net.d, bind mounts of the node's private CNI folders, so that
 *     a DaemonSet's hostPaths of the usual CNI folders reach this node's CNI configuration
 *     (created only when absent on the host, and removed again).
 * Nodeports listen on CLUSTER_API_ADDRESS only; every component's own port is on 127.0.0.1.
 * Pod Security admission enforces `baseline` by default (namespaces may say otherwise with the
 * pod-security.kubernetes.io labels), as hardened clusters do.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { request } from 'node:https';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { findBinaries } from './binaries.js';
import { firstServiceIP, startControlPlane, type ControlPlane } from './controlplane.js';
import { kubeRequest } from './k8s.js';
import { recordNodeCleanup, startNode, takeNodeLock, type RealNode } from './node.js';
import { logTail, startServer, stopGroup, type ServerProcess } from './procs.js';
import { freePorts } from '../util/http.js';

export const CLUSTER_API_ADDRESS = '10.85.255.1';
/** Distinct from the plain control plane's 10.96.0.0/16, which other tiers blackhole on the host. */
export const CLUSTER_SERVICE_CIDR = '10.98.0.0/16';
export const CLUSTER_LINK = 'ovnkr-api0';
/** The usual CNI folders that DaemonSets mount; bind mounts of the node's own while the cluster runs. */
export const HOST_CNI_DIRS = { bin: '/opt/cni/bin', conf: '/etc/cni/net.d' } as const;

export interface LocalCluster {
  cp: ControlPlane;
  node: RealNode;
  /** Folder of kubectl, helm and the cluster binaries. */
  binDir: string;
  /** Run kubectl against the cluster as admin (the built kubectl); never throws. */
  kubectl(args: string[], input?: string): { status: number | null; stdout: string; stderr: string };
  /** Run helm against the cluster as admin (the built helm, its folders in the control plane's); never throws. */
  helm(args: string[]): { status: number | null; stdout: string; stderr: string };
  /** Import an OCI layout tarball into the node's containerd (k8s.io namespace). */
  importImage(tarball: string): void;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  log?: (line: string) => void;
  readyTimeoutMs?: number;
  /**
   * Leave every process running when this process exits (`npm run cluster:up -- --with-addon`):
   * no watchdogs; the control plane's folder is `dir` and the node holds the lock by its
   * kubelet's pid. `cluster:down` (scripts/controlplane/cluster-down.mjs) removes it all.
   */
  keep?: boolean;
  /** The control plane's folder (its pid files, logs, kubeconfig); with `keep`, required. */
  dir?: string;
}

const ip = (args: string[]) => spawnSync('ip', args, { encoding: 'utf8' });

function must(cmd: string, args: string[], what: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw new Error(`${what}: cannot run ${cmd}: ${r.error.message}`, { cause: r.error });
  if (r.status !== 0)
    throw new Error(`${what}: ${cmd} ${args.join(' ')} exited with ${r.status}: ${(r.stderr || r.stdout).trim().slice(-2000)}`);
  return r.stdout;
}

/** Why the binaries of a whole cluster cannot be had, or their folders. */
export async function clusterBinaries(): Promise<{ cp: string; node: string; cluster: string } | { reason: string; fatal?: boolean }> {
  const out: Record<string, string> = {};
  for (const set of ['controlplane', 'node', 'cluster'] as const) {
    const f = await findBinaries({ allowBuild: false, set });
    if (f.dir === null) return { reason: `${set}: ${f.reason}`, ...(f.fatal ? { fatal: true } : {}) };
    out[set] = f.dir;
  }
  return { cp: out.controlplane!, node: out.node!, cluster: out.cluster! };
}

/** Whether https://127.0.0.1:<port>/healthz answers 200 (a component's own self-signed serving cert). */
function healthz(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/healthz', rejectUnauthorized: false, timeout: 3000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

async function until(what: string, cond: () => Promise<boolean> | boolean, ms: number, proc?: ServerProcess): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline)
      throw new Error(`${what}: not after ${ms / 1000} s${proc ? `; last lines of ${proc.logPath}:\n${logTail(proc.logPath, 30)}` : ''}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/**
 * Start the whole cluster (takes the one-node-per-machine lock first, so it waits for any
 * other node of this machine) and wait until it works: the node Ready, the `default`
 * ServiceAccount made by kube-controller-manager, the `kubernetes` Service's EndpointSlice,
 * kube-proxy's rules for it, and a scheduler that answers.
 */
export async function startCluster(bins: { cp: string; node: string; cluster: string }, opts: ClusterOptions = {}): Promise<LocalCluster> {
  const log = opts.log ?? (() => {});
  const timeout = opts.readyTimeoutMs ?? 180_000;
  const keep = opts.keep ?? false;
  if (keep && !opts.dir) throw new Error('startCluster: keep needs a dir (where cluster:down finds the pid files)');
  await takeNodeLock(log, 15 * 60_000);
  // A link left by a crashed run (its node state, if any, is reaped by startNode).
  if (ip(['link', 'show', CLUSTER_LINK]).status === 0) ip(['link', 'del', CLUSTER_LINK]);
  // An ifb link: like a dummy one (this kernel has no dummy driver), it drops whatever is
  // sent to it that tc did not redirect there.
  must('ip', ['link', 'add', CLUSTER_LINK, 'type', 'ifb'], 'the API address link');
  must('ip', ['addr', 'add', `${CLUSTER_API_ADDRESS}/32`, 'dev', CLUSTER_LINK], 'the API address');
  must('ip', ['link', 'set', CLUSTER_LINK, 'up'], 'the API address link up');
  must('ip', ['route', 'add', CLUSTER_SERVICE_CIDR, 'dev', CLUSTER_LINK], 'the Service range route');
  let cp: ControlPlane | undefined;
  let node: RealNode | undefined;
  const procs: ServerProcess[] = [];
  const mounted: string[] = [];
  const created: string[] = [];
  let stopped: Promise<void> | null = null;
  let psaDir: string | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      // The controllers first (or they would re-create the pods the node's drain deletes), and
      // kube-proxy (its rules go with --cleanup, run by the node's teardown).
      for (const p of [...procs].reverse()) await stopGroup(p.pid, p.child, 10_000);
      if (node) await node.stop();
      else {
        for (const m of mounted.reverse()) spawnSync('umount', [m]);
        for (const d of created.reverse()) {
          try {
            rmdirSync(d);
          } catch {
            /* not empty or gone */
          }
        }
        ip(['link', 'del', CLUSTER_LINK]);
      }
      if (cp) await cp.stop();
      if (psaDir) rmSync(psaDir, { recursive: true, force: true });
    })());
  try {
    // Pod Security as many production clusters have it: `baseline` enforced wherever a
    // namespace does not say otherwise, so an add-on whose namespace lacks the labels its
    // pods need is refused here as it would be there.
    if (opts.dir) {
      // Inside the control plane's folder, which goes with it.
      psaDir = join(opts.dir, 'psa');
      mkdirSync(psaDir, { recursive: true });
    } else psaDir = mkdtempSync(join(tmpdir(), 'ovnkube-route-psa-'));
    const psa = join(psaDir, 'admission.yaml');
    writeFileSync(
      psa,
      stringify({
        apiVersion: 'apiserver.config.k8s.io/v1',
        kind: 'AdmissionConfiguration',
        plugins: [
          {
            name: 'PodSecurity',
            configuration: {
              apiVersion: 'pod-security.admission.config.k8s.io/v1',
              kind: 'PodSecurityConfiguration',
              defaults: {
                enforce: 'baseline',
                'enforce-version': 'latest',
                warn: 'baseline',
                'warn-version': 'latest',
                audit: 'baseline',
                'audit-version': 'latest',
              },
              exemptions: { usernames: [], runtimeClasses: [], namespaces: [] },
            },
          },
        ],
      }),
    );
    cp = await startControlPlane({
      binDir: bins.cp,
      keep,
      ...(opts.dir ? { dir: opts.dir } : {}),
      log,
      readyTimeoutMs: timeout,
      apiserverArgs: [`--admission-control-config-file=${psa}`],
      cluster: { address: CLUSTER_API_ADDRESS, serviceCidr: CLUSTER_SERVICE_CIDR },
    });
    node = await startNode(cp, { binDir: bins.node, keep, log, readyTimeoutMs: timeout });
    // From here on the node's teardown (and a crash's reaper) undoes the host changes.
    recordNodeCleanup(['ip', 'link', 'del', CLUSTER_LINK]);
    for (const [dir, own] of [
      [HOST_CNI_DIRS.bin, join(node.dir, 'cni', 'bin')],
      [HOST_CNI_DIRS.conf, join(node.dir, 'cni', 'net.d')],
    ] as const) {
      if (existsSync(dir) && readdirSync(dir).length > 0)
        throw new Error(`${dir} exists on this host and is not empty: the local cluster will not mount over it`);
      for (const d of [dir.split('/').slice(0, 2).join('/'), dir.split('/').slice(0, 3).join('/'), dir]) {
        if (!existsSync(d)) {
          mkdirSync(d);
          created.push(d);
          recordNodeCleanup(['rmdir', d]);
        }
      }
      must('mount', ['--bind', own, dir], `bind ${own} to ${dir}`);
      mounted.push(dir);
      recordNodeCleanup(['umount', dir]);
    }
    const pki = cp.pki;
    const kubeconfig = cp.kubeconfigPath;
    const [kcmPort, schedPort, proxyHealth, proxyMetrics] = (await freePorts(4)) as [number, number, number, number];
    const common = [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      '--bind-address=127.0.0.1',
      '--leader-elect=false',
      '--v=1',
    ];
    const kcm = startServer(
      cp.dir,
      'kube-controller-manager',
      join(bins.cluster, 'kube-controller-manager'),
      [
        ...common,
        `--secure-port=${kcmPort}`,
        `--cert-dir=${join(cp.dir, 'kcm-certs')}`,
        `--service-account-private-key-file=${pki.saKey}`,
        `--root-ca-file=${pki.caCert}`,
        '--use-service-account-credentials=true',
        '--cluster-name=ovnkube-route-local',
        `--service-cluster-ip-range=${CLUSTER_SERVICE_CIDR}`,
        `--cluster-signing-cert-file=${pki.caCert}`,
        `--cluster-signing-key-file=${pki.caKey}`,
      ],
      keep,
    );
    procs.push(kcm);
    const sched = startServer(
      cp.dir,
      'kube-scheduler',
      join(bins.cluster, 'kube-scheduler'),
      [...common, `--secure-port=${schedPort}`, `--cert-dir=${join(cp.dir, 'scheduler-certs')}`],
      keep,
    );
    procs.push(sched);
    const proxyConfig = join(cp.dir, 'kube-proxy.yaml');
    writeFileSync(
      proxyConfig,
      stringify({
        apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
        kind: 'KubeProxyConfiguration',
        mode: 'iptables',
        hostnameOverride: node.name,
        clientConnection: { kubeconfig },
        bindAddress: '127.0.0.1',
        healthzBindAddress: `127.0.0.1:${proxyHealth}`,
        metricsBindAddress: `127.0.0.1:${proxyMetrics}`,
        // NodePorts on the API address only: never on the machine's own NICs, and no
        // route_localnet (which 127.0.0.1 NodePorts would turn on).
        nodePortAddresses: [`${CLUSTER_API_ADDRESS}/32`],
        clusterCIDR: '10.85.0.0/24',
        detectLocalMode: 'ClusterCIDR',
        // Leave the host's conntrack sysctls as they are.
        conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
        iptables: { masqueradeAll: false, syncPeriod: '30s', minSyncPeriod: '0s' },
      }),
    );
    recordNodeCleanup([join(bins.cluster, 'kube-proxy'), '--cleanup']);
    const proxy = startServer(cp.dir, 'kube-proxy', join(bins.cluster, 'kube-proxy'), [`--config=${proxyConfig}`, '--v=1'], keep);
    procs.push(proxy);
    // After a crash, the node's reaper runs these (newest first) before kube-proxy --cleanup:
    // each component is killed if that pid is still that component, so kube-proxy cannot put
    // its rules back after the cleanup and no unrelated process that reused the pid is touched.
    for (const p of [kcm, sched, proxy]) {
      recordNodeCleanup(['sh', '-c', `grep -qa -- ${JSON.stringify(p.name)} /proc/${p.pid}/cmdline 2>/dev/null && kill -KILL ${p.pid}`]);
    }
    log(`kube-controller-manager, kube-scheduler and kube-proxy starting (logs in ${cp.dir})`);

    const kc = cp.kc;
    await until(
      'the default ServiceAccount (kube-controller-manager)',
      async () => (await kubeRequest(kc, 'GET', '/api/v1/namespaces/default/serviceaccounts/default')).status === 200,
      timeout,
      kcm,
    );
    const svcIP = firstServiceIP(CLUSTER_SERVICE_CIDR);
    await until(
      'the kubernetes Service endpoints',
      async () => {
        const r = await kubeRequest(kc, 'GET', '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices', {
          query: { labelSelector: 'kubernetes.io/service-name=kubernetes' },
        });
        return (r.body?.items ?? []).some((s: { endpoints?: Array<{ addresses: string[] }> }) =>
          s.endpoints?.some((e) => e.addresses.includes(CLUSTER_API_ADDRESS)),
        );
      },
      timeout,
      kcm,
    );
    await until(
      `kube-proxy's rules for the kubernetes Service (${svcIP})`,
      () => spawnSync('iptables', ['-w', '-t', 'nat', '-S', 'KUBE-SERVICES'], { encoding: 'utf8' }).stdout.includes(`${svcIP}/32`),
      timeout,
      proxy,
    );
    for (const [p, port] of [
      [sched, schedPort],
      [kcm, kcmPort],
    ] as const) {
      await until(`${p.name} healthy`, () => healthz(port), timeout, p);
    }
    log(`cluster ready: API ${cp.server} (kubernetes Service ${svcIP}), node ${node.name}`);
    const tool = (bin: string) => (args: string[], input?: string) => {
      const r = spawnSync(join(bins.cluster, bin), args, {
        encoding: 'utf8',
        input,
        timeout: 180_000,
        env: {
          ...process.env,
          KUBECONFIG: kubeconfig,
          HELM_CACHE_HOME: join(cp!.dir, 'helm-cache'),
          HELM_CONFIG_HOME: join(cp!.dir, 'helm-config'),
          HELM_DATA_HOME: join(cp!.dir, 'helm-data'),
        },
      });
      return { status: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? r.error.message : '') };
    };
    const socket = node.socket;
    return {
      cp,
      node,
      binDir: bins.cluster,
      kubectl: tool('kubectl'),
      helm: tool('helm'),
      stop,
      importImage: (tarball) => {
        must('ctr', ['--address', socket, '-n', 'k8s.io', 'images', 'import', '--no-unpack=false', tarball], `import ${tarball}`);
      },
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
