/**
 * A real Kubernetes node on this machine, beside the control plane of controlplane.ts:
 * Debian's containerd + runc, kubelet v1.36 and the Multus thin plugin built from the Go
 * module proxy, and pods with two NICs:
 *   eth0, Calico-like: the standard ptp + host-local plugins give the pod its address and a
 *     veth to the host; a small wrapper (calico-like, written below) then gives it Calico's
 *     pod-side routes: `169.254.1.1 dev eth0 scope link` and `default via 169.254.1.1`, and
 *     proxy ARP on the host side, as Calico's cali veth has.
 *   eth1, OVN-like: the bridge + host-local plugins through a NetworkAttachmentDefinition,
 *     giving the 10.124.2.0/24 node subnet and `10.124.0.0/16 via 10.124.2.1` (IPAM routes).
 * Everything lives in one private folder, except what the runtime writes where the product
 * reads it: the CNI cache (/var/lib/cni/results, /var/lib/cni/multus), the pods' netns
 * (/run/netns), the kubepods cgroups, the bridge, and a FORWARD guard. Only one node runs per
 * machine (a lock), and its state file lets reapNode() remove all of it after a crash.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { ControlPlane } from './controlplane.js';
import { buildNodeImage, NODE_IMAGE } from './image.js';
import { issueCert } from './pki.js';
import { kubeRequest, loadYamlDocuments, applyManifests, waitForCRDEstablished } from './k8s.js';
import { alive, logTail, startServer, stopGroup, type ServerProcess } from './procs.js';
import { freePorts } from '../util/http.js';

/** Where the one node of this machine records itself (for reapNode after a crash). */
export const NODE_STATE_DIR = '/run/ovnkube-route-node';
const STATE_FILE = join(NODE_STATE_DIR, 'state.json');
const LOCK_FILE = '/run/ovnkube-route-node.lock';
/** The Linux bridge behind eth1 (the OVN-like network). */
export const ETH1_BRIDGE = 'ovnkr-br1';
/** The NetworkAttachmentDefinition that gives pods eth1. */
export const ETH1_NETWORK = 'second';
/** The annotation a pod carries to get eth1. */
export const NETWORKS_ANNOTATION = 'k8s.v1.cni.cncf.io/networks';
export const ETH1_SELECTION = JSON.stringify([{ name: ETH1_NETWORK, namespace: 'default', interface: 'eth1' }]);

/** The shape of the two networks (the design document's target table). */
export const NODE_NETS = {
  eth0: { subnet: '10.85.0.0/24', gateway: '169.254.1.1' },
  eth1: { subnet: '10.124.2.0/24', gateway: '10.124.2.1', cluster: '10.124.0.0/16' },
} as const;
export const CNI_CACHE_DIR = '/var/lib/cni/results';
const MULTUS_CACHE_DIR = '/var/lib/cni/multus';

/** What the node needs of its control plane. */
export type ClusterAccess = Pick<ControlPlane, 'server' | 'caPem' | 'kc'> & {
  pki: Pick<ControlPlane['pki'], 'caCert' | 'caKey' | 'adminCert' | 'adminKey'>;
};

export interface NodeOptions {
  /** Folder holding kubelet and multus (scripts/controlplane/ensure.mjs --set node). */
  binDir: string;
  /**
   * The node's name; default `localhost`. The API server reaches the kubelet (exec, logs) at
   * the node's Hostname address, which must resolve to 127.0.0.1 where the kubelet listens:
   * the kubelet refuses a loopback --node-ip, and no /etc/hosts entry is written.
   */
  name?: string;
  /** Leave it running after this process exits (node:up). */
  keep?: boolean;
  log?: (line: string) => void;
  /** How long the node may take to become Ready. Default 180 s. */
  readyTimeoutMs?: number;
}

export interface NodeState {
  dir: string;
  name: string;
  pids: Record<string, number>;
  socket: string;
  ipForward: string;
  owner: number;
  /** The API server the node registered with: `cluster:down` stops only its own cluster's node. */
  server?: string;
  /** Commands that undo what was set up beside the node (cluster.ts), run by reapNode. */
  cleanup?: string[][];
}

export interface RealNode {
  name: string;
  dir: string;
  /** containerd's socket (for ctr). */
  socket: string;
  pids: Record<string, number>;
  /** Stop everything and remove everything it made; idempotent. */
  stop(): Promise<void>;
  /** net.ipv4.ip_forward before the node started (restored at stop). */
  ipForwardBefore: string;
  /** Restart containerd (SIGTERM, then the same config): its shims and the pods' containers keep running. */
  restartContainerd(): Promise<void>;
}

