/**
 * Injector kernel-layer benchmarks (root only), each against a baseline of the same run:
 * - enter + restore a netns (withNetns, empty fn) vs. just opening and closing its file;
 * - per netns: open a client (socket made inside withNetns) + dump its routes + close, vs.
 *   spawning `ip -n NS route show` (what the design document's execns.sh did per pod);
 * - N route adds through RtnlClient (bounded in flight) vs. the same N with `ip -batch`.
 * Exported as run() for test/bench/run.ts; not part of `npm test`.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { RtnlClient } from '../../injector/kernel/netlink.js';
import { RT_SCOPE_LINK } from '../../injector/kernel/netlink-codec.js';
import { withNetns } from '../../injector/kernel/netns.js';
import { RTPROT_OVNKUBE_ROUTE } from '../../injector/routes/engine.js';
import { ratioRow, time, timeAsync, type BenchRow, type Timing } from './measure.js';

const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });

/** Best of `rounds` for an async batch of `ops` operations (one timing covers the whole batch). */
async function timeBatch(name: string, ops: number, setup: () => void, fn: () => Promise<unknown> | unknown, rounds = 3): Promise<Timing> {
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    setup();
    const t0 = performance.now();
    await fn();
    best = Math.min(best, performance.now() - t0);
  }
  return { name, ops, nsPerOp: (best * 1e6) / ops };
}

/** Run the injector benchmarks; `{skipped}` when not root. */
export async function run(): Promise<BenchRow[] | { skipped: string }> {
  if (process.getuid?.() !== 0) return { skipped: 'needs root (network namespaces)' };
  const name = `ovrt-bench-${process.pid}`;
  const peer = `${name}-peer`;
  const path = `/var/run/netns/${name}`;
  const tmp = mkdtempSync(join(tmpdir(), 'ovr-bench-'));
  ip('netns', 'add', name);
  ip('netns', 'add', peer);
  try {
    ip('-n', name, 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'p1', 'netns', peer);
    ip('-n', name, 'link', 'set', 'eth1', 'up');
    ip('-n', name, 'addr', 'add', '10.99.0.1/24', 'dev', 'eth1'); // so the main table exists (flush needs it)
    const rows: BenchRow[] = [];

    const open = time('open+close the netns file', 2000, () => closeSync(openSync(path, 'r')));
    const enter = time('withNetns (enter+restore)', 2000, () => withNetns(path, () => 0));
    rows.push(ratioRow('injector: enter a netns', enter, open));

    const spawn = await timeAsync('spawn ip -n NS route show', 30, async () => ip('-n', name, 'route', 'show'));
    const client = await timeAsync('RtnlClient open+listRoutes+close', 300, async () => {
      const c = RtnlClient.open(path);
      try {
        await c.listRoutes();
      } finally {
        c.close();
      }
    });
    rows.push(ratioRow("injector: read one netns's routes", client, spawn));

    const N = 2000;
    const dsts = Array.from({ length: N }, (_, i) => `10.${100 + Math.floor(i / 256)}.${i % 256}.0/24`);
    const flush = (): void => {
      ip('-n', name, 'route', 'flush', 'proto', String(RTPROT_OVNKUBE_ROUTE));
    };
    const batchFile = join(tmp, 'routes.batch');
    writeFileSync(batchFile, dsts.map((d) => `route add ${d} dev eth1 proto ${RTPROT_OVNKUBE_ROUTE}`).join('\n') + '\n');
    const batch = await timeBatch(`ip -batch, ${N} route adds`, N, flush, () => ip('-n', name, '-batch', batchFile));
    const c = RtnlClient.open(path);
    try {
      const oif = (await c.listLinks()).find((l) => l.name === 'eth1')!.index;
      const ours = await timeBatch(`RtnlClient, ${N} route adds`, N, flush, () =>
        Promise.all(dsts.map((dst) => c.addRoute({ dst, oif, scope: RT_SCOPE_LINK, protocol: RTPROT_OVNKUBE_ROUTE }))),
      );
      const row = ratioRow('injector: route adds', ours, batch);
      row.value += ` (${Math.round(1e9 / ours.nsPerOp)} adds/s)`;
      row.baseline += ` (${Math.round(1e9 / batch.nsPerOp)} adds/s)`;
      rows.push(row);
    } finally {
      c.close();
    }
    return rows;
  } finally {
    ip('netns', 'del', name);
    ip('netns', 'del', peer);
    rmSync(tmp, { recursive: true, force: true });
  }
}
