#!/usr/bin/env node
/**
 * `npm run demo`: the whole product on this machine, as a user would see it. A real control
 * plane and a real node (containerd + kubelet + Multus: pods with eth0 and eth1), the add-on
 * installed from this repository, the design document's world, the routing table printed
 * from inside a pod, traffic shown leaving by the planned NIC, a live failover edit, the
 * other pods explained, and everything removed again (also on Ctrl-C and after a failure).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { decodeInjectorStatus, type InjectorStatus } from '../core/injector-status.js';
import { decodePlan, parsePlanKey } from '../core/plan-codec.js';
import { PLAN_ANNOTATION, STATUS_ANNOTATION, type Pod } from '../core/types.js';
import { findBinaries } from '../test/cluster/binaries.js';
import { startControlPlane, type ControlPlane } from '../test/cluster/controlplane.js';
import { kubeRequest } from '../test/cluster/k8s.js';
import { CNI_CACHE_DIR, ETH1_BRIDGE, NODE_NETS, NODE_STATE_DIR, nodeUnavailable, startNode, type RealNode } from '../test/cluster/node.js';
import { podExec, podRunning, waitPod } from '../test/cluster/pods.js';
import { repoRoot } from '../test/util/fixtures.js';
import { until } from '../test/util/until.js';
import { installAddon, type Addon } from './addon.js';
import { countOn, hostPeers, HOST_STATE, overlapsHost, removeHost, setupHost, SINK0, SINK1, type Counters } from './host.js';
import { formatTable, parseRouteN, rowKey, type TableRow } from './table.js';
import {
  applyRoute,
  createNamespaces,
  createPods,
  createServices,
  DEMO_RANGES,
  demoRoute,
  OPTED_OUT,
  OVN_ROUTE,
  SERVICE_RANGE,
  SERVICES,
  type DemoPod,
} from './world.js';

const HELP = `Usage: npm run demo -- [-o text|json] [--keep] [--down]

Runs the whole product on this machine (as root; needs scripts/prereqs.sh once):
  1. brings up a local control plane (etcd + kube-apiserver) and a real node (containerd,
     kubelet, Multus: pods with eth0 and eth1), building the binaries the first time
     (about 20 minutes on 2 idle cores; cached afterwards);
  2. installs the add-on from this repository (CRD, RBAC, certificates, plan key, webhook
     configuration) and runs the webhook + controller and the node agent as local processes;
  3. creates the design document's Services, Routes and pods;
  4. prints a pod's routing table from inside the pod (exec through the API server);
  5. sends pings from the pod and shows which NIC carried them (nftables counters on the
     pod's two host-side veths); destinations are owned by sink netns the demo made, and the
     host drops the demo's ranges, so nothing leaves this machine;
  6. edits the Route live (failover: nginx from eth1 to eth0), and shows the new table, the
     traffic, the time until the pod had its new routes, and that no pod restarted;
  7. explains the other pods (opted out, hostNetwork, no eth1) from the add-on's status,
     Events and plan annotations;
  8. removes everything it made, also on Ctrl-C or after a failure.

Flags:
  -o, --output FORMAT   text (default) or json: one JSON document on stdout, progress on stderr
      --keep            leave the cluster and the add-on running at the end, and print how to
                        reach them; remove them later with \`npm run demo -- --down\`
      --down            remove what a \`--keep\` demo (or a killed one) left, and exit
  -h, --help            show this help
`;

interface Options {
  json: boolean;
  keep: boolean;
  down: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      output: { type: 'string', short: 'o', default: 'text' },
      keep: { type: 'boolean', default: false },
      down: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  if (values.output !== 'text' && values.output !== 'json')
    throw new Error(`--output: expected text or json, got ${JSON.stringify(values.output)}`);
  return { json: values.output === 'json', keep: values.keep!, down: values.down! };
}

// ---- output: the person reads stdout (text) or stderr (with -o json) ----

let opts: Options = { json: false, keep: false, down: false };
const human = (s: string): void => {
  (opts.json ? process.stderr : process.stdout).write(`${s}\n`);
};
const progress = (s: string): void => {
  process.stderr.write(`   · ${s}\n`);
};
const indent = (s: string, n = 3): string =>
  s
    .split('\n')
    .map((l) => ' '.repeat(n) + l)
    .join('\n');

interface PhaseResult {
  name: string;
  seconds: number;
  ok: boolean;
}
const phases: PhaseResult[] = [];
const problems: string[] = [];

async function phase<T>(n: number, name: string, fn: () => Promise<T>): Promise<T> {
  human(`\n[${n}/7] ${name}`);
  const t0 = performance.now();
  try {
    const v = await fn();
    const seconds = (performance.now() - t0) / 1000;
    phases.push({ name, seconds, ok: true });
    human(`      done in ${seconds.toFixed(1)} s`);
    return v;
  } catch (e) {
    phases.push({ name, seconds: (performance.now() - t0) / 1000, ok: false });
    throw e;
  }
}

function check(ok: boolean, what: string): boolean {
  if (!ok) problems.push(what);
  return ok;
}

// ---- the pod's netns, as the runtime made it (for counters and the edit's timing) ----

function podNetnsName(uid: string): string {
  for (const f of readdirSync(CNI_CACHE_DIR)) {
    try {
      const j = JSON.parse(readFileSync(join(CNI_CACHE_DIR, f), 'utf8'));
      if (j.networkName !== 'cni-loopback' || !(j.cniArgs as string[][]).some(([k, v]) => k === 'K8S_POD_UID' && v === uid)) continue;
      const path: string = j.netns ?? j.result.interfaces.find((i: { sandbox?: string }) => i.sandbox).sandbox;
      return basename(path);
    } catch {
      /* being written or removed */
    }
  }
  throw new Error(`no CNI cache file names pod UID ${uid}`);
}

