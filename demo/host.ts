/**
 * The demo's footprint on the host: where the pods' packets may go, and how we see which NIC
 * carried them. Nothing here is the add-on's (the agent never writes the host netns); it is
 * the demo's own test bench, and every piece of it is named `ovnkr-demo*` so that cleanup
 * (also of a demo that was killed) finds it by name.
 *
 * - Two sink netns own the destinations the pods send to:
 *   - `ovnkr-demo-sink1` sits on the eth1 bridge (the OVN-like network, L2) and owns the
 *     Service IPs, the OVN gateway 10.124.2.1 and one address of each eth1 CIDR;
 *   - `ovnkr-demo-sink0` hangs off the host by a veth and owns the same Service IPs; the host
 *     routes those /32s to it, as Calico's host routes a pod's eth0 traffic. The node's
 *     forward guard gets one ACCEPT for that veth (the guard drops all other pod traffic).
 *   Both answer pings, so a pod sees its packets arrive, whichever NIC its routes choose.
 * - Blackhole routes on the host for every demo destination range: a packet that a wrong
 *   route sends to the host is dropped and counted there, never sent off the machine.
 * - Counters: an nftables `netdev` table with an ingress chain on each host-side veth of the
 *   observed pod, counting ICMP echo requests per destination. That is the proof of which
 *   NIC carried a packet (a capture would say the same).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { NODE_NETS, ETH1_BRIDGE } from '../test/cluster/node.js';

export const SINK0 = 'ovnkr-demo-sink0';
export const SINK1 = 'ovnkr-demo-sink1';
const SINK0_HOST = 'ovnkr-demo-s0h';
const SINK0_NS_IF = 'ovnkr-demo-s0n';
const SINK1_BR = 'ovnkr-demo-s1b';
const SINK1_NS_IF = 'ovnkr-demo-s1n';
const NFT_TABLE = 'ovnkr_demo';
const GUARD = 'OVNKR-NODE-GUARD';
/** Where the host pieces are recorded, so that `--down` and cluster:down remove exactly them. */
export const HOST_STATE = '/run/ovnkube-route-demo.json';
/** The sink0 link's addresses (host side, sink side): a /30 of the link-local range. */
const SINK0_LINK = { host: '169.254.77.1', sink: '169.254.77.2' };
/** sink1's own address on the eth1 network (outside the pods' IPAM range .10-.250). */
const SINK1_ADDR = '10.124.2.254';

interface HostState {
  blackholes: string[];
  sink0Routes: string[];
}

function run(cmd: string, args: string[], what: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${what}: ${cmd} ${args.join(' ')}: ${(r.stderr || r.stdout || r.error?.message || '').trim()}`);
  return r.stdout;
}
const quiet = (cmd: string, args: string[]): boolean => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;

/** The host's routes that would overlap a demo range (then the demo must not blackhole it). */
export function overlapsHost(cidrs: string[]): string[] {
  const toInt = (ip: string) => ip.split('.').reduce((a, b) => a * 256 + Number(b), 0);
  const range = (c: string): [number, number] => {
    const [ip, len] = c.split('/') as [string, string];
    const size = 2 ** (32 - Number(len));
    const start = Math.floor(toInt(ip) / size) * size;
    return [start, start + size - 1];
  };
  const routes = JSON.parse(run('ip', ['-j', '-4', 'route', 'show', 'table', 'all'], 'read the host routes') || '[]') as Array<{
    dst: string;
    type?: string;
    dev?: string;
  }>;
  const addrs = JSON.parse(run('ip', ['-j', '-4', 'addr'], 'read the host addresses') || '[]') as Array<{
    ifname: string;
    addr_info: Array<{ local: string; prefixlen: number }>;
  }>;
  const host: string[] = [
    ...routes
      .filter((r) => r.dst !== 'default' && r.type !== 'blackhole' && !r.dev?.startsWith('ovnkr') && r.dev !== 'lo')
      .map((r) => (r.dst.includes('/') ? r.dst : `${r.dst}/32`)),
    ...addrs
      .filter((a) => a.ifname !== 'lo' && !a.ifname.startsWith('ovnkr'))
      .flatMap((a) => a.addr_info.map((i) => `${i.local}/${i.prefixlen}`)),
  ];
  const out: string[] = [];
  for (const c of cidrs) {
    const [a, b] = range(c);
    for (const h of host) {
      const [x, y] = range(h);
      if (a <= y && x <= b) out.push(`${c} overlaps the host's ${h}`);
    }
  }
  return out;
}

