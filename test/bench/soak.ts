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
 * The agent's and the webhook's open fds and RSS are sampled every round; a least-squares
 * slope is fitted. Prints a summary table and writes test/bench/results/soak.json. Exit 1
 * when a pod was ever left wrong, a step timed out, or the agent's fds grew.
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

const procStat = (pid: number): { fds: number; rssKb: number } => ({
  fds: readdirSync(`/proc/${pid}/fd`).length,
  rssKb: Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN),
});

async function main(): Promise<number> {
  const minutes = arg('minutes', 5);
  const pods = arg('pods', 8);
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
    const wh = await startWebhook({ kubeconfig: addon.kubeconfig, certDir: addon.certDir, args: ['--trusted-user', addon.user] });
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
    const agent = await AgentProc.start(env, { args: ['--log-level', 'warn'] });
    c.teardown(() => agent.stop('SIGKILL'));

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
    sample();
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
      if (rounds % 20 === 0)
        log(
          `${rounds} rounds, ${edit} Route edits, ${serial} pods so far; agent ${samples.at(-1)!.agent.fds} fds ${samples.at(-1)!.agent.rssKb} KiB`,
        );
    }
    const final = await converge('every pod routed at the end', live);
    void final;
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
    // fds must not climb: the agent's last sample at most 2 above its first after the warm-up.
    const fdBase = (warm[0] ?? samples[0]!).agent.fds;
    if (summary.agent.fds.last > fdBase + 2) failures.push(`agent fds grew: ${fdBase} -> ${summary.agent.fds.last}`);
    const resDir = join(repoRoot, 'test', 'bench', 'results');
    mkdirSync(resDir, { recursive: true });
    writeFileSync(join(resDir, 'soak.json'), JSON.stringify(summary, null, 2) + '\n');
    const rows: [string, string][] = [
      ['duration', `${summary.minutes} min, ${rounds} rounds`],
      ['Route edits / pods created / deleted', `${edit} / ${serial} / ${serial - live.length} (${pods} live)`],
      ['pods left wrong, timeouts', failures.length ? failures.join('; ') : 'none'],
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
    const w = Math.max(...rows.map((r) => r[0].length));
    rows.push(['webhook RSS floor per third (KiB)', webhookFloors.join(' / ')]);
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