const getPod = async (cp: ControlPlane, ns: string, name: string): Promise<Pod> => waitPod(cp.kc, ns, name, 'read', () => true);
const statusOf = (p: Pod): InjectorStatus | undefined => decodeInjectorStatus(p.metadata?.annotations?.[STATUS_ANNOTATION]);

// ---- the table from inside the pod ----

interface TableView {
  rows: TableRow[];
  missing: string[];
  text: string;
}

async function tableInPod(cp: ControlPlane, pod: DemoPod, ips: Record<string, string>, nginxDev: string): Promise<TableView> {
  const routeN = await podExec(cp.kc, pod.namespace, pod.name, 'c', ['route', '-n']);
  if (routeN.status !== 'Success') throw new Error(`exec route -n in ${pod.namespace}/${pod.name}: ${routeN.status} ${routeN.stderr}`);
  const owned = spawnSync('ip', ['-n', podNetnsName(pod.pod.metadata!.uid!), '-4', 'route', 'show', 'proto', '111'], { encoding: 'utf8' });
  if (owned.status !== 0) throw new Error(`read the routes of protocol 111 of ${pod.namespace}/${pod.name}: ${owned.stderr}`);
  const byIp = new Map(SERVICES.map((s) => [ips[`${s.namespace}/${s.name}`], s]));
  const rows = parseRouteN(routeN.stdout, owned.stdout, (r) => {
    const s = byIp.get(r.destination);
    if (s) return `Service ${s.namespace}/${s.name} pinned by Route ${s.route}`;
    if (r.owner === 'ovnkube-route') return `CIDR of Route ${['172.16.10.0', '172.16.11.0'].includes(r.destination) ? 'demo' : 'demo-ovn'}`;
    if (r.destination === '0.0.0.0') return 'default route: Calico-like CNI';
    if (r.iface === 'eth0') return 'Calico-like CNI: link-local gateway';
    return 'OVN-like CNI (Multus network default/second)';
  });
  const svcRow = (ip: string, dev: string) => `${ip} 0.0.0.0 255.255.255.255 UH ${dev}`;
  const target = [
    '0.0.0.0 169.254.1.1 0.0.0.0 UG eth0',
    svcRow(ips['kube-system/nginx1']!, 'eth0'),
    svcRow(ips['default/nginx']!, nginxDev),
    `10.124.0.0 ${NODE_NETS.eth1.gateway} 255.255.0.0 UG eth1`,
    '10.124.2.0 0.0.0.0 255.255.255.0 U eth1',
    '169.254.1.1 0.0.0.0 255.255.255.255 UH eth0',
    '172.16.10.0 0.0.0.0 255.255.255.0 U eth1',
    '192.168.2.0 0.0.0.0 255.255.255.0 U eth0',
  ];
  const have = new Set(rows.map(rowKey));
  const missing = target.filter((r) => !have.has(r));
  const text = formatTable(
    ['Destination', 'Gateway', 'Genmask', 'Flags', 'Iface', 'Owner', 'Why'],
    rows.map((r) => [r.destination, r.gateway, r.genmask, r.flags, r.iface, r.owner, r.why]),
  );
  return { rows, missing, text };
}