/**
 * Set up the sinks and blackholes. `serviceIPs` are owned by both sinks; `eth1Targets` (the
 * OVN gateway and addresses in eth1 CIDRs) by sink1 only; `blackholes` are the demo ranges.
 */
export function setupHost(o: { serviceIPs: string[]; eth1Targets: string[]; blackholes: string[] }): void {
  removeHost(); // whatever an earlier, killed demo left
  const state: HostState = { blackholes: [], sink0Routes: [] };
  const save = () => writeFileSync(HOST_STATE, JSON.stringify(state, null, 2) + '\n');
  save();
  for (const c of o.blackholes) {
    run('ip', ['route', 'add', 'blackhole', c], `blackhole ${c} on the host`);
    state.blackholes.push(c);
    save();
  }
  // sink1: on the eth1 bridge (made here when no pod has made it yet; the bridge plugin uses
  // an existing bridge as it is, and the node's teardown removes it either way).
  if (!existsSync(`/sys/class/net/${ETH1_BRIDGE}`))
    run('ip', ['link', 'add', ETH1_BRIDGE, 'type', 'bridge'], `create the eth1 bridge ${ETH1_BRIDGE}`);
  run('ip', ['link', 'set', ETH1_BRIDGE, 'up'], `set ${ETH1_BRIDGE} up`);
  run('ip', ['netns', 'add', SINK1], 'create the eth1 sink');
  run('ip', ['link', 'add', SINK1_BR, 'type', 'veth', 'peer', 'name', SINK1_NS_IF, 'netns', SINK1], "the eth1 sink's veth");
  run('ip', ['link', 'set', SINK1_BR, 'master', ETH1_BRIDGE, 'up'], `attach the eth1 sink to ${ETH1_BRIDGE}`);
  const in1 = (args: string[], what: string) => run('ip', ['-n', SINK1, ...args], what);
  in1(['link', 'set', 'lo', 'up'], 'sink1 lo');
  in1(['addr', 'add', `${SINK1_ADDR}/24`, 'dev', SINK1_NS_IF], 'sink1 address');
  for (const a of [...o.serviceIPs, ...o.eth1Targets]) in1(['addr', 'add', `${a}/32`, 'dev', SINK1_NS_IF], `sink1 owns ${a}`);
  in1(['link', 'set', SINK1_NS_IF, 'up'], 'sink1 up');
  // Answers to pods' eth1 addresses are connected; to their eth0 addresses (a wrong route's
  // source) there is no route, so nothing leaves sink1 except on the bridge.
  // sink0: behind the host, like a Calico host route.
  run('ip', ['netns', 'add', SINK0], 'create the eth0 sink');
  run('ip', ['link', 'add', SINK0_HOST, 'type', 'veth', 'peer', 'name', SINK0_NS_IF, 'netns', SINK0], "the eth0 sink's veth");
  run('ip', ['addr', 'add', `${SINK0_LINK.host}/30`, 'dev', SINK0_HOST], "the eth0 sink's host address");
  run('ip', ['link', 'set', SINK0_HOST, 'up'], "the eth0 sink's host side up");
  const in0 = (args: string[], what: string) => run('ip', ['-n', SINK0, ...args], what);
  in0(['link', 'set', 'lo', 'up'], 'sink0 lo');
  in0(['addr', 'add', `${SINK0_LINK.sink}/30`, 'dev', SINK0_NS_IF], 'sink0 address');
  for (const a of o.serviceIPs) in0(['addr', 'add', `${a}/32`, 'dev', SINK0_NS_IF], `sink0 owns ${a}`);
  in0(['link', 'set', SINK0_NS_IF, 'up'], 'sink0 up');
  // Replies go back to the pods' eth0 range only, through the host.
  in0(['route', 'add', NODE_NETS.eth0.subnet, 'via', SINK0_LINK.host], 'sink0 route back to the pods');
  for (const a of o.serviceIPs) {
    run('ip', ['route', 'add', `${a}/32`, 'dev', SINK0_HOST], `host route ${a} to sink0`);
    state.sink0Routes.push(`${a}/32`);
    save();
  }
  // The node's guard drops everything pods send through the host; let through what goes to sink0.
  run(
    'iptables',
    ['-w', '-I', GUARD, '1', '-o', SINK0_HOST, '-j', 'ACCEPT'],
    "let pod traffic reach sink0 through the node's forward guard",
  );
}

