/**
 * Many pod netns quickly, for the burst test: one `ip -batch` creates every netns and veth
 * pair (each end created directly in its namespace: nothing ever appears in the host's),
 * then one batch per pod configures it. Pods are wired like test/util/netns.ts makePod
 * (eth0 Calico-like with 169.254.1.1 and the default route, eth1 OVN-like 10.124.2.5/24),
 * with the peers in one shared "node" netns. Names follow ovrt-<pid>-..., so leftovers of a
 * killed test process are swept by test/util/netns.ts. All are deleted in t.teardown.
 */
import { execFileSync } from 'node:child_process';
import type { Test } from 'tap';
import { makeNetns, type TestNetns } from '../util/netns.js';

function batch(lines: string[], ns?: string): void {
  const args = ns ? ['-n', ns, '-batch', '-'] : ['-batch', '-'];
  try {
    execFileSync('ip', args, { input: lines.join('\n') + '\n', stdio: ['pipe', 'ignore', 'pipe'] });
  } catch (e) {
    throw new Error(`ip ${args.join(' ')} failed: ${(e as { stderr?: Buffer }).stderr?.toString().trim() ?? (e as Error).message}`);
  }
}

/** Create `n` pod netns (paths returned in order) plus their node netns; `tag` tells the sets of one process apart. */
export function makePodNetnsBatch(t: Test, n: number, tag = 'b'): { paths: string[]; names: string[]; node: TestNetns } {
  const node = makeNetns(t, 'bnode');
  const names = Array.from({ length: n }, (_, i) => `ovrt-${process.pid}-${tag}${i}`);
  t.teardown(() => {
    try {
      batch(names.map((x) => `netns del ${x}`));
    } catch {
      /* some already gone: delete one by one */
      for (const x of names) {
        try {
          batch([`netns del ${x}`]);
        } catch {
          /* gone */
        }
      }
    }
  });
  batch(
    names.flatMap((x, i) => [
      `netns add ${x}`,
      `link add eth0 netns ${x} type veth peer name b${i}e0 netns ${node.name}`,
      `link add eth1 netns ${x} type veth peer name b${i}e1 netns ${node.name}`,
    ]),
  );
  batch(
    names.flatMap((_, i) => [`link set b${i}e0 up`, `link set b${i}e1 up`]),
    node.name,
  );
  for (const x of names) {
    batch(
      [
        'link set lo up',
        'addr add 10.244.1.5/32 dev eth0',
        'link set eth0 up',
        'route add 169.254.1.1 dev eth0 scope link',
        'route add default via 169.254.1.1 dev eth0',
        'addr add 10.124.2.5/24 dev eth1',
        'link set eth1 up',
      ],
      x,
    );
  }
  return { paths: names.map((x) => `/var/run/netns/${x}`), names, node };
}

/** Routes of ours (protocol 111) in a netns, as `ip -j` objects. */
export function ownedRoutes(name: string): { dst: string }[] {
  const out = execFileSync('ip', ['-n', name, '-j', 'route', 'show', 'table', 'main', 'proto', '111'], { encoding: 'utf8' });
  return JSON.parse(out || '[]') as { dst: string }[];
}