// ---- traffic ----

interface TrafficRow {
  dst: string;
  what: string;
  planned: string;
  sent: number;
  replies: number;
  seen: Record<string, number>;
  carriedBy: string | null;
}

async function traffic(
  cp: ControlPlane,
  pod: DemoPod,
  counters: Counters,
  targets: Array<{ dst: string; what: string; planned: string }>,
): Promise<TrafficRow[]> {
  const out: TrafficRow[] = [];
  for (const t of targets) {
    const before = counters.read()[t.dst] ?? {};
    const ping = await podExec(cp.kc, pod.namespace, pod.name, 'c', ['ping', '-c', '3', '-w', '6', t.dst]);
    const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(ping.stdout);
    const after = counters.read()[t.dst] ?? {};
    const seen = Object.fromEntries(Object.keys(counters.veths).map((nic) => [nic, (after[nic] ?? 0) - (before[nic] ?? 0)]));
    const sent = m ? Number(m[1]) : 0;
    const carriers = Object.entries(seen)
      .filter(([, n]) => n > 0)
      .map(([nic]) => nic);
    out.push({ ...t, sent, replies: m ? Number(m[2]) : 0, seen, carriedBy: carriers.length === 1 ? carriers[0]! : null });
  }
  return out;
}

function trafficText(rows: TrafficRow[], veths: Record<string, string>): string {
  return formatTable(
    ['Destination', 'What', 'Planned', 'Sent', 'Replies', `on eth0 (${veths.eth0})`, `on eth1 (${veths.eth1})`, 'Verdict'],
    rows.map((r) => [
      r.dst,
      r.what,
      r.planned,
      String(r.sent),
      String(r.replies),
      String(r.seen.eth0 ?? 0),
      String(r.seen.eth1 ?? 0),
      r.carriedBy === r.planned && r.sent > 0 && (r.seen[r.planned] ?? 0) >= r.sent ? `left by ${r.planned}, as planned` : 'NOT as planned',
    ]),
  );
}

function checkTraffic(rows: TrafficRow[], when: string): void {
  for (const r of rows) {
    check(
      r.sent > 0 && r.carriedBy === r.planned && (r.seen[r.planned] ?? 0) >= r.sent,
      `${when}: pings to ${r.dst} (${r.what}) should leave by ${r.planned}; seen ${JSON.stringify(r.seen)}`,
    );
    check(r.replies === r.sent, `${when}: ${r.dst} (${r.what}): ${r.replies} of ${r.sent} replies from the sink`);
  }
}

// ---- the other pods ----

interface Explained {
  pod: string;
  kind: string;
  plan: string;
  status: string;
  events: string[];
  why: string;
}

