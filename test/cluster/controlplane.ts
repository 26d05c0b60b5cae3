import { KubeConfig } from '@kubernetes/client-node';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { findBinaries } from './binaries.js';
import { makePKI, type ControlPlanePKI } from './pki.js';
import { killNow, logTail, startReaper, startServer, stopGroup, type ServerProcess } from './procs.js';
import { freePorts } from '../util/http.js';

/** Options of {@link startControlPlane}; every one has a default fit for tests. */
export interface ControlPlaneOptions {
  /** Folder holding etcd and kube-apiserver; found (or built) by scripts/controlplane/ensure.mjs otherwise. */
  binDir?: string;
  /** Build the binaries when they are nowhere to be found (many minutes the first time). */
  allowBuild?: boolean;
  /** Work folder (certs, etcd data, logs, kubeconfig); a new temp dir when absent. */
  dir?: string;
  /** Leave the servers running after this process exits, and do not remove dir (cluster:up). */
  keep?: boolean;
  /** Extra kube-apiserver flags, appended last so they win. */
  apiserverArgs?: string[];
  /** How long etcd and then kube-apiserver may take to become ready, each. Default 180 s. */
  readyTimeoutMs?: number;
  /**
   * A whole cluster's API server (cluster.ts): listen on `address` (a local, non-loopback
   * address pods can reach through the `kubernetes` Service) instead of 127.0.0.1, allocate
   * Service IPs from `serviceCidr`, keep the `kubernetes` Service's endpoints (the lease
   * reconciler), and admit pods with their ServiceAccount (kube-controller-manager runs).
   */
  cluster?: { address: string; serviceCidr: string };
  log?: (line: string) => void;
}

/** A running etcd + kube-apiserver on 127.0.0.1 with an admin identity. */
export interface ControlPlane {
  /** https://127.0.0.1:<port> */
  server: string;
  /** Admin kubeconfig (client cert in system:masters), self-contained. */
  kubeconfigPath: string;
  kc: KubeConfig;
  dir: string;
  pki: ControlPlanePKI;
  /** PEM of the CA that signed the apiserver's serving cert. */
  caPem: string;
  /** The service-account token issuer the apiserver uses. */
  serviceAccountIssuer: string;
  pids: { etcd: number; apiserver: number };
  /** Stop both servers (SIGTERM, then SIGKILL) and remove dir unless `keep`. Idempotent. */
  stop(): Promise<void>;
  /**
   * Stop kube-apiserver alone (SIGTERM, then SIGKILL after `graceMs`); etcd and the data
   * stay. Connections to its port are refused until startApiserver(). Fault tests.
   */
  stopApiserver(graceMs?: number): Promise<void>;
  /** Start kube-apiserver again on the same port, flags and etcd; resolves once /readyz is 200. */
  startApiserver(): Promise<void>;
}

export const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';
// Only an allocation range for Service ClusterIPs in etcd; no traffic ever goes there.
const SERVICE_CIDR = '10.96.0.0/16';

