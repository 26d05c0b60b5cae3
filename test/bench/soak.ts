/**
 * `npm run soak [-- --minutes M --pods N]`: a bounded soak of the whole chain, not part of
 * `npm test`. A real kube-apiserver; the real `ovnkube-route webhook` process (admission
 * and controller) registered with it; the real `ovnkube-route agent` binary; N pods bound to
 * the agent's node with simulated sandboxes (real netns wired like the mission's pod, their
 * CNI cache files). For M minutes (default 5), round after round:
 *   - the Route is edited (a rule's device flipped, a CIDR changed, a rule added/removed),
 *     and every pod must end with exactly the routes the Route asks for;
 *   - one pod is deleted and a new one created: the new pod must be routed exactly, and the
 *     agent must let go of the old netns.
 * The agent's and the webhook's open fds and RSS are sampled every round; every 10 s both
 * are also asked, over the V8 inspector (they run with --inspect on loopback here only), to
 * collect garbage and report process.memoryUsage(): the live heap, which unlike RSS does not
 * grow with V8's heap sizing. A least-squares slope is fitted to each. Prints a summary table
 * and writes test/bench/results/soak.json. Exit 1 when a pod was ever left wrong, a step
 * timed out, either process's fds grew, or either's live heap (heapUsed + external, median of
 * the last third of the run against the middle third) grew by more than HEAP_TOLERANCE.
 * `--heap-diff` also takes two heap snapshots of the webhook (at a third of the run and at
 * the end) and prints the growth by constructor. `--leak-kib K` plants a leak of K KiB per
 * round in the webhook, to check that the assertion catches one.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { PLAN_ANNOTATION, type Plan, type Pod } from '../../core/types.js';
import { startControlPlane } from '../cluster/controlplane.js';
import { findBinaries } from '../cluster/binaries.js';
import { makePod } from '../util/netns.js';
import { repoRoot } from '../util/fixtures.js';
import { rootUnavailable } from '../util/tier.js';
import { writeCacheFile } from '../agent/rig.js';
import {
  applyRoute,
  createNamespace,
  installAddon,
  planRoutes,
  podBody,
  registerWebhook,
  startWebhook,
  until,
} from '../webhook-e2e/helpers.js';
import { Inspector, inspectArgs } from '../util/inspector.js';
import { assessHeap, mib, printHeapDiff, type Counts, type HeapSample } from './soak-memory.js';
import { AgentProc, agentEnv, Cleanups, kubeRequest, podPath, routedExactly, slope, type Sandbox } from '../faults/agent-proc.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) {
    console.error(`soak: --${name} expects a positive number, got ${JSON.stringify(process.argv[i + 1])}`);
    process.exit(2);
  }
  return v;
}

/** The Route's rules at edit `k`: every kind of change comes round. */
function rules(k: number): Plan['routes'] {
  return [
    { dst: '10.124.0.0/16', dev: 'eth1', via: '10.124.2.1' },
    { dst: '172.16.10.0/24', dev: k % 2 ? 'eth0' : 'eth1' },
    { dst: `172.17.${k % 200}.0/24`, dev: 'eth1' },
    ...(k % 3 === 0 ? [{ dst: '192.168.2.0/24', dev: 'eth0' }] : []),
  ];
}

const HEAP_EVERY_MS = 10_000;

const procStat = (pid: number): { fds: number; rssKb: number } => ({
  fds: readdirSync(`/proc/${pid}/fd`).length,
  rssKb: Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN),
});