async function explainPod(cp: ControlPlane, p: DemoPod, planKey: ReturnType<typeof parsePlanKey>): Promise<Explained> {
  const pod = await getPod(cp, p.namespace, p.name);
  const ann = pod.metadata?.annotations?.[PLAN_ANNOTATION];
  const decoded = ann === undefined ? undefined : decodePlan(ann, { namespace: p.namespace, keys: [planKey], requireSignature: true });
  const plan =
    ann === undefined
      ? 'none'
      : decoded?.ok
        ? `${decoded.plan.routes.length} route(s), signed by the cluster's key`
        : `present but refused: ${decoded?.ok === false ? decoded.error : '?'}`;
  const st = statusOf(pod);
  const status = !st
    ? 'none (the agent has nothing to report)'
    : `applied ${st.applied}, skipped ${st.skipped.length}${st.skipped.length ? ` (${st.skipped.map((s) => `${s.dst} ${s.dev ?? ''}: ${s.reason}`).join('; ')})` : ''}${st.plan === '' ? ', no plan in force' : ''}`;
  const ev = await kubeRequest(cp.kc, 'GET', `/api/v1/namespaces/${p.namespace}/events`, {
    query: { fieldSelector: `involvedObject.uid=${pod.metadata!.uid}` },
  });
  const events = (
    (ev.body?.items ?? []) as Array<{
      type: string;
      reason: string;
      message: string;
      source?: { component?: string };
      reportingComponent?: string;
    }>
  )
    .filter((e) => `${e.source?.component ?? ''}${e.reportingComponent ?? ''}`.includes('ovnkube-route'))
    .map((e) => `${e.type} ${e.reason}: ${e.message}`);
  let why: string;
  if (pod.spec?.hostNetwork) {
    why = 'hostNetwork pod: the webhook stamps no plan, and the agent never touches the host netns';
    check(ann === undefined && !st, `${p.namespace}/${p.name} (hostNetwork) should have no plan and no status`);
  } else if (p.namespace === OPTED_OUT) {
    why =
      'its namespace is labelled routes.k8s.ovn.org/inject=disabled: the webhook is not called there (no plan), and the agent would refuse a copied plan';
    check(
      ann === undefined && (!st || (st.plan === '' && st.applied === 0)),
      `${p.namespace}/${p.name} (opted out) should have no plan and no routes`,
    );
  } else if (p.kind === 'no eth1') {
    const skipped = st?.skipped.filter((s) => s.reason === 'dev-missing') ?? [];
    why = `it has no eth1 (no Multus network selected): its eth0 routes are in place and the ${skipped.length} eth1 route(s) are skipped (dev-missing), reported as a Normal Event, not an error`;
    check(
      decoded?.ok === true && skipped.length > 0 && skipped.every((s) => s.dev === 'eth1'),
      `${p.namespace}/${p.name} (no eth1) should have its eth1 routes skipped as dev-missing`,
    );
  } else {
    why = 'a replica like the observed pod: same plan, routes applied';
    check(
      decoded?.ok === true && (st?.applied ?? 0) > 0 && st!.skipped.length === 0,
      `${p.namespace}/${p.name} should have all its routes applied`,
    );
  }
  return { pod: `${p.namespace}/${p.name}`, kind: p.kind, plan, status, events, why };
}

// ---- the run ----

interface Leftovers {
  left: string[];
}

/**
 * What the demo made and did not remove. Only its own things count: its pods' netns (by
 * name), its sinks, folders, routes and counters; the bridge and the kubepods cgroups only
 * when no other node has taken the machine since ours stopped (one node at a time).
 */