/** The first address of an IPv4 CIDR: the ClusterIP of the `kubernetes` Service. */
export function firstServiceIP(cidr: string): string {
  const [net] = cidr.split('/');
  const n =
    net!
      .split('.')
      .map(Number)
      .reduce((a, b) => a * 256 + b, 0) + 1;
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

// Control planes of this process still running, for the exit handler (installed lazily).
const running = new Set<() => void>();
let exitHandlerInstalled = false;

function httpsStatus(url: string, pki: ControlPlanePKI, cert: string, key: string): Promise<string> {
  return new Promise((resolve) => {
    const req = request(url, { ca: readFileSync(pki.caCert), cert: readFileSync(cert), key: readFileSync(key), timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () => resolve(res.statusCode === 200 ? 'ok' : `HTTP ${res.statusCode}: ${body.slice(0, 500)}`));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => resolve(e.message));
    req.end();
  });
}

/** Poll `url` until it answers 200, the process ends, or the time is up. */
async function waitReady(
  proc: ServerProcess,
  url: string,
  pki: ControlPlanePKI,
  cert: string,
  key: string,
  timeoutMs: number,
): Promise<void> {
  let ended: string | null = null;
  void proc.exited.then((how) => {
    ended = how;
  });
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  for (;;) {
    if (ended) throw new Error(`${proc.name} ${ended} before it was ready; last lines of ${proc.logPath}:\n${logTail(proc.logPath)}`);
    last = await httpsStatus(url, pki, cert, key);
    if (last === 'ok') return;
    if (Date.now() > deadline) {
      throw new Error(
        `${proc.name} not ready at ${url} after ${timeoutMs / 1000} s (last: ${last}); last lines of ${proc.logPath}:\n${logTail(proc.logPath)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

function etcdArgs(dir: string, pki: ControlPlanePKI, client: number, peer: number): string[] {
  const peerURL = `https://127.0.0.1:${peer}`;
  return [
    '--name=default',
    `--data-dir=${join(dir, 'etcd-data')}`,
    `--listen-client-urls=https://127.0.0.1:${client}`,
    `--advertise-client-urls=https://127.0.0.1:${client}`,
    `--listen-peer-urls=${peerURL}`,
    `--initial-advertise-peer-urls=${peerURL}`,
    `--initial-cluster=default=${peerURL}`,
    `--cert-file=${pki.etcdCert}`,
    `--key-file=${pki.etcdKey}`,
    `--trusted-ca-file=${pki.caCert}`,
    '--client-cert-auth',
    `--peer-cert-file=${pki.etcdCert}`,
    `--peer-key-file=${pki.etcdKey}`,
    `--peer-trusted-ca-file=${pki.caCert}`,
    '--peer-client-cert-auth',
    // The data is thrown away with the test: skip fsync, which dominates etcd latency on slow disks.
    '--unsafe-no-fsync',
    '--log-level=warn',
  ];
}

function apiserverArgs(
  dir: string,
  pki: ControlPlanePKI,
  port: number,
  etcd: number,
  extra: string[],
  cluster?: ControlPlaneOptions['cluster'],
): string[] {
  const addr = cluster?.address ?? '127.0.0.1';
  return [
    `--bind-address=${addr}`,
    `--advertise-address=${addr}`,
    `--secure-port=${port}`,
    `--cert-dir=${join(dir, 'apiserver-certs')}`,
    `--tls-cert-file=${pki.apiserverCert}`,
    `--tls-private-key-file=${pki.apiserverKey}`,
    `--client-ca-file=${pki.caCert}`,
    `--etcd-servers=https://127.0.0.1:${etcd}`,
    `--etcd-cafile=${pki.caCert}`,
    `--etcd-certfile=${pki.etcdClientCert}`,
    `--etcd-keyfile=${pki.etcdClientKey}`,
    `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
    `--service-account-key-file=${pki.saPub}`,
    `--service-account-signing-key-file=${pki.saKey}`,
    `--service-cluster-ip-range=${cluster?.serviceCidr ?? SERVICE_CIDR}`,
    '--authorization-mode=Node,RBAC',
    '--enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook',
    // No kube-controller-manager runs here to create each namespace's "default" ServiceAccount,
    // so the ServiceAccount plugin would refuse every pod. A whole cluster (cluster.ts) has one.
    ...(cluster ? [] : ['--disable-admission-plugins=ServiceAccount']),
    // The injector DaemonSet is privileged.
    '--allow-privileged=true',
    // Endpoints may not point at loopback, so the "kubernetes" Service endpoint reconciler
    // would only log errors: no pod here could reach the apiserver through it anyway. A whole
    // cluster listens on a non-loopback local address, and pods reach it through the Service.
    `--endpoint-reconciler-type=${cluster ? 'lease' : 'none'}`,
    '--profiling=false',
    // For exec and logs through a kubelet of the local node (node.ts): the admin identity,
    // and the node's Hostname address: the node is named localhost (kubelet refuses a loopback node IP).
    `--kubelet-client-certificate=${pki.adminCert}`,
    `--kubelet-client-key=${pki.adminKey}`,
    '--kubelet-preferred-address-types=Hostname',
    ...extra,
  ];
}

function writeKubeconfig(path: string, server: string, pki: ControlPlanePKI): void {
  const b64 = (p: string) => readFileSync(p).toString('base64');
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 'ovnkube-route-test',
    clusters: [{ name: 'ovnkube-route-test', cluster: { server, 'certificate-authority-data': b64(pki.caCert) } }],
    users: [{ name: 'admin', user: { 'client-certificate-data': b64(pki.adminCert), 'client-key-data': b64(pki.adminKey) } }],
    contexts: [{ name: 'ovnkube-route-test', context: { cluster: 'ovnkube-route-test', user: 'admin' } }],
  };
  writeFileSync(path, stringify(doc), { mode: 0o600 });
}

/**
 * Start etcd and kube-apiserver on free 127.0.0.1 ports, all TLS, with the webhook admission
 * plugins, RBAC, a service-account signing key and an admin kubeconfig, and wait until the
 * apiserver's /readyz answers 200. Rejects with the server's log tail when it cannot.
 * Unless `keep`, the servers and the work dir go away on stop(), on process exit, and (via a
 * watchdog) even when this process is killed.
 */
export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const log = opts.log ?? (() => {});
  let binDir = opts.binDir;
  if (!binDir) {
    const found = await findBinaries({ allowBuild: opts.allowBuild ?? false, log });
    if (!found.dir) throw new Error(`no control plane binaries: ${found.reason}`);
    binDir = found.dir;
  }
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'ovnkube-route-cp-'));
  mkdirSync(dir, { recursive: true });
  const keep = opts.keep ?? false;
  const reaper = keep ? -1 : startReaper(dir);
  const procs: ServerProcess[] = [];
  const emergency = () =>
    killNow(
      procs.map((p) => p.pid),
      reaper,
      dir,
    );
  if (!keep) {
    running.add(emergency);
    if (!exitHandlerInstalled) {
      exitHandlerInstalled = true;
      process.on('exit', () => {
        for (const f of running) f();
      });
    }
  }
  let stopped: Promise<void> | null = null;
  const stop = () =>
    (stopped ??= (async () => {
      for (const p of [...procs].reverse()) await stopGroup(p.pid, p.child);
      if (!keep) killNow([], reaper, dir);
      // Only now: should this process die mid-stop, the exit handler still finishes the job.
      running.delete(emergency);
    })());
  const timeout = opts.readyTimeoutMs ?? 180_000;
  try {
    const pki = await makePKI(dir, opts.cluster ? [`IP:${opts.cluster.address}`, `IP:${firstServiceIP(opts.cluster.serviceCidr)}`] : []);
    // A port found free can be taken before the server binds it; then try fresh ports.
    for (let attempt = 1; ; attempt++) {
      const [apiPort, etcdPort, peerPort] = (await freePorts(3)) as [number, number, number];
      rmSync(join(dir, 'etcd-data'), { recursive: true, force: true });
      const etcd = startServer(dir, 'etcd', join(binDir, 'etcd'), etcdArgs(dir, pki, etcdPort, peerPort), keep);
      procs.push(etcd);
      const api = startServer(
        dir,
        'kube-apiserver',
        join(binDir, 'kube-apiserver'),
        apiserverArgs(dir, pki, apiPort, etcdPort, opts.apiserverArgs ?? [], opts.cluster),
        keep,
      );
      procs.push(api);
      const server = `https://${opts.cluster?.address ?? '127.0.0.1'}:${apiPort}`;
      try {
        log(`starting etcd on 127.0.0.1:${etcdPort} and kube-apiserver on ${server} (${dir})`);
        await waitReady(etcd, `https://127.0.0.1:${etcdPort}/health`, pki, pki.etcdClientCert, pki.etcdClientKey, timeout);
        await waitReady(api, `${server}/readyz`, pki, pki.adminCert, pki.adminKey, timeout);
      } catch (e) {
        const inUse = [etcd, api].some((p) => /address already in use/.test(logTail(p.logPath, 50)));
        for (const p of [api, etcd]) await stopGroup(p.pid, p.child, 2000);
        procs.length = 0;
        if (inUse && attempt < 3) continue;
        throw e;
      }
      const kubeconfigPath = join(dir, 'kubeconfig');
      writeKubeconfig(kubeconfigPath, server, pki);
      const kc = new KubeConfig();
      kc.loadFromFile(kubeconfigPath);
      log(`control plane ready: KUBECONFIG=${kubeconfigPath}`);
      const pids = { etcd: etcd.pid, apiserver: api.pid };
      let current: ServerProcess | null = api;
      const stopApiserver = async (graceMs = 10_000): Promise<void> => {
        if (!current) return;
        const p = current;
        current = null;
        await stopGroup(p.pid, p.child, graceMs);
        procs.splice(procs.indexOf(p), 1);
      };
      const startApiserver = async (): Promise<void> => {
        if (current) return;
        const p = startServer(
          dir,
          'kube-apiserver',
          join(binDir, 'kube-apiserver'),
          apiserverArgs(dir, pki, apiPort, etcdPort, opts.apiserverArgs ?? []),
          keep,
        );
        procs.push(p);
        current = p;
        pids.apiserver = p.pid;
        await waitReady(p, `${server}/readyz`, pki, pki.adminCert, pki.adminKey, timeout);
      };
      return {
        server,
        kubeconfigPath,
        kc,
        dir,
        pki,
        caPem: readFileSync(pki.caCert, 'utf8'),
        serviceAccountIssuer: SERVICE_ACCOUNT_ISSUER,
        pids,
        stop,
        stopApiserver,
        startApiserver,
      };
    }
  } catch (e) {
    await stop();
    throw e;
  }
}