/** Remove every host piece of the demo (by name and by the recorded state); idempotent. */
export function removeHost(log: (l: string) => void = () => {}): void {
  let state: HostState | null = null;
  try {
    state = JSON.parse(readFileSync(HOST_STATE, 'utf8')) as HostState;
  } catch {
    /* none */
  }
  let n = 0;
  for (const c of [...(state?.blackholes ?? []), ...(state?.sink0Routes ?? [])]) if (quiet('ip', ['route', 'del', c])) n++;
  while (quiet('iptables', ['-w', '-D', GUARD, '-o', SINK0_HOST, '-j', 'ACCEPT'])) n++;
  if (quiet('nft', ['delete', 'table', 'netdev', NFT_TABLE])) n++;
  for (const l of [SINK0_HOST, SINK1_BR]) if (existsSync(`/sys/class/net/${l}`) && quiet('ip', ['link', 'del', l])) n++;
  for (const ns of [SINK0, SINK1]) if (existsSync(`/run/netns/${ns}`) && quiet('ip', ['netns', 'del', ns])) n++;
  rmSync(HOST_STATE, { force: true });
  if (n) log(`removed ${n} host piece(s) of the demo (sinks, routes, counters)`);
}

/** A per-destination ICMP echo counter on each of a pod's host-side veths. */
export interface Counters {
  /** Host-side interface names, by the pod's NIC. */
  veths: Record<string, string>;
  read(): Record<string, Record<string, number>>;
}

/** Count ICMP echo requests to each of `dsts` arriving from the pod on each host-side veth. */
export function countOn(veths: Record<string, string>, dsts: string[]): Counters {
  quiet('nft', ['delete', 'table', 'netdev', NFT_TABLE]);
  run('nft', ['add', 'table', 'netdev', NFT_TABLE], 'an nftables table for the counters');
  for (const [nic, veth] of Object.entries(veths)) {
    const chain = `from_${nic}`;
    run(
      'nft',
      ['add', 'chain', 'netdev', NFT_TABLE, chain, `{ type filter hook ingress device "${veth}" priority 0; policy accept; }`],
      `a counter chain on ${veth}`,
    );
    for (const d of dsts) {
      run(
        'nft',
        ['add', 'rule', 'netdev', NFT_TABLE, chain, 'ip', 'daddr', d, 'icmp', 'type', 'echo-request', 'counter', 'comment', `"${d}"`],
        `a counter for ${d} on ${veth}`,
      );
    }
  }
  return {
    veths,
    read() {
      const out: Record<string, Record<string, number>> = {};
      const j = JSON.parse(run('nft', ['-j', 'list', 'table', 'netdev', NFT_TABLE], 'read the counters')) as {
        nftables: Array<Record<string, any>>;
      };
      for (const item of j.nftables) {
        const rule = item.rule as { chain: string; comment?: string; expr: Array<Record<string, any>> } | undefined;
        if (!rule?.comment) continue;
        const nic = rule.chain.replace(/^from_/, '');
        const packets = rule.expr.find((e) => e.counter)?.counter?.packets as number | undefined;
        (out[rule.comment] ??= {})[nic] = packets ?? 0;
      }
      return out;
    },
  };
}

/** The host-side peer of each of a netns's veths (by the interface's link index). */
export function hostPeers(netnsName: string, nics: string[]): Record<string, string> {
  const links = JSON.parse(run('ip', ['-n', netnsName, '-j', 'link'], `read the links of ${netnsName}`)) as Array<{
    ifname: string;
    link_index?: number;
  }>;
  const host = JSON.parse(run('ip', ['-j', 'link'], 'read the host links')) as Array<{ ifname: string; ifindex: number }>;
  const out: Record<string, string> = {};
  for (const nic of nics) {
    const idx = links.find((l) => l.ifname === nic)?.link_index;
    const peer = host.find((h) => h.ifindex === idx);
    if (peer) out[nic] = peer.ifname;
  }
  return out;
}