function leftovers(nodeDir: string | null, cpDir: string | null, podNetns: string[]): Leftovers {
  const left: string[] = [];
  const netns = existsSync('/run/netns') ? readdirSync('/run/netns') : [];
  for (const n of netns.filter((x) => podNetns.includes(x) || x === SINK0 || x === SINK1)) left.push(`netns ${n}`);
  const otherNode = existsSync(join(NODE_STATE_DIR, 'state.json'));
  if (!otherNode && existsSync(`/sys/class/net/${ETH1_BRIDGE}`)) left.push(`bridge ${ETH1_BRIDGE}`);
  if (existsSync(HOST_STATE)) left.push(HOST_STATE);
  if (nodeDir && existsSync(nodeDir)) left.push(`node folder ${nodeDir}`);
  if (cpDir && existsSync(cpDir)) left.push(`control plane folder ${cpDir}`);
  const ip = spawnSync('ip', ['-4', 'route', 'show', 'type', 'blackhole'], { encoding: 'utf8' }).stdout;
  for (const r of DEMO_RANGES) if (ip.includes(r)) left.push(`blackhole ${r}`);
  if (spawnSync('nft', ['list', 'table', 'netdev', 'ovnkr_demo'], { stdio: 'ignore' }).status === 0)
    left.push('nftables table netdev ovnkr_demo');
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
  if (nodeDir && mounts.includes(nodeDir)) left.push(`mounts under ${nodeDir}`);
  if (!otherNode && existsSync('/sys/fs/cgroup/pids/kubepods')) left.push('kubepods cgroups');
  return { left };
}

