// The real node tier: kube-apiserver + etcd, and a real node (containerd + runc, kubelet,
// Multus giving pods eth0 and eth1) on this machine. The add-on runs as it is deployed, as
// host processes: the webhook + controller as deploy/'s webhook ServiceAccount and the agent
// as the injector's, with a token bound to its own (hostNetwork) pod on the node. Pods are
// created through the API; their routes are read from inside the pod (exec through the API
// server) and with netlink in the netns the runtime made, found through the CNI cache files
// containerd wrote. Nothing here writes a cache file or makes a netns by hand.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import t, { type Test } from 'tap';
import { decodeInjectorStatus } from '../../core/injector-status.js';
import { STATUS_ANNOTATION, type Pod } from '../../core/types.js';
import { findBinaries } from '../cluster/binaries.js';
import { kubeConfigWithToken } from '../cluster/helpers.js';
import { applyManifests, kubeRequest, loadYamlDocuments } from '../cluster/k8s.js';
import { CNI_CACHE_DIR, ETH1_BRIDGE, NODE_NETS, nodeUnavailable, startNode, stopNode, type RealNode } from '../cluster/node.js';
import { agentKubeconfig, nodePod, podExec, podRunning, waitPod, waitPodGone } from '../cluster/pods.js';
import { withControlPlane } from '../cluster/tap.js';
import { cliPath, repoRoot } from '../util/fixtures.js';
import { ip, routeLines, type TestNetns } from '../util/netns.js';
import { tierGate } from '../util/tier.js';
import { applyRoute, createNamespace, installAddon, planRoutes, registerWebhook, startWebhook, until } from '../webhook-e2e/helpers.js';
import { freePort, httpGet, metricSum } from '../util/http.js';

const NODE_TIER = 'node (real kubelet + containerd + Multus)';
const APPS = 'node-apps';

/** The pod's CNI cache files (by its UID in cniArgs), as containerd wrote them. */
function cacheFilesOfPod(uid: string): Array<{ file: string; json: any; text: string }> {
  const out = [];
  for (const f of readdirSync(CNI_CACHE_DIR)) {
    const file = join(CNI_CACHE_DIR, f);
    try {
      const text = readFileSync(file, 'utf8');
      const json = JSON.parse(text);
      if ((json.cniArgs as string[][]).some(([k, v]) => k === 'K8S_POD_UID' && v === uid)) out.push({ file, json, text });
    } catch {
      // being written or removed
    }
  }
  return out;
}

/** The pod's netns as the test helpers read it (`ip -n`), from its loopback cache file. */
function podNetns(uid: string): TestNetns {
  const lo = cacheFilesOfPod(uid).find((c) => c.json.networkName === 'cni-loopback');
  if (!lo) throw new Error(`no cni-loopback cache file for pod UID ${uid}`);
  const path: string = lo.json.netns ?? lo.json.result.interfaces.find((i: { sandbox?: string }) => i.sandbox).sandbox;
  const name = basename(path);
  // Read only: the netns belongs to the runtime (never deleted or written here).
  return {
    name,
    path,
    ip: (...args) => ip('-n', name, ...args),
    json: <T>(...args: string[]) => JSON.parse(ip('-n', name, '-j', ...args) || '[]') as T,
    del: () => {},
  };
}

/** `dst dev` of each route line of busybox `ip route` (as printed inside the pod). */
function insideRoutes(text: string): string[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const m = /^(\S+)(?: via (\S+))? dev (\S+)/.exec(l.trim());
      return m ? `${m[1]}${m[2] ? ` via ${m[2]}` : ''} dev ${m[3]}` : `? ${l}`;
    })
    .sort();
}

const cp = await withControlPlane(t);
const unavailable = nodeUnavailable();
if (cp && tierGate(t, NODE_TIER, unavailable)) {
  const bins = await findBinaries({ allowBuild: false, set: 'node' });
  if (bins.dir === null && bins.fatal) throw new Error(`node binaries: ${bins.reason}`);
  if (bins.dir !== null || tierGate(t, NODE_TIER, bins.reason)) await t.test('the add-on on a real node', (t) => realNode(t, bins.dir!));
}