const run = (cmd: string, args: string[], input?: string) => spawnSync(cmd, args, { encoding: 'utf8', input, timeout: 120_000 });

function must(cmd: string, args: string[], what: string): string {
  const r = run(cmd, args);
  if (r.error) throw new Error(`${what}: cannot run ${cmd}: ${r.error.message}`, { cause: r.error });
  if (r.status !== 0)
    throw new Error(`${what}: ${cmd} ${args.join(' ')} exited with ${r.status}: ${(r.stderr || r.stdout).trim().slice(-2000)}`);
  return r.stdout;
}

function which(cmd: string): string | null {
  for (const d of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    if (existsSync(join(d, cmd))) return join(d, cmd);
  }
  return null;
}

/** What this machine lacks to run the node, or null when it has everything. */
export function nodeUnavailable(): string | null {
  if (process.platform !== 'linux') return `needs Linux (this is ${process.platform})`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'needs root (containerd, kubelet, netns)';
  const missing = ['containerd', 'containerd-shim-runc-v2', 'runc', 'ctr', 'iptables', 'nsenter', 'ip'].filter((c) => !which(c));
  if (!existsSync('/usr/lib/cni/ptp') || !existsSync('/usr/lib/cni/bridge')) missing.push('containernetworking-plugins');
  if (!existsSync('/bin/busybox')) missing.push('busybox-static');
  return missing.length ? `missing ${missing.join(', ')} (run scripts/prereqs.sh)` : null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- the one-node-per-machine lock ----

function lockHolder(): number | null {
  try {
    const pid = Number.parseInt(readFileSync(LOCK_FILE, 'utf8'), 10);
    return Number.isInteger(pid) && alive(pid) ? pid : null;
  } catch {
    return null;
  }
}

/**
 * Take the one-node-per-machine lock, waiting up to `waitMs` for another process's node to
 * stop. A no-op when this process holds it already (cluster.ts takes it before its control
 * plane, since the cluster's host network setup is as exclusive as the node).
 */
export async function takeNodeLock(log: (l: string) => void, waitMs: number): Promise<void> {
  return takeLock(log, waitMs);
}

async function takeLock(log: (l: string) => void, waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  let announced = false;
  for (;;) {
    if (lockHolder() === process.pid) return;
    try {
      const fd = openSync(LOCK_FILE, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const holder = lockHolder();
    if (holder === null) {
      rmSync(LOCK_FILE, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`another node (pid ${holder}, ${LOCK_FILE}) is still running after ${waitMs / 1000} s`);
    if (!announced) log(`waiting for the node of pid ${holder} to stop (one node per machine)`);
    announced = true;
    await sleep(1000);
  }
}

// ---- cleanup, shared by stop(), a stale state at start, and `node:down` ----

function readState(): NodeState | null {
  try {
    return JSON.parse(readFileSync(STATE_FILE, 'utf8')) as NodeState;
  } catch {
    return null;
  }
}

function procCmdlines(): Array<{ pid: number; argv: string[] }> {
  const out: Array<{ pid: number; argv: string[] }> = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      out.push({ pid: Number(p), argv: readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0') });
    } catch {
      // gone
    }
  }
  return out;
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

/** Every process in the kubepods cgroup tree (pods' containers), from the pids controller. */
function kubepodsProcs(): number[] {
  const root = '/sys/fs/cgroup/pids/kubepods';
  const out: number[] = [];
  const walk = (d: string) => {
    try {
      for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l) out.push(Number(l));
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    } catch {
      // gone
    }
  };
  walk(root);
  return out;
}

/** rmdir the kubepods cgroup tree (deepest first) under every v1 controller and the unified one. */
function removeKubepodsCgroups(): string[] {
  const left: string[] = [];
  const rm = (d: string) => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) rm(join(d, e.name));
    try {
      rmdirSync(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') left.push(d);
    }
  };
  let controllers: string[] = [];
  try {
    controllers = readdirSync('/sys/fs/cgroup');
  } catch {
    /* none */
  }
  for (const c of controllers) rm(join('/sys/fs/cgroup', c, 'kubepods'));
  return left;
}

/** The sandbox IDs containerd (with root `dir`/containerd/root) knows. */
function sandboxIds(dir: string): Set<string> {
  try {
    return new Set(readdirSync(join(dir, 'containerd', 'root', 'io.containerd.grpc.v1.cri', 'sandboxes')));
  } catch {
    return new Set();
  }
}

function unmountNetns(path: string): void {
  spawnSync('umount', [path]);
  try {
    unlinkSync(path);
  } catch {
    /* gone */
  }
}

/** Remove the CNI cache files (and their netns) of `ids` that CNI DEL did not remove. */
function removeSandboxLeftovers(ids: Set<string>): number {
  let n = 0;
  for (const d of [CNI_CACHE_DIR, join(MULTUS_CACHE_DIR, 'results'), MULTUS_CACHE_DIR]) {
    let files: string[] = [];
    try {
      files = readdirSync(d);
    } catch {
      continue;
    }
    for (const f of files) {
      const id = [...ids].find((i) => f.includes(i));
      if (!id) continue;
      const path = join(d, f);
      try {
        if (!statSync(path).isFile()) continue;
        const j = JSON.parse(readFileSync(path, 'utf8')) as { netns?: string; result?: { interfaces?: Array<{ sandbox?: string }> } };
        const ns = j.netns ?? j.result?.interfaces?.find((i) => i.sandbox)?.sandbox;
        if (ns && /^\/(var\/)?run\/netns\//.test(ns)) unmountNetns(ns);
      } catch {
        // not JSON: remove it all the same
      }
      rmSync(path, { force: true });
      n++;
    }
  }
  return n;
}

function mountsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (mp && (mp === dir || mp.startsWith(`${dir}/`))) out.push(mp.replace(/\\040/g, ' '));
  }
  return out.sort((a, b) => b.length - a.length);
}

function guardRules(): string[][] {
  return [
    ['-s', '10.85.0.0/16', '-j', 'DROP'],
    ['-s', NODE_NETS.eth1.cluster, '!', '-o', ETH1_BRIDGE, '-j', 'DROP'],
  ];
}

/**
 * The host forwards nothing that a pod sends off this machine: pods' eth0 default route
 * points at the host (as Calico's does) and the ptp plugin turns on ip_forward, so a chain
 * in FORWARD drops the pod ranges (bridged eth1 traffic between netns stays allowed).
 */
function installGuard(): void {
  spawnSync('iptables', ['-w', '-N', 'OVNKR-NODE-GUARD']);
  must('iptables', ['-w', '-F', 'OVNKR-NODE-GUARD'], 'flush the forward guard');
  for (const r of guardRules()) must('iptables', ['-w', '-A', 'OVNKR-NODE-GUARD', ...r], 'forward guard rule');
  if (spawnSync('iptables', ['-w', '-C', 'FORWARD', '-j', 'OVNKR-NODE-GUARD']).status !== 0) {
    must('iptables', ['-w', '-I', 'FORWARD', '1', '-j', 'OVNKR-NODE-GUARD'], 'hook the forward guard');
  }
}

function removeGuard(): void {
  while (spawnSync('iptables', ['-w', '-D', 'FORWARD', '-j', 'OVNKR-NODE-GUARD']).status === 0) {
    /* every copy */
  }
  spawnSync('iptables', ['-w', '-F', 'OVNKR-NODE-GUARD']);
  spawnSync('iptables', ['-w', '-X', 'OVNKR-NODE-GUARD']);
}

/**
 * Remove everything a node made, running or crashed: its processes (kubelet, containerd,
 * shims, containers), the sandboxes' cache files and netns, mounts under its folder, the
 * folder, the bridge, the kubepods cgroups and the forward guard; restore ip_forward.
 * Returns what it found to do, for the log. Safe to call when nothing is there.
 */
export function reapNode(log: (l: string) => void = () => {}): string[] {
  const state = readState();
  const did: string[] = [];
  if (state) {
    for (const [name, pid] of Object.entries(state.pids)) {
      if (pid > 0 && pid !== process.pid && alive(pid)) {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          killPid(pid);
        }
        did.push(`killed ${name} (pid ${pid})`);
      }
    }
    // Shims run in their own sessions; they name our socket on their command line.
    for (const p of procCmdlines()) {
      if (p.argv[0]?.includes('containerd-shim') && p.argv.includes(state.socket)) {
        killPid(p.pid);
        did.push(`killed shim ${p.pid}`);
      }
    }
  }
  for (let i = 0; i < 20; i++) {
    const procs = kubepodsProcs();
    if (!procs.length) break;
    if (i === 0) did.push(`killed ${procs.length} container processes`);
    procs.forEach(killPid);
    spawnSync('sleep', ['0.1']);
  }
  if (state) {
    // What a cluster set up beside the node (kube-proxy's rules, bind mounts, a link), newest first.
    for (const cmd of [...(state.cleanup ?? [])].reverse()) {
      const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 60_000 });
      if (r.status === 0) did.push(`removed: ${cmd.join(' ')}`);
    }
    const n = removeSandboxLeftovers(sandboxIds(state.dir));
    if (n) did.push(`removed ${n} CNI cache files of sandboxes that got no CNI DEL`);
    for (const m of mountsUnder(state.dir)) {
      if (spawnSync('umount', [m]).status !== 0) spawnSync('umount', ['-l', m]);
    }
    rmSync(state.dir, { recursive: true, force: true });
    did.push(`removed ${state.dir}`);
    if (state.ipForward === '0' || state.ipForward === '1') writeFileSync('/proc/sys/net/ipv4/ip_forward', state.ipForward);
  }
  if (spawnSync('ip', ['link', 'show', ETH1_BRIDGE], { stdio: 'ignore' }).status === 0) {
    spawnSync('ip', ['link', 'del', ETH1_BRIDGE]);
    did.push(`deleted bridge ${ETH1_BRIDGE}`);
  }
  const left = removeKubepodsCgroups();
  if (left.length) did.push(`could not remove cgroups: ${left.join(', ')}`);
  removeGuard();
  rmSync(NODE_STATE_DIR, { recursive: true, force: true });
  const holder = lockHolder();
  if (holder === null || holder === state?.owner || holder === state?.pids.kubelet) rmSync(LOCK_FILE, { force: true });
  for (const d of did) log(d);
  return did;
}