async function main(): Promise<number> {
  opts = parseOptions(process.argv.slice(2));
  if (opts.down) return down();
  const t0 = performance.now();
  const report: Record<string, unknown> = {};
  let cp: ControlPlane | null = null;
  let node: RealNode | null = null;
  let addon: Addon | null = null;
  let work = '';
  const podNetns: string[] = [];
  let cleaning: Promise<void> | null = null;
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      human('\n[7/7] clean up');
      const c0 = performance.now();
      await addon?.stop().catch((e: Error) => progress(`stopping the add-on: ${e.message}`));
      removeHost(progress);
      await node?.stop().catch((e: Error) => progress(`stopping the node: ${e.message}`));
      await cp?.stop().catch((e: Error) => progress(`stopping the control plane: ${e.message}`));
      if (work) rmSync(work, { recursive: true, force: true });
      const l = leftovers(node?.dir ?? null, cp?.dir ?? null, podNetns);
      report.netns = podNetns;
      report.cleanup = l;
      check(l.left.length === 0, `left behind: ${l.left.join(', ')}`);
      human(
        l.left.length
          ? `      LEFT BEHIND: ${l.left.join(', ')}`
          : '      nothing left behind: processes, netns, mounts, bridge, cgroups, routes, counters, files',
      );
      phases.push({ name: 'clean up', seconds: (performance.now() - c0) / 1000, ok: l.left.length === 0 });
    })());
  let signals = 0;
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (++signals > 1) {
      process.stderr.write(`\n${sig} again: leaving now; run \`npm run demo -- --down\` to remove what is left\n`);
      process.exit(130);
    }
    interrupted = true;
    process.stderr.write(`\n${sig}: stopping and removing everything (press Ctrl-C again to leave at once)\n`);
    if (opts.keep) process.exit(130);
    void cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let failure: Error | null = null;
  try {
    await phase(1, 'bring up a control plane and a real node', async () => {
      if (process.getuid?.() !== 0)
        throw new Error('the demo needs root (it runs containerd, kubelet and network namespaces): run it with sudo');
      const why = nodeUnavailable();
      if (why) throw new Error(`${why} (install the prerequisites once with scripts/prereqs.sh)`);
      // (The node's own pod ranges are the harness's: only the ranges the demo blackholes count.)
      const clash = overlapsHost([...DEMO_RANGES, SERVICE_RANGE]);
      if (clash.length) throw new Error(`the demo's address ranges clash with this host's: ${clash.join('; ')}`);
      const want = async (set: 'controlplane' | 'node') => {
        const b = await findBinaries({ allowBuild: true, set, log: progress });
        if (b.dir === null) throw new Error(`no ${set} binaries: ${b.reason}`);
        return b.dir;
      };
      progress(
        'finding the Kubernetes binaries (the first time they are built from the Go module proxy: about 20 minutes on 2 idle cores)',
      );
      const cpBin = await want('controlplane');
      const nodeBin = await want('node');
      const dir = opts.keep ? keepDir() : undefined;
      cp = await startControlPlane({ binDir: cpBin, keep: opts.keep, log: progress, ...(dir ? { dir } : {}) });
      if (opts.keep) writeClusterState(cp, cpBin);
      progress(`kube-apiserver ${cp.server}`);
      node = await startNode(cp, { binDir: nodeBin, keep: opts.keep, log: progress });
      progress(`node ${node.name} Ready (containerd + kubelet + Multus; eth0 Calico-like ptp, eth1 OVN-like bridge ${ETH1_BRIDGE})`);
      work = opts.keep ? join(cp.dir, 'demo') : mkdtempSync(join(tmpdir(), 'ovnkube-route-demo-'));
      mkdirSync(work, { recursive: true });
    });
    const c = cp!;
    const n = node!;

    addon = await phase(2, 'install the add-on', () => installAddon(c, n, work, opts.keep, progress));
    const planKey = parsePlanKey(readFileSync(join(addon.certDir, 'plan.key'), 'utf8'));

    const world = await phase(3, "create the design document's world", async () => {
      const ips = await createServices(c.kc);
      progress(`Services: ${SERVICES.map((s) => `${s.namespace}/${s.name} ${ips[`${s.namespace}/${s.name}`]}`).join(', ')}`);
      setupHost({
        serviceIPs: Object.values(ips),
        eth1Targets: [NODE_NETS.eth1.gateway, '172.16.10.1', '172.16.20.1'],
        blackholes: [...DEMO_RANGES, SERVICE_RANGE],
      });
      progress(
        `sinks ${SINK1} (on ${ETH1_BRIDGE}) and ${SINK0} (behind the host) own the Service IPs and the OVN gateway; the host drops ${[...DEMO_RANGES, SERVICE_RANGE].join(', ')}`,
      );
      await applyRoute(c.kc, 'demo', demoRoute('eth1'));
      await applyRoute(c.kc, 'demo-ovn', OVN_ROUTE);
      progress(
        "Routes: demo (the design document's, unchanged) and demo-ovn (192.168.2.0/24 to eth0, 172.16.20.0/24 via the OVN gateway, Service default/api to eth0)",
      );
      await createNamespaces(c.kc);
      const pods = await createPods(c.kc, n.name);
      for (const p of pods) {
        await waitPod(c.kc, p.namespace, p.name, 'Running', podRunning);
        if (!p.pod.spec?.hostNetwork) podNetns.push(podNetnsName(p.pod.metadata!.uid!));
        progress(`pod ${p.namespace}/${p.name} (${p.kind}) Running`);
      }
      const web = pods.filter((p) => p.kind.startsWith('replica'));
      for (const p of web) {
        await until(`${p.namespace}/${p.name}: routes reported applied`, async () => {
          const s = statusOf(await getPod(c, p.namespace, p.name));
          return s && s.applied === 7 && s.skipped.length === 0;
        });
      }
      return { ips, pods, observed: web[0]! };
    });
    const { ips, pods, observed } = world;
    report.services = ips;
    report.pod = { namespace: observed.namespace, name: observed.name, uid: observed.pod.metadata?.uid };

    const targets = (nginxDev: string) => [
      { dst: ips['default/nginx']!, what: 'Service default/nginx', planned: nginxDev },
      { dst: ips['kube-system/nginx1']!, what: 'Service kube-system/nginx1', planned: 'eth0' },
    ];
    const netnsName = podNetnsName(observed.pod.metadata!.uid!);
    const counters = countOn(hostPeers(netnsName, ['eth0', 'eth1']), Object.values(ips));

    const before = await phase(4, `the routing table inside ${observed.namespace}/${observed.name}, and where its packets go`, async () => {
      const st = statusOf(await getPod(c, observed.namespace, observed.name));
      human(
        `      the agent reports: ${st?.applied} routes applied, ${st?.skipped.length} skipped; ${
          st?.start?.mode === 'cni'
            ? 'written during CNI ADD, before the app container started'
            : `written after the pod started (${st?.start?.reason ?? 'no CNI-time report'})`
        }`,
      );
      check(
        st?.start?.mode === 'cni',
        `${observed.namespace}/${observed.name}: routes should be written during CNI ADD (status start: ${JSON.stringify(st?.start)})`,
      );
      const table = await tableInPod(c, observed, ips, 'eth1');
      human(
        indent(
          `route -n, run in the pod through the API server (exec); Owner from the routes' protocol (111 = ovnkube-route), read on the node:\n${table.text}`,
          6,
        ),
      );
      check(table.missing.length === 0, `before the edit, rows of the target table missing in the pod: ${table.missing.join('; ')}`);
      const t = await traffic(c, observed, counters, targets('eth1'));
      human(
        indent(
          `\n3 pings to each Service IP; ICMP echo requests counted on the pod's host-side veths:\n${trafficText(t, counters.veths)}`,
          6,
        ),
      );
      checkTraffic(t, 'before the edit');
      return { start: st?.start ?? null, table: table.rows, missingTargetRows: table.missing, traffic: t, veths: counters.veths };
    });
    report.before = before;

    const edit = await phase(5, 'edit the Route live: failover of Service default/nginx from eth1 to eth0', async () => {
      const pre = await getPod(c, observed.namespace, observed.name);
      const replicas = pods.filter((x) => x.kind.startsWith('replica'));
      const planBefore = new Map<string, string>();
      for (const p of replicas) planBefore.set(p.name, statusOf(await getPod(c, p.namespace, p.name))?.plan ?? '');
      const nginx = ips['default/nginx']!;
      const e0 = performance.now();
      await applyRoute(c.kc, 'demo', demoRoute('eth0'));
      await until(
        'the new route in the pod',
        async () => {
          const r = spawnSync('ip', ['-n', netnsName, 'route', 'show', `${nginx}/32`], { encoding: 'utf8' }).stdout;
          return /dev eth0 .*proto (111|ovnkube-route)/.test(r);
        },
        120_000,
        10,
      );
      const seconds = (performance.now() - e0) / 1000;
      human(`      the pod had its new route ${seconds.toFixed(2)} s after the Route was edited (kubectl apply equivalent)`);
      await until('every replica reported the new plan', async () => {
        for (const p of replicas) {
          const s = statusOf(await getPod(c, p.namespace, p.name));
          if (!s || s.applied !== 7 || s.plan === planBefore.get(p.name)) return false;
        }
        return true;
      });
      const table = await tableInPod(c, observed, ips, 'eth0');
      human(indent(`route -n in the pod after the edit:\n${table.text}`, 6));
      check(table.missing.length === 0, `after the edit, rows missing in the pod: ${table.missing.join('; ')}`);
      const t = await traffic(c, observed, counters, targets('eth0'));
      human(indent(`\npings again:\n${trafficText(t, counters.veths)}`, 6));
      checkTraffic(t, 'after the edit');
      const post = await getPod(c, observed.namespace, observed.name);
      const started = (p: Pod) =>
        JSON.stringify(
          (p.status?.containerStatuses as Array<{ state?: { running?: { startedAt?: string } }; restartCount?: number }>).map((s) => [
            s.state?.running?.startedAt,
            s.restartCount,
          ]),
        );
      const sameUid = pre.metadata?.uid === post.metadata?.uid;
      const sameStart = started(pre) === started(post);
      check(sameUid && sameStart, 'the pod restarted during the edit');
      human(
        `      no restart: same pod UID ${post.metadata?.uid}, same container start ${JSON.parse(started(post))[0][0]}, restarts ${JSON.parse(started(post))[0][1]}`,
      );
      return {
        route: 'demo',
        service: 'default/nginx',
        from: 'eth1',
        to: 'eth0',
        secondsToPod: Number(seconds.toFixed(3)),
        sameUid,
        sameStart,
        table: table.rows,
        missingTargetRows: table.missing,
        traffic: t,
      };
    });
    report.edit = edit;

    report.others = await phase(6, 'why the other pods have what they have', async () => {
      const out: Explained[] = [];
      for (const p of pods.filter((x) => x !== observed)) out.push(await explainPod(c, p, planKey));
      for (const e of out) {
        human(`      ${e.pod} (${e.kind})\n        plan:   ${e.plan}\n        agent:  ${e.status}\n        why:    ${e.why}`);
        for (const ev of e.events) human(`        event:  ${ev}`);
      }
      return out;
    });

    if (opts.keep) {
      await phase(7, 'left running (--keep)', async () => {
        human(
          [
            `      export KUBECONFIG=${c.kubeconfigPath}`,
            `      node dist/bin/ovnkube-route.js routes --pod ${observed.namespace}/${observed.name}     # the table on the node, with owners`,
            `      ip -n ${netnsName} route                                            # the same, with ip`,
            `      logs: ${c.dir}/*.log (webhook, agent, kube-apiserver, etcd)`,
            '      remove everything: npm run demo -- --down',
          ].join('\n'),
        );
        report.kept = { kubeconfig: c.kubeconfigPath, server: c.server, logs: c.dir };
      });
    }
  } catch (e) {
    failure = e as Error;
    problems.push(interrupted ? 'interrupted' : failure.message);
    if (!interrupted) human(`\nFAILED: ${failure.message}`);
  }
  if (!opts.keep) await cleanup();
  const seconds = (performance.now() - t0) / 1000;
  const verdict = problems.length === 0 ? 'pass' : 'fail';
  human(
    `\n${verdict === 'pass' ? 'PASS' : 'FAIL'}: ${
      verdict === 'pass'
        ? 'the target table is in the pod, traffic left by the planned NIC before and after a live edit, and no pod restarted'
        : problems.join('\n      ')
    } (${seconds.toFixed(0)} s in all)`,
  );
  if (opts.json)
    process.stdout.write(`${JSON.stringify({ verdict, problems, seconds: Number(seconds.toFixed(1)), phases, ...report }, null, 2)}\n`);
  return verdict === 'pass' ? 0 : 1;
}