async function realNode(t: Test, binDir: string): Promise<void> {
  const node: RealNode = await startNode(cp!, { binDir, log: (l) => t.comment(l) });
  const work = mkdtempSync(join(tmpdir(), 'ovrt-node-e2e-'));
  let agent: ChildProcess | undefined;
  const stopAgent = async (): Promise<void> => {
    const a = agent;
    if (!a || a.exitCode !== null || a.signalCode !== null) return;
    const exited = new Promise<void>((r) => a.once('exit', () => r()));
    a.kill('SIGTERM');
    await exited;
  };
  try {
    await scenario(
      t,
      node,
      work,
      (a) => {
        agent = a;
      },
      stopAgent,
      () => agent,
    );
  } finally {
    await stopAgent();
    await node.stop();
    rmSync(work, { recursive: true, force: true });
  }
  await t.test('the node left nothing behind', (t) => nothingLeft(t, node));

  await t.test('a node that crashed with a pod running is removed all the same', async (t) => {
    // keep: no watchdog; then kubelet and containerd die by SIGKILL, leaving shims, the pod's
    // processes, its netns, cache files, mounts, the bridge and the cgroups behind.
    const crashed = await startNode(cp!, { binDir, keep: true, log: (l) => t.comment(l) });
    await createNamespace(cp!.kc, 'node-crash');
    t.equal(
      (await kubeRequest(cp!.kc, 'POST', '/api/v1/namespaces/node-crash/pods', { body: nodePod('victim', crashed.name) })).status,
      201,
    );
    const pod = await waitPod(cp!.kc, 'node-crash', 'victim', 'Running', podRunning);
    t.ok(cacheFilesOfPod(pod.metadata!.uid!).length > 0, 'the pod has its cache files');
    for (const name of ['kubelet', 'containerd']) process.kill(-crashed.pids[name]!, 'SIGKILL');
    await until(
      'kubelet and containerd are dead',
      () => !existsSync(`/proc/${crashed.pids.kubelet}/cmdline`) && !existsSync(`/proc/${crashed.pids.containerd}/cmdline`),
    );
    const logged: string[] = [];
    await stopNode(null, (l) => {
      logged.push(l);
      t.comment(l);
    }); // what `npm run node:down` does with no API server
    t.match(logged.join('\n'), /killed shim/, 'the shims were found and killed');
    t.match(logged.join('\n'), /removed \d+ CNI cache files of sandboxes that got no CNI DEL/, 'the sandbox was cleaned without CNI DEL');
    await nothingLeft(t, crashed);
  });
}

async function nothingLeft(t: Test, node: RealNode): Promise<void> {
  {
    t.notOk(existsSync(node.dir), `its folder ${node.dir} is gone`);
    for (const [name, pid] of Object.entries(node.pids))
      t.notOk(
        existsSync(`/proc/${pid}/cmdline`) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(node.dir),
        `${name} (pid ${pid}) is gone`,
      );
    t.same(
      readdirSync(CNI_CACHE_DIR).filter((f) => f.startsWith('cni-loopback-') || f.startsWith('multus-cni-network-')),
      [],
      'no CNI cache file of its sandboxes',
    );
    t.notOk(existsSync(`/sys/class/net/${ETH1_BRIDGE}`), 'the eth1 bridge is gone');
    t.notOk(existsSync('/sys/fs/cgroup/pids/kubepods'), 'the kubepods cgroups are gone');
    t.notOk(readFileSync('/proc/self/mountinfo', 'utf8').includes(node.dir), 'nothing mounted under its folder');
    t.notOk(
      readdirSync('/run/netns').some((n) => n.startsWith('cni-')),
      'no pod netns left in /run/netns',
    );
    if (existsSync('/run/ovnkube-route-node/state.json')) {
      // Another test run's node took the machine the moment ours let it go: its kubelet has
      // made its chains again, and ip_forward is its own.
      t.comment('another node runs on this machine now: its kubelet chains are its own');
    } else {
      const chains = ['iptables', 'ip6tables'].flatMap((bin) =>
        ['filter', 'nat', 'mangle'].flatMap((table) =>
          (spawnSync(bin, ['-w', '-t', table, '-S'], { encoding: 'utf8' }).stdout ?? '')
            .split('\n')
            .filter((l) => /^-N KUBE-(KUBELET-CANARY|FIREWALL|IPTABLES-HINT)$/.test(l))
            .map((l) => `${bin} ${table} ${l.slice(3)}`),
        ),
      );
      t.same(chains, [], "no iptables chain of kubelet's is left (canaries, KUBE-FIREWALL, KUBE-IPTABLES-HINT)");
    }
    if (existsSync('/run/ovnkube-route-node/state.json')) {
      // Another test run's node took the machine the moment ours let it go (its ptp plugin
      // sets ip_forward): what ours restored cannot be read now.
      t.comment('another node runs on this machine now: ip_forward and the node state are its own');
    } else {
      t.equal(readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim(), node.ipForwardBefore, 'ip_forward as it was before the node');
    }
  }
}