/**
 * Record a command that undoes something set up beside the running node (by this process),
 * so that stop() and, after a crash, the next reapNode run it. Returns false when no node of
 * this process is recorded.
 */
export function recordNodeCleanup(cmd: string[]): boolean {
  const state = readState();
  if (!state || state.owner !== process.pid) return false;
  state.cleanup = [...(state.cleanup ?? []), cmd];
  writeFileSync(STATE_FILE, JSON.stringify(state, null, 2) + '\n');
  return true;
}

// ---- kubelet's iptables chains ----

const KUBELET_CHAINS = ['KUBE-KUBELET-CANARY', 'KUBE-FIREWALL', 'KUBE-IPTABLES-HINT'];

/** Whether any table of either family has one of kubelet's chains. */
function kubeletChainsPresent(): boolean {
  return ['iptables', 'ip6tables'].some((bin) =>
    ['filter', 'nat', 'mangle'].some((table) => {
      const r = spawnSync(bin, ['-w', '-t', table, '-S'], { encoding: 'utf8' });
      return r.status === 0 && KUBELET_CHAINS.some((c) => r.stdout.includes(`-N ${c}\n`));
    }),
  );
}

/** Unhook and delete kubelet's chains in both families (missing ones are no error). */
const KUBELET_CHAINS_CLEANUP = `for bin in iptables ip6tables; do
  command -v $bin >/dev/null || continue
  for hook in INPUT OUTPUT; do while $bin -w -t filter -D $hook -j KUBE-FIREWALL 2>/dev/null; do :; done; done
  for t in filter nat mangle; do for c in ${KUBELET_CHAINS.join(' ')}; do
    $bin -w -t $t -F $c 2>/dev/null; $bin -w -t $t -X $c 2>/dev/null
  done; done
done; true`;