/** The cluster folder of a `--keep` demo: the one `npm run cluster:up` and `cluster:down` use. */
function keepDir(): string {
  const dir = process.env.OVNKUBE_ROUTE_CLUSTER_DIR || join(tmpdir(), 'ovnkube-route-cluster');
  if (existsSync(join(dir, 'state.json'))) {
    throw new Error(
      `a cluster is recorded in ${dir} (npm run cluster:up, or an earlier --keep demo): remove it with \`npm run demo -- --down\` first`,
    );
  }
  rmSync(dir, { recursive: true, force: true });
  return dir;
}

/** What cluster:up records, so that cluster:down (and `--down`) stop a kept demo's cluster. */
function writeClusterState(cp: ControlPlane, binDir: string): void {
  writeFileSync(
    join(cp.dir, 'state.json'),
    JSON.stringify(
      {
        server: cp.server,
        kubeconfig: cp.kubeconfigPath,
        pids: cp.pids,
        binDir,
        startedAt: new Date().toISOString(),
        by: 'npm run demo -- --keep',
      },
      null,
      2,
    ) + '\n',
  );
}

/** `--down`: the demo's host pieces, then cluster:down (the node, the add-on, the control plane). */
function down(): number {
  removeHost((l) => human(l));
  const r = spawnSync(process.execPath, [join(repoRoot, 'scripts', 'controlplane', 'cluster-down.mjs')], { stdio: 'inherit' });
  return r.status ?? 1;
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`ovnkube-route demo: ${e.message}\n`);
    process.exit(2);
  },
);