async function scenario(
  t: Test,
  node: RealNode,
  work: string,
  setAgent: (a: ChildProcess) => void,
  stopAgent: () => Promise<void>,
  agentRef: () => ChildProcess | undefined,
): Promise<void> {
  const { kc } = cp!;
  // The add-on: CRD, webhook + controller (registered), plan key.
  const addon = await installAddon(t, cp!);
  const wh = await startWebhook({ kubeconfig: addon.kubeconfig, certDir: addon.certDir, args: ['--trusted-user', addon.user] });
  t.teardown(() => wh.stop('SIGKILL'));
  await registerWebhook(kc, wh.port, addon.certDir);

  // The agent: deploy/'s injector identity and write policy; its token is bound to its own
  // pod on the node (hostNetwork, as the DaemonSet's), so it names the node.
  const manifests = ['node-injector-rbac.yaml', 'node-injector-priorityclass.yaml', 'node-injector-policy.yaml'].flatMap((f) =>
    loadYamlDocuments(join(repoRoot, 'deploy', f)),
  );
  for (const r of await applyManifests(kc, manifests)) t.ok(r.ok, `${r.object} applied`, { message: r.message });
  const kubeconfig = await agentKubeconfig(cp!, node.name, 'injector-self', join(work, 'injector.kubeconfig'));
  const stateDir = mkdtempSync(join(work, 'state-'));
  // CNI-time injection as deploy/ runs it: the agent serves the socket and chains the plugin
  // into the node's CNI config (its private dirs here, the host's in the DaemonSet).
  const cniSocket = join(work, 'cni.sock');
  const missedDir = join(work, 'cni-missed');
  let port = 0;
  let log = '';
  const startAgent = async (): Promise<void> => {
    port = await freePort();
    log = '';
    const a = spawn(
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
        stateDir,
        '--kubeconfig',
        kubeconfig,
        '--metrics-addr',
        `127.0.0.1:${port}`,
        '--resync-period',
        '10s',
        '--log-level',
        'debug',
        '--cni-socket',
        cniSocket,
        '--cni-missed-dir',
        missedDir,
        '--cni-bin-dir',
        join(node.dir, 'cni', 'bin'),
        '--cni-conf-dir',
        join(node.dir, 'cni', 'net.d'),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_NAME: '' } },
    );
    a.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
    });
    setAgent(a);
    await until('the agent is ready', async () => (await httpGet(port, '/readyz')).status === 200, 60_000);
  };
  const metrics = async (): Promise<string> => (await httpGet(port, '/metrics')).body;
  await startAgent();

  // The design document's world: two Services, the demo Route plus a CIDR via the OVN gateway.
  const service = async (ns: string, name: string): Promise<string> => {
    const res = await kubeRequest(kc, 'POST', `/api/v1/namespaces/${ns}/services`, {
      body: { metadata: { name }, spec: { ports: [{ port: 80 }] } },
    });
    t.equal(res.status, 201, `Service ${ns}/${name}`, { message: res.body?.message });
    return String(res.body.spec.clusterIP);
  };
  const nginx = await service('default', 'nginx');
  const nginx1 = await service('kube-system', 'nginx1');
  await createNamespace(kc, APPS);
  await applyRoute(kc, 'demo', {
    route: [
      { dst: '172.16.10.0/24', dev: 'eth1' },
      { dst: '192.168.2.0/24', dev: 'eth0' },
      { dst: '172.16.20.0/24', dev: 'eth1', via: NODE_NETS.eth1.gateway },
    ],
    svc: [
      { namespace: 'default', name: 'nginx', dev: 'eth1' },
      { namespace: 'kube-system', name: 'nginx1', dev: 'eth0' },
    ],
  });
  const ours = (svcEth: { nginx: string; nginx1: string }) => [
    `${nginx} dev ${svcEth.nginx}`,
    `${nginx1} dev ${svcEth.nginx1}`,
    '172.16.10.0/24 dev eth1',
    '172.16.20.0/24 via 10.124.2.1 dev eth1',
    '192.168.2.0/24 dev eth0',
  ];
  const CNI_ROWS = [
    '10.124.0.0/16 via 10.124.2.1 dev eth1',
    '10.124.2.0/24 dev eth1',
    '169.254.1.1 dev eth0',
    'default via 169.254.1.1 dev eth0',
  ];
  const containerState = (p: Pod) =>
    JSON.stringify(
      (p.status?.containerStatuses as Array<{ state?: unknown; restartCount?: number }>).map((c) => [c.state, c.restartCount]),
    );
  const statusOf = (p: Pod) => decodeInjectorStatus(p.metadata?.annotations?.[STATUS_ANNOTATION]);
  const proto = (lines: string[]) =>
    lines
      .filter((l) => l.endsWith('proto 111'))
      .map((l) => l.replace(/ proto 111$/, ''))
      .sort();

  let web: Pod | undefined;
  await t.test('a pod created through the API is stamped, and its routes are in its netns before anyone looks', async (t) => {
    const res = await kubeRequest(kc, 'POST', `/api/v1/namespaces/${APPS}/pods`, { body: nodePod('web', node.name) });
    t.equal(res.status, 201, 'created', { message: res.body?.message });
    t.same(
      planRoutes(res.body as Pod, addon.keys)?.sort(),
      [`${nginx}/32 eth1`, `${nginx1}/32 eth0`, '172.16.10.0/24 eth1', '172.16.20.0/24 eth1 via 10.124.2.1', '192.168.2.0/24 eth0'].sort(),
      'the webhook stamped the signed plan at admission',
    );
    web = await waitPod(kc, APPS, 'web', 'Running', podRunning);
    const uid = web.metadata!.uid!;
    const want = ours({ nginx: 'eth1', nginx1: 'eth0' });
    await until('status: every route applied', async () => {
      const s = statusOf(await waitPod(kc, APPS, 'web', 'reported', () => true));
      return s && s.applied === 5 && s.skipped.length === 0;
    });
    // netlink, in the netns the runtime made (found through the cache file containerd wrote).
    const ns = podNetns(uid);
    t.same(proto(routeLines(ns)), [...want].sort(), "ovnkube-route's rows, read with netlink in the pod netns");
    // From inside the pod, through the API server, as a user would.
    const inside = await podExec(kc, APPS, 'web', 'c', ['ip', 'route']);
    t.equal(inside.status, 'Success', 'exec ip route', { stderr: inside.stderr });
    t.same(insideRoutes(inside.stdout), [...CNI_ROWS, ...want].sort(), 'inside the pod: the CNI rows and ours, exactly');
    const table = await podExec(kc, APPS, 'web', 'c', ['route', '-n']);
    t.comment(`route -n inside ${APPS}/web:\n${table.stdout}`);
  });

  await t.test('the CNI cache files are what libcni writes, and discovery used them', async (t) => {
    const uid = web!.metadata!.uid!;
    const files = cacheFilesOfPod(uid);
    t.same(
      files.map((f) => f.json.networkName).sort(),
      ['cni-loopback', 'multus-cni-network'],
      'one file per network: loopback and multus',
    );
    for (const f of files) {
      const sandbox = f.json.containerId as string;
      t.match(basename(f.file), new RegExp(`^${f.json.networkName}-${sandbox}-${f.json.ifName}$`), 'named <network>-<sandbox ID>-<ifname>');
      t.equal(statSync(f.file).mode & 0o777, 0o600, 'mode 0600');
      t.notOk(f.text.includes('\n'), 'compact JSON');
      t.comment(
        `${basename(f.file)}: top-level netns key ${'netns' in f.json ? 'present' : 'absent'}; cniArgs order ${(f.json.cniArgs as string[][]).map(([k]) => k).join(',')}`,
      );
    }
    const found = log
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg?: string; source?: string })
      .filter((l) => l.msg === 'found pod netns');
    t.ok(found.length > 0 && found.every((l) => l.source === 'cni-cache'), 'the agent found the netns through the cache', { found });
  });

  await t.test('a Route edit reaches the running pod, with no restart', async (t) => {
    const before = await waitPod(kc, APPS, 'web', 'read', () => true);
    const started = containerState(before);
    await applyRoute(kc, 'demo', {
      route: [
        { dst: '172.16.10.0/24', dev: 'eth1' },
        { dst: '192.168.2.0/24', dev: 'eth0' },
        { dst: '172.16.20.0/24', dev: 'eth1', via: NODE_NETS.eth1.gateway },
      ],
      svc: [
        { namespace: 'default', name: 'nginx', dev: 'eth0' },
        { namespace: 'kube-system', name: 'nginx1', dev: 'eth0' },
      ],
    });
    const want = ours({ nginx: 'eth0', nginx1: 'eth0' }).sort();
    const ns = podNetns(web!.metadata!.uid!);
    await until('the edit is in the pod netns', () => JSON.stringify(proto(routeLines(ns))) === JSON.stringify(want));
    const inside = await podExec(kc, APPS, 'web', 'c', ['ip', 'route']);
    t.same(insideRoutes(inside.stdout), [...CNI_ROWS, ...want].sort(), 'inside the pod');
    const after = await waitPod(kc, APPS, 'web', 'read', () => true);
    t.equal(after.metadata!.uid, before.metadata!.uid, 'same pod');
    t.equal(containerState(after), started, 'same container, same start, no restart');
  });

  await t.test(
    'route attributes (src, metric, mtu, advmss) and via gateway reach the running pod exactly, follow edits, and go with their Route',
    async (t) => {
      const ns = podNetns(web!.metadata!.uid!);
      // The pod's own eth1 address (IPAM gave it) is the only valid src on eth1.
      const addrs = ns.json<{ addr_info: { family: string; local: string }[] }[]>('addr', 'show', 'dev', 'eth1');
      const src = addrs[0]?.addr_info.find((a) => a.family === 'inet')?.local;
      t.ok(src, `the pod's eth1 address: ${src}`);
      const DST = '172.16.30.0/24';
      const shown = (): string => ns.ip('route', 'show', 'table', 'main', 'exact', DST).trim().replace(/\s+/g, ' ');
      const rule = { dst: DST, dev: 'eth1', via: NODE_NETS.eth1.gateway, src, metric: 100, mtu: 1400, advmss: 1200 };
      // And `via: gateway`: the node agent finds this node's eth1 gateway in the pod's table.
      const GW = '172.16.31.0/24';
      await applyRoute(kc, 'attrs', { route: [rule, { dst: GW, dev: 'eth1', via: 'gateway' }] });
      await until(
        'via gateway resolved in the pod netns',
        () => ns.ip('route', 'show', 'exact', GW).trim().replace(/\s+/g, ' ') === `${GW} via ${NODE_NETS.eth1.gateway} dev eth1 proto 111`,
      );
      t.pass(`via gateway became ${NODE_NETS.eth1.gateway}, this node's eth1 gateway`);
      t.match(
        planRoutes(await waitPod(kc, APPS, 'web', 'read', () => true), addon.keys)?.join('\n') ?? '',
        new RegExp(`${GW.replace(/\./g, '\\.')} eth1 via gateway`),
        'the plan carries the keyword, not an address',
      );
      const want = (mtu: number) => `${DST} via ${NODE_NETS.eth1.gateway} dev eth1 proto 111 src ${src} metric 100 mtu ${mtu} advmss 1200`;
      await until('the route with its attributes is in the pod netns', () => shown() === want(1400));
      t.equal(shown(), want(1400), 'written exactly');
      // The kernel's own lookup inside the pod, through the API server as a user would.
      const get = await podExec(kc, APPS, 'web', 'c', ['ip', 'route', 'get', '172.16.30.9']);
      t.match(
        get.stdout.replace(/\s+/g, ' '),
        new RegExp(`via ${NODE_NETS.eth1.gateway.replace(/\./g, '\\.')} dev eth1 src ${src!.replace(/\./g, '\\.')}`),
        'traffic to it leaves eth1 from src',
        { stdout: get.stdout },
      );
      // An attribute edit is a live change too.
      await applyRoute(kc, 'attrs', {
        route: [
          { ...rule, mtu: 1450 },
          { dst: GW, dev: 'eth1', via: 'gateway' },
        ],
      });
      await until('the mtu edit is in the pod netns', () => shown() === want(1450));
      t.equal(shown(), want(1450), 'one route, the new mtu');
      t.equal((await kubeRequest(kc, 'DELETE', '/apis/k8s.ovn.org/v1/routes/attrs')).status, 200, 'Route deleted');
      await until('the routes left with their Route', () => shown() === '' && ns.ip('route', 'show', 'exact', GW).trim() === '');
    },
  );

  await t.test("symmetric return paths: a ping to the pod's eth1 address from off its subnet is answered through eth1", async (t) => {
    // Only netns the test makes: "gw" on the eth1 bridge holds eth1's gateway (10.124.2.1, which
    // nobody holds on this node) and the client address 172.16.70.9. Without the rule the
    // pod's reply follows its main table's default (eth0, to the host, which blackholes the
    // test range while the test runs: nothing leaves the machine); with it, eth1's table.
    const ns = podNetns(web!.metadata!.uid!);
    const podIP = ns
      .json<{ addr_info: { family: string; local: string }[] }[]>('addr', 'show', 'dev', 'eth1')[0]
      ?.addr_info.find((a) => a.family === 'inet')?.local;
    t.ok(podIP, `the pod's eth1 address: ${podIP}`);
    ip('route', 'add', 'blackhole', '172.16.70.0/24');
    t.teardown(() => {
      try {
        ip('route', 'del', 'blackhole', '172.16.70.0/24');
      } catch {
        /* gone */
      }
    });
    const gw = `ovrt-sym-${process.pid}`;
    const hostEnd = `ovrtsym${process.pid % 100000}`;
    ip('netns', 'add', gw);
    t.teardown(() => {
      try {
        ip('netns', 'del', gw);
      } catch {
        /* gone */
      }
    });
    ip('link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', gw);
    t.teardown(() => {
      try {
        ip('link', 'del', hostEnd);
      } catch {
        /* went with the netns */
      }
    });
    ip('link', 'set', hostEnd, 'master', ETH1_BRIDGE, 'up');
    for (const args of [
      ['addr', 'add', `${NODE_NETS.eth1.gateway}/24`, 'dev', 'eth0'],
      ['link', 'set', 'eth0', 'up'],
      ['link', 'set', 'lo', 'up'],
      ['addr', 'add', '172.16.70.9/32', 'dev', 'lo'],
    ])
      ip('-n', gw, ...args);
    const ping = (): string => {
      // ICMP echo from 172.16.70.9 (a raw socket, in the gw netns); the pod's kernel answers
      // from the address pinged. Retries for up to ~20 s, exits 0 on the first reply.
      const py = `
import socket, struct, sys
dst, src = sys.argv[1], sys.argv[2]
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.bind((src, 0)); s.settimeout(0.5)
for seq in range(40):
    body = struct.pack('!BBHHH', 8, 0, 0, 0x5359, seq) + b'symmetric!'
    s.sendto(struct.pack('!BBHHH', 8, 0, csum(body), 0x5359, seq) + b'symmetric!', (dst, 0))
    try:
        while True:
            data, addr = s.recvfrom(2048)
            if addr[0] == dst and data[(data[0] & 15) * 4] == 0: print('reply from', dst); sys.exit(0)
    except socket.timeout:
        pass
print('no reply'); sys.exit(1)`;
      const r = spawnSync('ip', ['netns', 'exec', gw, 'python3', '-c', py, podIP!, '172.16.70.9'], { encoding: 'utf8' });
      return (r.stdout ?? '') + (r.stderr ?? '');
    };
    const lookup = async (): Promise<string> =>
      (await podExec(kc, APPS, 'web', 'c', ['ip', 'route', 'get', '172.16.70.9', 'from', podIP!])).stdout.replace(/\s+/g, ' ');
    t.match(await lookup(), / dev eth0 /, 'before: a reply from the eth1 address would leave by eth0 (the main table)');

    await applyRoute(kc, 'sym', { symmetric: ['eth1'] });
    t.teardown(async () => {
      await kubeRequest(kc, 'DELETE', '/apis/k8s.ovn.org/v1/routes/sym');
    });
    const table = 1001;
    const ruleLine = `from ${podIP} lookup ${table}`;
    await until(
      'the rule and the table are in the pod netns',
      () => ns.ip('rule', 'show').includes(ruleLine) && / via 10\.124\.2\.1 dev eth1/.test(ns.ip('route', 'show', 'table', String(table))),
    );
    t.match(
      ns.ip('rule', 'show'),
      new RegExp(`1100:\\s+${ruleLine.replace(/\./g, '\\.')} proto (111|ovnkube-route)`),
      'ip rule, marked as ours',
    );
    t.match(await lookup(), / via 10\.124\.2\.1 dev eth1 /, "the pod's kernel: by eth1, through table 1001");
    t.match(ping(), /reply from/, "a ping from off eth1's subnet, answered through eth1");

    t.equal((await kubeRequest(kc, 'DELETE', '/apis/k8s.ovn.org/v1/routes/sym')).status, 200, 'Route deleted');
    await until(
      'the rule and the table left with their Route',
      () => !ns.ip('rule', 'show').includes(ruleLine) && ns.ip('route', 'show', 'table', String(table)).trim() === '',
    );
    t.match(await lookup(), / dev eth0 /, 'after: by eth0 again');
  });

  await t.test('a pod without eth1 gets only its eth0 routes, and the skip is reported', async (t) => {
    const res = await kubeRequest(kc, 'POST', `/api/v1/namespaces/${APPS}/pods`, { body: nodePod('solo', node.name, { eth1: false }) });
    t.equal(res.status, 201, 'created');
    const pod = await waitPod(kc, APPS, 'solo', 'Running', podRunning);
    // After the edit above, the plan has three eth0 routes and two eth1 routes.
    const s = await until('status reported with the skips', async () => {
      const st = statusOf(await waitPod(kc, APPS, 'solo', 'read', () => true));
      return st && st.skipped.length === 2 ? st : null;
    });
    t.equal(s.applied, 3, 'the three eth0 routes are in place');
    t.same(
      s.skipped.map((x) => `${x.dst} ${x.dev} ${x.reason}`).sort(),
      ['172.16.10.0/24 eth1 dev-missing', '172.16.20.0/24 eth1 dev-missing'],
      'the eth1 routes are skipped for the missing device',
    );
    t.same(
      proto(routeLines(podNetns(pod.metadata!.uid!))),
      [`${nginx} dev eth0`, `${nginx1} dev eth0`, '192.168.2.0/24 dev eth0'].sort(),
      'only eth0 routes in the netns',
    );
    const ev = await until('a Normal RoutesSkipped Event', async () => {
      const r = await kubeRequest(kc, 'GET', `/api/v1/namespaces/${APPS}/events`, {
        query: { fieldSelector: `involvedObject.uid=${pod.metadata!.uid},reason=RoutesSkipped` },
      });
      return (r.body?.items as Array<{ type: string; message: string }> | undefined)?.[0];
    });
    t.equal(ev.type, 'Normal', 'by design: the pod has no eth1');
    t.match(ev.message, /2 route\(s\) not written.*does not have that device/);
  });

  await t.test('the agent restarted while pods run rewrites nothing', async (t) => {
    await stopAgent();
    const web0 = proto(routeLines(podNetns(web!.metadata!.uid!)));
    await startAgent();
    await until('both pods kept again', async () => metricSum(await metrics(), 'ovnkube_route_injector_netns_kept') === 2);
    await until(
      'both applied once at start',
      async () => metricSum(await metrics(), 'ovnkube_route_injector_applies_total', { trigger: 'start' }) >= 2,
    );
    const m = await metrics();
    t.equal(metricSum(m, 'ovnkube_route_injector_routes_applied_total'), 0, 'no route written');
    t.equal(metricSum(m, 'ovnkube_route_injector_routes_removed_total'), 0, 'no route removed');
    t.same(proto(routeLines(podNetns(web!.metadata!.uid!))), web0, 'the routes as they were');
  });

  await t.test('deleting a pod leaves no state behind', async (t) => {
    const uid = web!.metadata!.uid!;
    const ns = podNetns(uid);
    t.equal((await kubeRequest(kc, 'DELETE', `/api/v1/namespaces/${APPS}/pods/web`)).status, 200, 'deleted');
    await waitPodGone(kc, APPS, 'web');
    await until('its cache files are gone', () => cacheFilesOfPod(uid).length === 0);
    t.notOk(existsSync(ns.path), 'its netns is gone');
    await until('the agent let it go', async () => {
      const kept = metricSum(await metrics(), 'ovnkube_route_injector_netns_kept');
      if (kept !== 1) throw new Error(`netns_kept ${kept}`);
      return true;
    });
    const saved = existsSync(join(stateDir, 'agent', 'defaults')) ? readdirSync(join(stateDir, 'agent', 'defaults')) : [];
    t.same(
      saved.filter((f) => f.includes(uid)),
      [],
      'no saved state of it',
    );
  });

  await t.test("the CNI plugin is chained after Multus in the node's CNI config", async (t) => {
    const conf = JSON.parse(readFileSync(join(node.dir, 'cni', 'net.d', '00-multus.conflist'), 'utf8'));
    t.same(
      conf.plugins.map((p: { type: string }) => p.type),
      ['multus', 'ovnkube-route-cni'],
      'multus first, then ours',
    );
    t.notOk(existsSync(join(node.dir, 'cni', 'net.d', '00-multus.conf')), 'the .conf became a .conflist');
    t.ok(existsSync(join(node.dir, 'cni', 'bin', 'ovnkube-route-cni')), 'the binary is in the CNI bin dir');
  });

  await t.test('normal starts, edits and deletions raised no warning and no failure', async (t) => {
    const r = await kubeRequest(kc, 'GET', `/api/v1/namespaces/${APPS}/events`, { query: { fieldSelector: 'type=Warning' } });
    const ours = (r.body?.items as Array<{ reason: string; message: string; source?: { component?: string } }>).filter(
      (e) => e.source?.component === 'ovnkube-route-injector',
    );
    t.same(
      ours.map((e) => `${e.reason}: ${e.message}`),
      [],
      'no Warning Event from the agent',
    );
    const m = await metrics();
    t.equal(metricSum(m, 'ovnkube_route_injector_failures_total'), 0, 'failures_total stays 0', {
      failures: m.split('\n').filter((l) => l.startsWith('ovnkube_route_injector_failures_total')),
    });
    t.notMatch(log, /"level":"(warn|error)"/, 'no warning in the agent log since its restart');
  });

  // The first command of each pod's app container asks the kernel which NIC a destination of
  // the plan leaves by: with CNI-time injection the answer is the plan's, on every run.
  const FIRST = "ip route get 172.16.10.1; ip route get 192.168.2.1; trap 'exit 0' TERM; while :; do sleep 1; done";
  const firstLines = async (name: string): Promise<string[]> => {
    const res = await kubeRequest(kc, 'GET', `/api/v1/namespaces/${APPS}/pods/${name}/log`);
    return String(res.status === 200 ? res.body : '')
      .split('\n')
      .filter((l) => /^\d/.test(l))
      .map((l) => l.replace(/\s+src.*$/, '').trim());
  };
  await t.test("routes are in place before the app container's first command", async (t) => {
    for (const name of ['first-1', 'first-2', 'first-3']) {
      t.equal(
        (await kubeRequest(kc, 'POST', `/api/v1/namespaces/${APPS}/pods`, { body: nodePod(name, node.name, { script: FIRST }) })).status,
        201,
        `${name} created`,
      );
    }
    for (const name of ['first-1', 'first-2', 'first-3']) {
      await waitPod(kc, APPS, name, 'Running', podRunning);
      const lines = await until(`${name} printed its routes`, async () => {
        const l = await firstLines(name);
        return l.length === 2 && l;
      });
      t.same(lines, ['172.16.10.1 dev eth1', '192.168.2.1 dev eth0'], `${name}: the first packets already follow the plan`);
      const st = await until(`${name}: status reported`, async () => {
        const s2 = statusOf(await waitPod(kc, APPS, name, 'read', () => true));
        // (the first report may come from an apply the loopback cache file led to, before the
        // CNI ADD answer adds how the routes came)
        if (s2?.applied !== 5 || !s2.start) throw new Error(`status ${JSON.stringify(s2)}`);
        return s2;
      });
      t.same(st.start, { mode: 'cni' }, `${name}: status says the routes were written during CNI ADD`);
    }
    // What the agent answered each CNI ADD: every route in place then, not only those whose
    // devices existed when the loopback cache file first led the agent to the netns.
    const answers = log
      .split('\n')
      .filter((l) => l.includes('"msg":"routes written during CNI ADD"'))
      .map((l) => JSON.parse(l) as { pod: string; applied: number; skipped: number });
    for (const name of ['first-1', 'first-2', 'first-3']) {
      t.match(
        answers.filter((a) => a.pod === `${APPS}/${name}`),
        [{ applied: 5, skipped: 0 }],
        `${name}: answered with all 5 routes in place`,
      );
    }
    const m = await metrics();
    t.ok(metricSum(m, 'ovnkube_route_injector_cni_requests_total', { result: 'applied' }) >= 3, 'CNI requests answered applied');
    t.comment(
      `CNI ADD answered in ${((metricSum(m, 'ovnkube_route_injector_cni_request_seconds_sum') / metricSum(m, 'ovnkube_route_injector_cni_request_seconds_count')) * 1000).toFixed(1)} ms on average (a figure, not an assertion)`,
    );
  });

  await t.test('fail-open: with the agent down, pods start, and their routes arrive once it is back', async (t) => {
    // A crash, not a clean stop: the plugin stays chained (a clean stop takes it out).
    const a = agentRef();
    const gone = new Promise<void>((r) => a!.once('exit', () => r()));
    a!.kill('SIGKILL');
    await gone;
    t.equal(
      (await kubeRequest(kc, 'POST', `/api/v1/namespaces/${APPS}/pods`, { body: nodePod('orphan', node.name, { script: FIRST }) })).status,
      201,
    );
    const pod = await waitPod(kc, APPS, 'orphan', 'Running', podRunning);
    t.same(
      await until('orphan printed its routes', async () => {
        const l = await firstLines('orphan');
        return l.length === 2 && l;
      }),
      ['172.16.10.1 via 169.254.1.1 dev eth0', '192.168.2.1 via 169.254.1.1 dev eth0'],
      'it started (on the CNI routes alone)',
    );
    const sandboxId = cacheFilesOfPod(pod.metadata!.uid!).find((c) => c.json.networkName === 'cni-loopback')!.json.containerId as string;
    t.match(readFileSync(join(missedDir, sandboxId), 'utf8'), /agent unreachable/, 'the plugin left its fail-open marker');
    await startAgent();
    const st = await until('routes applied and reported', async () => {
      const s2 = statusOf(await waitPod(kc, APPS, 'orphan', 'read', () => true));
      return s2?.applied === 5 && s2.start ? s2 : null;
    });
    t.match(
      st.start,
      { mode: 'after-start', reason: /could not reach the agent.*agent unreachable/ },
      'status: the routes came after the start, and why',
    );
    t.same(proto(routeLines(podNetns(pod.metadata!.uid!))), ours({ nginx: 'eth0', nginx1: 'eth0' }).sort(), 'the routes are in place now');
    t.equal(metricSum(await metrics(), 'ovnkube_route_injector_cni_missed_total'), 1, 'counted');
    t.match(log, /"msg":"the pod started before its routes/, 'logged');
    t.notOk(existsSync(join(missedDir, sandboxId)), 'the marker was consumed');
  });

  await t.test('containerd restarted: running pods keep their containers and routes; new pods start with theirs', async (t) => {
    const before = await waitPod(kc, APPS, 'solo', 'read', () => true);
    const routes = proto(routeLines(podNetns(before.metadata!.uid!)));
    await node.restartContainerd();
    t.equal(
      (await kubeRequest(kc, 'POST', `/api/v1/namespaces/${APPS}/pods`, { body: nodePod('after-restart', node.name, { script: FIRST }) }))
        .status,
      201,
    );
    await waitPod(kc, APPS, 'after-restart', 'Running', podRunning);
    t.same(
      await until('after-restart printed its routes', async () => {
        const l = await firstLines('after-restart');
        return l.length === 2 && l;
      }),
      ['172.16.10.1 dev eth1', '192.168.2.1 dev eth0'],
      'a pod started after the restart has its routes before its first command',
    );
    const after = await waitPod(kc, APPS, 'solo', 'read', () => true);
    t.equal(containerState(after), containerState(before), 'solo: same container, no restart');
    t.same(proto(routeLines(podNetns(before.metadata!.uid!))), routes, 'solo: its routes as they were');
  });

  await t.test("a pod's sandbox recreated: the agent follows it to its new netns", async (t) => {
    const pod = await waitPod(kc, APPS, 'first-2', 'read', () => true);
    const uid = pod.metadata!.uid!;
    const oldNs = podNetns(uid);
    const oldSandbox = cacheFilesOfPod(uid).find((c) => c.json.networkName === 'cni-loopback')!.json.containerId as string;
    // The sandbox's own process (the pause image's sleep) dies: the kubelet makes a new sandbox.
    const pause = ip('netns', 'pids', oldNs.name)
      .split('\n')
      .filter(Boolean)
      .map(Number)
      .find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8') === 'sleep\x002147483647\x00');
    t.ok(pause, 'found the sandbox process');
    process.kill(pause!, 'SIGKILL');
    const newNs = await until(
      'a new sandbox with its own netns',
      () => {
        const lo = cacheFilesOfPod(uid).find((c) => c.json.networkName === 'cni-loopback' && c.json.containerId !== oldSandbox);
        return lo ? podNetns(uid) : null;
      },
      120_000,
    );
    t.not(newNs.path, oldNs.path, 'a new netns');
    await waitPod(
      kc,
      APPS,
      'first-2',
      'Running again',
      (p) => podRunning(p) && (p.status?.containerStatuses as Array<{ restartCount: number; ready: boolean }>)[0]!.restartCount >= 1,
    );
    await until(
      'the plan in the new netns',
      () => JSON.stringify(proto(routeLines(newNs))) === JSON.stringify(ours({ nginx: 'eth0', nginx1: 'eth0' }).sort()),
    );
    await until(
      'the old sandbox is gone',
      () => !existsSync(oldNs.path) && cacheFilesOfPod(uid).every((c) => c.json.containerId !== oldSandbox),
    );
    const st = await until('reported for the new sandbox', async () => {
      const s2 = statusOf(await waitPod(kc, APPS, 'first-2', 'read', () => true));
      return s2?.applied === 5 && s2.skipped.length === 0 && s2.start?.mode === 'cni' ? s2 : null;
    });
    t.same(st.start, { mode: 'cni' }, "the new sandbox's routes were written during its CNI ADD too");
    const r = await kubeRequest(kc, 'GET', `/api/v1/namespaces/${APPS}/events`, {
      query: { fieldSelector: `involvedObject.uid=${uid},type=Warning` },
    });
    t.same(
      (r.body.items as Array<{ reason: string; source?: { component?: string } }>)
        .filter((e) => e.source?.component === 'ovnkube-route-injector')
        .map((e) => e.reason),
      [],
      'no Warning Event from the agent',
    );
  });
}