// ---- configuration files ----

function containerdConfig(dir: string): string {
  const c = join(dir, 'containerd');
  return `version = 2
root = "${c}/root"
state = "${c}/state"
[grpc]
  address = "${c}/containerd.sock"
[ttrpc]
  address = "${c}/containerd.sock.ttrpc"
[debug]
  level = "info"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${NODE_IMAGE}"
  # This VM lacks CAP_SYS_RESOURCE: oom_score_adj below the current one would make runc fail.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${dir}/cni/bin"
    conf_dir = "${dir}/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
`;
}

/**
 * The eth0 plugin: ptp + host-local do the veth, the address and the host route; Calico's
 * pod side then differs in two rows, which this wrapper fixes: ptp routes the IPAM subnet via
 * the gateway (Calico has no such row) and cannot add a default route via a gateway outside
 * the subnet before its own scope-link route to it exists (the IPAM routes come first).
 */
function calicoLikePlugin(): string {
  const ip = which('ip') ?? 'ip';
  const nsenter = which('nsenter') ?? 'nsenter';
  const { subnet, gateway } = NODE_NETS.eth0;
  return `#!/bin/sh
# calico-like CNI plugin (written by test/cluster/node.ts): ptp, then Calico's pod-side routes.
dir=$(dirname "$0")
[ "$CNI_COMMAND" = ADD ] || exec "$dir/ptp"
out=$("$dir/ptp") || { printf '%s\\n' "$out"; exit 1; }
err=$(${nsenter} --net="$CNI_NETNS" ${ip} route del ${subnet} via ${gateway} dev "$CNI_IFNAME" 2>&1 &&
  ${nsenter} --net="$CNI_NETNS" ${ip} route add default via ${gateway} dev "$CNI_IFNAME" 2>&1) || {
  printf '{"cniVersion":"0.3.1","code":999,"msg":"calico-like: %s"}\\n' "$(printf '%s' "$err" | tr -d '"\\\\')"
  exit 1
}
# Calico's host side answers ARP for any address (proxy_arp on the cali veth), so that a
# pod's scope-link rows on eth0 (a Service IP "UH eth0") reach the host as they do on Calico.
peer=$(${nsenter} --net="$CNI_NETNS" ${ip} -o link show "$CNI_IFNAME" | sed -n 's/^[0-9]*: [^@]*@if\\([0-9]*\\):.*/\\1/p')
host=$(${ip} -o link | sed -n "s/^$peer: \\([^@:]*\\)[@:].*/\\1/p")
[ -n "$host" ] && echo 1 > "/proc/sys/net/ipv4/conf/$host/proxy_arp"
printf '%s\\n' "$out"
`;
}