async function main(): Promise<number> {
  const minutes = arg('minutes', 5);
  const pods = arg('pods', 8);
  // `--leak-kib K`: a check of the soak itself. Every round, K KiB are made reachable from a
  // global inside the running webhook (over the inspector; nothing in the product changes):
  // a leak of known size, which the live-heap assertion must report.
  const leakKib = process.argv.includes('--leak-kib') ? arg('leak-kib', 1) : 0;
  const why = rootUnavailable();
  if (why) {
    console.error(`soak: not run: ${why}`);
    return 3;
  }
  const bins = await findBinaries({ allowBuild: false });
  if (!bins.dir) {
    console.error(`soak: not run: no control plane binaries (${bins.reason}); run node scripts/controlplane/ensure.mjs`);
    return 3;
  }
  const c = new Cleanups();
  const t = c as unknown as Test;
  const log = (s: string) => console.error(`[soak ${new Date().toISOString().slice(11, 19)}] ${s}`);
  try {
    const cp = await startControlPlane({ binDir: bins.dir });
    c.teardown(() => cp.stop());
    const addon = await installAddon(t, cp);
    // Both children open the V8 inspector on loopback (only here, not in `npm test`) so the
    // soak can force a GC and read the live heap: see test/util/inspector.ts.
    const whInspect = await inspectArgs();
    const wh = await startWebhook({
      kubeconfig: addon.kubeconfig,
      certDir: addon.certDir,
      args: ['--trusted-user', addon.user],
      nodeArgs: whInspect.args,
    });
    c.teardown(() => wh.stop('SIGKILL'));
    await registerWebhook(cp.kc, wh.port, addon.certDir);
    const env = await agentEnv(c, cp, 'soak', 'soak-node');
    env.key = addon.keys[0]!;
    env.keyFile = join(addon.certDir, 'plan.key');
    let edit = 0;
    let plan: Plan = { v: 1, routes: rules(edit) };
    await applyRoute(cp.kc, 'soak', { include: [{ namespaces: ['soak'] }], route: plan.routes });
    await createNamespace(cp.kc, 'soak');
    await until('the webhook stamps pods', async () => {
      const res = await kubeRequest(cp.kc, 'POST', '/api/v1/namespaces/soak/pods', { body: podBody('probe'), query: { dryRun: 'All' } });
      return planRoutes(res.body as Pod, addon.keys)?.length === plan.routes.length;
    });
    const agentInspect = await inspectArgs();
    const agent = await AgentProc.start(env, { args: ['--log-level', 'warn'], nodeArgs: agentInspect.args });
    c.teardown(() => agent.stop('SIGKILL'));
    const whIns = await Inspector.connect(whInspect.port, 'the webhook');
    c.teardown(() => whIns.close());
    const agentIns = await Inspector.connect(agentInspect.port, 'the agent');
    c.teardown(() => agentIns.close());

    let serial = 0;
    const live: Sandbox[] = [];
    const newPod = async (): Promise<Sandbox> => {
      const name = `soak-${serial++}`;
      const body = podBody(name);
      body.spec!.nodeName = env.node;
      const res = await kubeRequest(cp.kc, 'POST', '/api/v1/namespaces/soak/pods', { body });
      if (res.status !== 201) throw new Error(`create pod ${name}: HTTP ${res.status} ${res.body?.message}`);
      const pod = res.body as Pod;
      if (!pod.metadata?.annotations?.[PLAN_ANNOTATION]) throw new Error(`pod ${name} was not stamped at admission`);
      const { pod: ns, node } = makePod(t);
      return { name, pod, ns, node, plan, cacheFile: writeCacheFile(env.cacheDir, pod, ns.path) };
    };
    const failures: string[] = [];
    const converge = async (what: string, boxes: Sandbox[]): Promise<number> => {
      const t0 = Date.now();
      try {
        await until(what, () => boxes.every(routedExactly), 60_000, 20);
      } catch (e) {
        failures.push(
          `${(e as Error).message}: wrong: ${boxes
            .filter((b) => !routedExactly(b))
            .map((b) => b.name)
            .join(', ')}`,
        );
      }
      return Date.now() - t0;
    };
    for (let i = 0; i < pods; i++) live.push(await newPod());
    await converge('initial pods routed', live);

    const started = Date.now();
    const end = started + minutes * 60_000;
    const samples: { tMin: number; agent: { fds: number; rssKb: number }; webhook: { fds: number; rssKb: number } }[] = [];
    const editMs: number[] = [];
    const podMs: number[] = [];
    const sample = () =>
      samples.push({ tMin: (Date.now() - started) / 60_000, agent: procStat(agent.pid), webhook: procStat(wh.child.pid!) });
    // The live heap after a forced full GC, every HEAP_EVERY_MS (a full GC of each process
    // per round would slow the rounds down): the figure that tells a leak from V8 sizing.
    const heaps: HeapSample[] = [];
    let lastHeap = 0;
    const heapSample = async () => {
      lastHeap = Date.now();
      const [a, w] = await Promise.all([agentIns.liveMemory(), whIns.liveMemory()]);
      heaps.push({ tMin: (Date.now() - started) / 60_000, agent: a, webhook: w });
    };
    // Optional (`--heap-diff`): heap snapshots of the webhook at the end of the first third
    // and at the end, diffed by constructor; printed, and kept in soak.json.
    let earlyCounts: Counts | undefined;
    let lateCounts: Counts | undefined;
    const heapDiff = process.argv.includes('--heap-diff');
    const memorySample = async () => {
      // An array of K × 128 distinct doubles: K KiB of live heap (a repeated string would
      // not do: V8 builds it as a rope of log(n) pieces).
      if (leakKib) await whIns.evaluate(`(globalThis.__soakLeak ??= []).push(Array.from({ length: ${leakKib * 128} }, Math.random))`);
      if (Date.now() - lastHeap >= HEAP_EVERY_MS) await heapSample();
      if (heapDiff && !earlyCounts && Date.now() - started >= (minutes * 60_000) / 3) {
        log('heap snapshot of the webhook (early)');
        earlyCounts = await whIns.heapCounts();
      }
    };
    sample();
    await heapSample();
    let rounds = 0;
    while (Date.now() < end && failures.length < 5) {
      rounds++;
      // A Route edit: the controller re-plans every pod; the agent rewrites the diff.
      plan = { v: 1, routes: rules(++edit) };
      await applyRoute(cp.kc, 'soak', { include: [{ namespaces: ['soak'] }], route: plan.routes });
      for (const b of live) b.plan = plan;
      editMs.push(await converge(`Route edit ${edit}: every pod routed`, live));
      // Pod churn: the oldest goes, a new one comes.
      const old = live.shift()!;
      const del = await kubeRequest(cp.kc, 'DELETE', podPath(env, old.name), { query: { gracePeriodSeconds: '0' } });
      if (del.status !== 200) failures.push(`delete ${old.name}: HTTP ${del.status}`);
      rmSync(old.cacheFile, { force: true });
      old.ns.del();
      old.node.del();
      const fresh = await newPod();
      live.push(fresh);
      podMs.push(await converge(`new pod ${fresh.name} routed`, [fresh]));
      try {
        await until(
          'the agent let go of the deleted pod',
          async () => (await agent.metric('ovnkube_route_injector_netns_kept')) === live.length,
          30_000,
          20,
        );
      } catch (e) {
        failures.push((e as Error).message);
      }
      sample();
      await memorySample();
      if (rounds % 20 === 0)
        log(
          `${rounds} rounds, ${edit} Route edits, ${serial} pods so far; agent ${samples.at(-1)!.agent.fds} fds ${samples.at(-1)!.agent.rssKb} KiB`,
        );
    }
    const final = await converge('every pod routed at the end', live);
    void final;
    await heapSample();
    if (heapDiff) lateCounts = await whIns.heapCounts();
    const ts = samples.map((s) => s.tMin);
    const warm = samples.filter((s) => s.tMin >= Math.min(1, minutes / 5));
    const fit = (f: (s: (typeof samples)[number]) => number) =>
      slope(
        warm.map((s) => s.tMin),
        warm.map(f),
      );
    const pct = (xs: number[], p: number) => {
      const s = [...xs].sort((a, b) => a - b);
      return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))]! : NaN;
    };
    const summary = {
      date: new Date().toISOString(),
      node: process.version,
      minutes: Number(((Date.now() - started) / 60_000).toFixed(2)),
      livePods: pods,
      rounds,
      routeEdits: edit,
      podsCreated: serial,
      podsDeleted: serial - live.length,
      failures,
      convergeMs: {
        routeEdit: { p50: pct(editMs, 0.5), p95: pct(editMs, 0.95), max: Math.max(...editMs) },
        newPod: { p50: pct(podMs, 0.5), p95: pct(podMs, 0.95), max: Math.max(...podMs) },
      },
      agent: {
        fds: {
          first: samples[0]!.agent.fds,
          last: samples.at(-1)!.agent.fds,
          max: Math.max(...samples.map((s) => s.agent.fds)),
          slopePerMin: fit((s) => s.agent.fds),
        },
        rssKb: {
          first: samples[0]!.agent.rssKb,
          last: samples.at(-1)!.agent.rssKb,
          min: Math.min(...samples.map((s) => s.agent.rssKb)),
          max: Math.max(...samples.map((s) => s.agent.rssKb)),
          slopePerMin: fit((s) => s.agent.rssKb),
        },
      },
      webhook: {
        fds: {
          first: samples[0]!.webhook.fds,
          last: samples.at(-1)!.webhook.fds,
          max: Math.max(...samples.map((s) => s.webhook.fds)),
          slopePerMin: fit((s) => s.webhook.fds),
        },
        rssKb: {
          first: samples[0]!.webhook.rssKb,
          last: samples.at(-1)!.webhook.rssKb,
          min: Math.min(...samples.map((s) => s.webhook.rssKb)),
          max: Math.max(...samples.map((s) => s.webhook.rssKb)),
          slopePerMin: fit((s) => s.webhook.rssKb),
        },
      },
      samples: samples.map((s) => [Number(s.tMin.toFixed(3)), s.agent.fds, s.agent.rssKb, s.webhook.fds, s.webhook.rssKb]),
      samplesColumns: ['minute', 'agentFds', 'agentRssKb', 'webhookFds', 'webhookRssKb'],
    };
    void ts;
    // RSS is a sawtooth (V8 collects lazily): its floor, the lowest sample of each third of
    // the run, says more about growth than single samples do.
    const floors = (f: (s: (typeof samples)[number]) => number): number[] => {
      const third = Math.max(1, Math.floor(samples.length / 3));
      return [0, 1, 2].map((k) => Math.min(...samples.slice(k * third, k === 2 ? samples.length : (k + 1) * third).map(f)));
    };
    const agentFloors = floors((s) => s.agent.rssKb);
    const webhookFloors = floors((s) => s.webhook.rssKb);
    Object.assign(summary.agent.rssKb, { floorsPerThird: agentFloors });
    Object.assign(summary.webhook.rssKb, { floorsPerThird: webhookFloors });
    const liveHeap = assessHeap(heaps, minutes, failures);
    Object.assign(summary, {
      liveHeap,
      heapSamples: heaps.map((h) => [
        Number(h.tMin.toFixed(3)),
        h.agent.heapUsed,
        h.agent.external,
        h.agent.rss,
        h.webhook.heapUsed,
        h.webhook.external,
        h.webhook.rss,
      ]),
      heapSamplesColumns: ['minute', 'agentHeapUsed', 'agentExternal', 'agentRss', 'webhookHeapUsed', 'webhookExternal', 'webhookRss'],
    });
    if (earlyCounts && lateCounts) Object.assign(summary, { webhookHeapDiff: printHeapDiff(earlyCounts, lateCounts) });
    // fds must not climb: the agent's last sample at most 2 above its first after the warm-up;
    // the webhook's at most 4 above, as the API server's keep-alive connections to it may come
    // and go (51 to 52 after the warm-up in a 10-minute run); a leak per round or per pod
    // would add hundreds.
    const base = warm[0] ?? samples[0]!;
    const last = samples.at(-1)!;
    if (last.agent.fds > base.agent.fds + 2) failures.push(`agent fds grew: ${base.agent.fds} -> ${last.agent.fds}`);
    if (last.webhook.fds > base.webhook.fds + 4) failures.push(`webhook fds grew: ${base.webhook.fds} -> ${last.webhook.fds}`);
    const resDir = join(repoRoot, 'test', 'bench', 'results');
    mkdirSync(resDir, { recursive: true });
    writeFileSync(join(resDir, 'soak.json'), JSON.stringify(summary, null, 2) + '\n');
    const rows: [string, string][] = [
      ['duration', `${summary.minutes} min, ${rounds} rounds`],
      ['Route edits / pods created / deleted', `${edit} / ${serial} / ${serial - live.length} (${pods} live)`],
      ['failures (pods wrong, timeouts, growth)', failures.length ? failures.join('; ') : 'none'],
      [
        'Route edit -> every pod routed (ms)',
        `p50 ${summary.convergeMs.routeEdit.p50}, p95 ${summary.convergeMs.routeEdit.p95}, max ${summary.convergeMs.routeEdit.max}`,
      ],
      [
        'new pod -> routed (ms)',
        `p50 ${summary.convergeMs.newPod.p50}, p95 ${summary.convergeMs.newPod.p95}, max ${summary.convergeMs.newPod.max}`,
      ],
      [
        'agent fds first/last/max, slope',
        `${summary.agent.fds.first}/${summary.agent.fds.last}/${summary.agent.fds.max}, ${summary.agent.fds.slopePerMin.toFixed(3)}/min`,
      ],
      [
        'agent RSS KiB first/last/min/max, slope',
        `${summary.agent.rssKb.first}/${summary.agent.rssKb.last}/${summary.agent.rssKb.min}/${summary.agent.rssKb.max}, ${summary.agent.rssKb.slopePerMin.toFixed(0)} KiB/min`,
      ],
      ['agent RSS floor per third (KiB)', agentFloors.join(' / ')],
      [
        'webhook fds first/last/max, slope',
        `${summary.webhook.fds.first}/${summary.webhook.fds.last}/${summary.webhook.fds.max}, ${summary.webhook.fds.slopePerMin.toFixed(3)}/min`,
      ],
      [
        'webhook RSS KiB first/last/min/max, slope',
        `${summary.webhook.rssKb.first}/${summary.webhook.rssKb.last}/${summary.webhook.rssKb.min}/${summary.webhook.rssKb.max}, ${summary.webhook.rssKb.slopePerMin.toFixed(0)} KiB/min`,
      ],
    ];
    rows.push(['webhook RSS floor per third (KiB)', webhookFloors.join(' / ')]);
    for (const who of ['agent', 'webhook'] as const) {
      const l = liveHeap[who];
      rows.push([
        `${who} post-GC heapUsed per third (MiB)`,
        `${l.heapUsedMedianPerThird.map(mib).join(' / ')}, slope ${(l.heapUsedSlopePerMin / 1024).toFixed(0)} KiB/min`,
      ]);
      rows.push([
        `${who} post-GC external per third (MiB)`,
        `${l.externalMedianPerThird.map(mib).join(' / ')}, slope ${(l.externalSlopePerMin / 1024).toFixed(0)} KiB/min`,
      ]);
    }
    const w = Math.max(...rows.map((r) => r[0].length));
    console.log(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n'));
    console.log(`\nwritten: test/bench/results/soak.json`);
    return failures.length ? 1 : 0;
  } finally {
    await c.run();
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`soak: failed: ${(e as Error).stack ?? e}`);
    process.exit(1);
  },
);