function cniConfigs(dir: string, multusKubeconfig: string): { multus: object; eth0: object; eth1: object } {
  const ipamDir = join(dir, 'ipam');
  return {
    multus: {
      cniVersion: '0.3.1',
      name: 'multus-cni-network',
      type: 'multus',
      kubeconfig: multusKubeconfig,
      // A single-plugin .conf: with a .conflist here, multus v4.2.2 drops plugin fields on DEL.
      clusterNetwork: join(dir, 'cni', 'multus.d', '10-calico-like.conf'),
      binDir: join(dir, 'cni', 'bin'),
      cniDir: MULTUS_CACHE_DIR,
      logFile: join(dir, 'multus.log'),
      logLevel: 'verbose',
    },
    eth0: {
      cniVersion: '0.3.1',
      name: 'calico-like',
      type: 'calico-like',
      mtu: 1500,
      ipMasq: false,
      ipam: { type: 'host-local', dataDir: ipamDir, ranges: [[{ subnet: NODE_NETS.eth0.subnet, gateway: NODE_NETS.eth0.gateway }]] },
    },
    eth1: {
      cniVersion: '0.3.1',
      name: ETH1_NETWORK,
      type: 'bridge',
      bridge: ETH1_BRIDGE,
      isGateway: false,
      ipMasq: false,
      ipam: {
        type: 'host-local',
        dataDir: ipamDir,
        ranges: [[{ subnet: NODE_NETS.eth1.subnet, gateway: NODE_NETS.eth1.gateway, rangeStart: '10.124.2.10', rangeEnd: '10.124.2.250' }]],
        routes: [{ dst: NODE_NETS.eth1.cluster, gw: NODE_NETS.eth1.gateway }],
      },
    },
  };
}

function kubeconfigFile(path: string, server: string, caPem: string, user: Record<string, string>): string {
  writeFileSync(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'node',
      clusters: [{ name: 'local', cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
      users: [{ name: 'u', user }],
      contexts: [{ name: 'node', context: { cluster: 'local', user: 'u' } }],
    }),
    { mode: 0o600 },
  );
  return path;
}

const b64file = (p: string) => readFileSync(p).toString('base64');

/** The NetworkAttachmentDefinition CRD, from the manifest multus ships (kept beside the binary). */
function nadCrd(binDir: string): object {
  const file = join(binDir, 'multus-daemonset.yml');
  const doc = loadYamlDocuments(file).find((d) => (d as { kind?: string }).kind === 'CustomResourceDefinition');
  if (!doc) throw new Error(`${file}: no CustomResourceDefinition (expected network-attachment-definitions.k8s.cni.cncf.io)`);
  return doc;
}

async function waitNodeReady(cp: ClusterAccess, name: string, kubelet: ServerProcess, timeoutMs: number): Promise<void> {
  let ended: string | null = null;
  void kubelet.exited.then((how) => {
    ended = how;
  });
  const deadline = Date.now() + timeoutMs;
  let last = 'not registered';
  for (;;) {
    if (ended)
      throw new Error(`kubelet ${ended} before the node was Ready; last lines of ${kubelet.logPath}:\n${logTail(kubelet.logPath, 40)}`);
    const res = await kubeRequest(cp.kc, 'GET', `/api/v1/nodes/${name}`).catch((e: Error) => ({ status: 0, body: { message: e.message } }));
    if (res.status === 200) {
      const ready = (res.body.status?.conditions ?? []).find((c: { type: string }) => c.type === 'Ready');
      if (ready?.status === 'True') return;
      last = ready ? `Ready=${ready.status}: ${ready.reason}: ${ready.message}` : 'no Ready condition yet';
    }
    if (Date.now() > deadline)
      throw new Error(
        `node ${name} not Ready after ${timeoutMs / 1000} s (${last}); last lines of ${kubelet.logPath}:\n${logTail(kubelet.logPath, 40)}`,
      );
    await sleep(500);
  }
}

const reaperScript = fileURLToPath(new URL('./node-reaper.js', import.meta.url));

/**
 * Start containerd and kubelet as a node of `cp`, with the node image imported, Multus as
 * the CNI, the NetworkAttachmentDefinition `default/second` (eth1), and wait until the Node is
 * Ready. A node left by a crashed run is removed first. Unless `keep`, a watchdog removes
 * everything should this process die without stop().
 */
export async function startNode(cp: ClusterAccess, opts: NodeOptions): Promise<RealNode> {
  const log = opts.log ?? (() => {});
  const why = nodeUnavailable();
  if (why) throw new Error(`cannot start a node: ${why}`);
  for (const b of ['kubelet', 'multus', 'multus-daemonset.yml']) {
    if (!existsSync(join(opts.binDir, b)))
      throw new Error(`${opts.binDir} lacks ${b} (scripts/controlplane/ensure.mjs --set node builds it)`);
  }
  await takeLock(log, 15 * 60_000);
  if (readState()) {
    log('a node of an earlier run is still recorded: removing what it left');
    reapNode(log);
    await takeLock(log, 1000);
  }
  const name = opts.name ?? 'localhost';
  const dir = join(tmpdir(), `ovnkube-route-node-${process.pid}-${Date.now().toString(36)}`);
  const socket = join(dir, 'containerd', 'containerd.sock');
  const state: NodeState = {
    dir,
    name,
    pids: {},
    socket,
    owner: process.pid,
    server: cp.server,
    ipForward: readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim(),
  };
  const save = () => {
    // Keep what recordNodeCleanup added meanwhile.
    const cur = readState();
    if (cur?.owner === state.owner && cur.cleanup) state.cleanup = cur.cleanup;
    writeFileSync(STATE_FILE, JSON.stringify(state, null, 2) + '\n');
  };
  mkdirSync(NODE_STATE_DIR, { recursive: true });
  save();
  let reaper = -1;
  if (!opts.keep) {
    const child = spawn(process.execPath, [reaperScript, String(process.pid)], { detached: true, stdio: 'ignore' });
    child.unref();
    reaper = child.pid ?? -1;
    state.pids.reaper = reaper;
    save();
  }
  const procs: ServerProcess[] = [];
  let stopped: Promise<void> | null = null;
  const stop = () =>
    (stopped ??= (async () => {
      if (reaper > 0) killPid(reaper);
      await stopNode(cp, log, procs);
    })());
  try {
    // Folders and files.
    for (const d of ['containerd', 'cni/bin', 'cni/net.d', 'cni/multus.d', 'kubelet/root', 'kubelet/pki', 'kubelet/pod-logs', 'ipam']) {
      mkdirSync(join(dir, d), { recursive: true });
    }
    writeFileSync(join(dir, 'containerd', 'config.toml'), containerdConfig(dir));
    for (const p of readdirSync('/usr/lib/cni')) symlinkSync(join('/usr/lib/cni', p), join(dir, 'cni', 'bin', p));
    copyFileSync(join(opts.binDir, 'multus'), join(dir, 'cni', 'bin', 'multus'));
    writeFileSync(join(dir, 'cni', 'bin', 'calico-like'), calicoLikePlugin());
    chmodSync(join(dir, 'cni', 'bin', 'calico-like'), 0o755);
    const multusKubeconfig = kubeconfigFile(join(dir, 'multus.kubeconfig'), cp.server, cp.caPem, {
      'client-certificate-data': b64file(cp.pki.adminCert),
      'client-key-data': b64file(cp.pki.adminKey),
    });
    const conf = cniConfigs(dir, multusKubeconfig);
    writeFileSync(join(dir, 'cni', 'multus.d', '10-calico-like.conf'), JSON.stringify(conf.eth0, null, 2));
    writeFileSync(join(dir, 'cni', 'net.d', '00-multus.conf'), JSON.stringify(conf.multus, null, 2));
    // /run/netns must be a shared mount before containerd bind-mounts netns there, or a
    // pod's HostToContainer mount of it sees nothing: `ip netns` makes it one.
    spawnSync('ip', ['netns', 'add', 'ovnkube-route-node-probe']);
    spawnSync('ip', ['netns', 'del', 'ovnkube-route-node-probe']);
    installGuard();

    // kubelet's own iptables chains (its canaries, KUBE-FIREWALL hooked into INPUT and OUTPUT,
    // KUBE-IPTABLES-HINT), in both families: kubelet leaves them when it stops, and
    // `kube-proxy --cleanup` does not remove them. Removed at teardown unless the host had
    // any of them before (a host with a kubelet of its own).
    if (!kubeletChainsPresent()) {
      state.cleanup = [...(state.cleanup ?? []), ['sh', '-c', KUBELET_CHAINS_CLEANUP]];
      save();
    }

    // containerd, and the node image.
    const startContainerd = async (): Promise<ServerProcess> => {
      const c = startServer(
        dir,
        'containerd',
        which('containerd')!,
        ['--config', join(dir, 'containerd', 'config.toml')],
        opts.keep ?? false,
      );
      procs.push(c);
      state.pids.containerd = c.pid;
      save();
      log(`containerd starting (${socket})`);
      const since = Date.now();
      for (;;) {
        if (existsSync(socket) && run('ctr', ['--address', socket, 'version']).status === 0) return c;
        if (!alive(c.pid) || Date.now() - since > 60_000) {
          throw new Error(`containerd did not answer on ${socket}; last lines of ${c.logPath}:\n${logTail(c.logPath)}`);
        }
        await sleep(200);
      }
    };
    let containerd = await startContainerd();
    const ctr = (args: string[], what: string, input?: string) => {
      const r = run('ctr', ['--address', socket, '-n', 'k8s.io', ...args], input);
      if (r.status !== 0) throw new Error(`${what}: ctr ${args.join(' ')}: ${(r.stderr || r.stdout).trim()}`);
      return r.stdout;
    };
    const t0 = Date.now();
    const image = buildNodeImage();
    const tarball = join(dir, 'node-image.tar');
    writeFileSync(tarball, image.tarball);
    ctr(['images', 'import', '--no-unpack=false', tarball], `import ${NODE_IMAGE}`);
    rmSync(tarball);
    log(`imported ${NODE_IMAGE} (${image.digest})`);

    // The API side: the NetworkAttachmentDefinition CRD and eth1's network.
    for (const r of await applyManifests(cp.kc, [nadCrd(opts.binDir) as never])) if (!r.ok) throw new Error(`${r.object}: ${r.message}`);
    await waitForCRDEstablished(cp.kc, 'network-attachment-definitions.k8s.cni.cncf.io');
    const nad = {
      apiVersion: 'k8s.cni.cncf.io/v1',
      kind: 'NetworkAttachmentDefinition',
      metadata: { name: ETH1_NETWORK, namespace: 'default' },
      spec: { config: JSON.stringify(conf.eth1) },
    };
    for (const r of await applyManifests(cp.kc, [nad as never])) if (!r.ok) throw new Error(`${r.object}: ${r.message}`);

    // kubelet.
    const [port, healthz] = (await freePorts(2)) as [number, number];
    const pki = join(dir, 'kubelet', 'pki');
    const [nodeCert, nodeKey] = await issueCert(cp.pki, pki, 'node-client', `/O=system:nodes/CN=system:node:${name}`, [
      'extendedKeyUsage=clientAuth',
    ]);
    const kubeletKubeconfig = kubeconfigFile(join(dir, 'kubelet', 'kubeconfig'), cp.server, cp.caPem, {
      'client-certificate-data': b64file(nodeCert),
      'client-key-data': b64file(nodeKey),
    });
    const kubeletConfig = {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      address: '127.0.0.1',
      port,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      healthzPort: healthz,
      authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: cp.pki.caCert } },
      authorization: { mode: 'Webhook' },
      containerRuntimeEndpoint: `unix://${socket}`,
      // The host is cgroup v1 (hybrid): kubelet 1.36 refuses it unless told; no systemd here.
      cgroupDriver: 'cgroupfs',
      failCgroupV1: false,
      // No CAP_SYS_RESOURCE in this VM's bounding set (see containerd's restrict_oom_score_adj).
      oomScoreAdj: 0,
      failSwapOn: false,
      resolvConf: '',
      podLogsDir: join(dir, 'kubelet', 'pod-logs'),
      staticPodPath: '',
      registerNode: true,
      rotateCertificates: false,
      serverTLSBootstrap: false,
      // A test node on a shared disk: never evict or collect images for disk pressure.
      evictionHard: { 'memory.available': '50Mi', 'nodefs.available': '0%', 'imagefs.available': '0%', 'nodefs.inodesFree': '0%' },
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      syncFrequency: '10s',
      nodeStatusUpdateFrequency: '5s',
      maxPods: 250,
      serializeImagePulls: false,
    };
    writeFileSync(join(dir, 'kubelet', 'config.yaml'), stringify(kubeletConfig));
    const kubelet = startServer(
      dir,
      'kubelet',
      join(opts.binDir, 'kubelet'),
      [
        `--config=${join(dir, 'kubelet', 'config.yaml')}`,
        `--kubeconfig=${kubeletKubeconfig}`,
        `--root-dir=${join(dir, 'kubelet', 'root')}`,
        `--cert-dir=${pki}`,
        `--hostname-override=${name}`,
        '--v=1',
      ],
      opts.keep ?? false,
    );
    procs.push(kubelet);
    state.pids.kubelet = kubelet.pid;
    save();
    log(`kubelet starting as node ${name} (port ${port}; logs ${kubelet.logPath})`);
    await waitNodeReady(cp, name, kubelet, opts.readyTimeoutMs ?? 180_000);
    log(`node ${name} Ready ${Math.round((Date.now() - t0) / 1000)} s after containerd started`);
    // A kept node outlives this process (node:up, demo --keep): the lock names its kubelet
    // from now on, or the next node would take the lock as stale and reap this one.
    if (opts.keep) writeFileSync(LOCK_FILE, String(kubelet.pid));
    const restartContainerd = async (): Promise<void> => {
      await stopGroup(containerd.pid, containerd.child, 10_000);
      procs.splice(procs.indexOf(containerd), 1);
      containerd = await startContainerd();
    };
    return {
      name,
      dir,
      socket,
      get pids() {
        return { ...state.pids };
      },
      ipForwardBefore: state.ipForward,
      stop,
      restartContainerd,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * Stop the node recorded on this machine, gracefully where it can: delete its pods through
 * the API (when `cp` is given and kubelet runs) so that kubelet tears each sandbox down with
 * CNI DEL, stop kubelet then containerd, and remove whatever is left (reapNode). `procs`
 * are this process's own children, when it started them. Logs what had to be forced.
 */
export async function stopNode(cp: ClusterAccess | null, log: (l: string) => void, procs: ServerProcess[] = []): Promise<void> {
  const state = readState();
  if (!state) {
    reapNode(log);
    return;
  }
  if (state.pids.reaper && state.pids.reaper !== process.pid) killPid(state.pids.reaper);
  if (cp && state.pids.kubelet && alive(state.pids.kubelet)) {
    await drainPods(cp, state.name, state, log).catch((e: Error) => log(`draining the node's pods: ${e.message}`));
  }
  for (const name of ['kubelet', 'containerd']) {
    const pid = state.pids[name];
    if (!pid || !alive(pid)) continue;
    await stopGroup(pid, procs.find((p) => p.pid === pid)?.child ?? null, 10_000);
  }
  const did = reapNode(log);
  const forced = did.filter((d) => !d.startsWith('removed /') && !d.startsWith('removed: ') && !d.startsWith('deleted bridge'));
  if (forced.length) log(`teardown had to force: ${forced.join('; ')}`);
}

/**
 * Delete every pod bound to the node and wait until kubelet has torn each down (the API
 * object goes only after its sandbox is stopped, which runs CNI DEL), then until no CNI
 * cache file of the node's sandboxes is left.
 */
async function drainPods(cp: ClusterAccess, name: string, state: NodeState, log: (l: string) => void): Promise<void> {
  const list = await kubeRequest(cp.kc, 'GET', '/api/v1/pods', { query: { fieldSelector: `spec.nodeName=${name}` } });
  const pods = (list.body?.items ?? []) as Array<{ metadata: { namespace: string; name: string } }>;
  for (const p of pods) {
    await kubeRequest(cp.kc, 'DELETE', `/api/v1/namespaces/${p.metadata.namespace}/pods/${p.metadata.name}`, {
      query: { gracePeriodSeconds: '1' },
    });
  }
  const deadline = Date.now() + 90_000;
  for (;;) {
    const left = await kubeRequest(cp.kc, 'GET', '/api/v1/pods', { query: { fieldSelector: `spec.nodeName=${name}` } });
    const n = (left.body?.items ?? []).length;
    const files = cacheFilesOf(state.dir);
    if (n === 0 && files.length === 0) return;
    if (Date.now() > deadline) {
      log(`drain: ${n} pods and ${files.length} CNI cache files still there after 90 s; forcing`);
      return;
    }
    await sleep(300);
  }
}

/** The CNI cache files (results dir) that belong to this node's sandboxes. */
export function cacheFilesOf(dir: string): string[] {
  const ids = sandboxIds(dir);
  let files: string[] = [];
  try {
    files = readdirSync(CNI_CACHE_DIR);
  } catch {
    return [];
  }
  return files.filter((f) => [...ids].some((i) => f.includes(i))).map((f) => join(CNI_CACHE_DIR, f));
}
