/**
 * What CNI-time injection adds to pod start, on the real node (kubelet + containerd + Multus):
 * pods with two NICs and a 5-route plan are started with the plugin chained after Multus, and
 * the plugin's own time inside CNI ADD (exec, the socket round trip, the agent writing the
 * routes) is recorded for every sandbox by a timing wrapper around the binary. That time is
 * exactly what the pod's start waits for beyond its network's own CNI ADD (Multus with ptp and
 * bridge), which is measured the same way in the same run as the baseline. Pods labelled
 * routes.k8s.ovn.org/cni-inject=disabled give the plugin's floor (asked, nothing written).
 * CNI_BENCH_PROF=DIR: the agent writes a V8 CPU profile there (--cpu-prof).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodePlan, planKeyFromSecret } from '../../core/plan-codec.js';
import { PLAN_ANNOTATION, type Plan } from '../../core/types.js';
import { findBinaries } from '../cluster/binaries.js';
import { startControlPlane } from '../cluster/controlplane.js';
import { kubeRequest } from '../cluster/k8s.js';
import { nodeUnavailable, startNode } from '../cluster/node.js';
import { nodePod, podRunning, waitPod } from '../cluster/pods.js';
import { cliPath } from '../util/fixtures.js';
import type { BenchRow } from './measure.js';
import { randomBytes } from 'node:crypto';

const PODS = 12; // per kind and phase
const PLAN: Plan = {
  v: 1,
  routes: [
    { dst: '172.16.10.0/24', dev: 'eth1' },
    { dst: '172.16.11.0/24', dev: 'eth1', via: '10.124.2.1' },
    { dst: '192.168.2.0/24', dev: 'eth0' },
    { dst: '10.96.0.10/32', dev: 'eth1' },
    { dst: '10.96.0.11/32', dev: 'eth0' },
  ],
};

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
};
const ms = (x: number) => `${x.toFixed(1)} ms`;

/** Replace a CNI plugin binary with a wrapper that logs "<command> <sandbox> <ns>" per run. */
function timeWrap(binDir: string, plugin: string, log: string): void {
  const bin = join(binDir, plugin);
  renameSync(bin, `${bin}.real`);
  writeFileSync(
    bin,
    `#!/bin/sh
s=$(date +%s%N)
"$0.real"
rc=$?
e=$(date +%s%N)
echo "${plugin} $CNI_COMMAND $CNI_CONTAINERID $((e - s))" >> ${log}
exit $rc
`,
  );
  chmodSync(bin, 0o755);
}

export async function run(): Promise<BenchRow[] | { skipped: string }> {
  const why = nodeUnavailable();
  if (why) return { skipped: `CNI-time injection on the real node: ${why}` };
  const cpBins = await findBinaries({ allowBuild: false });
  const nodeBins = await findBinaries({ allowBuild: false, set: 'node' });
  if (!cpBins.dir || !nodeBins.dir)
    return {
      skipped: `CNI-time injection on the real node: binaries not built (${cpBins.reason ?? nodeBins.reason}); run npm test -- test/node-e2e once`,
    };
  const cp = await startControlPlane({ binDir: cpBins.dir });
  const node = await startNode(cp, { binDir: nodeBins.dir });
  const work = mkdtempSync(join(tmpdir(), 'ovrt-cni-bench-'));
  let agent: ChildProcess | undefined;
  try {
    const secret = randomBytes(32);
    const key = planKeyFromSecret(secret);
    writeFileSync(join(work, 'plan.key'), secret.toString('base64') + '\n', { mode: 0o600 });
    const NS = 'bench';
    await kubeRequest(cp.kc, 'POST', '/api/v1/namespaces', { body: { metadata: { name: NS } } });
    agent = spawn(
      process.execPath,
      [
        ...(process.env.CNI_BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.CNI_BENCH_PROF}`] : []),
        cliPath,
        'agent',
        '--node-name',
        node.name,
        '--plan-key',
        join(work, 'plan.key'),
        '--kubeconfig',
        cp.kubeconfigPath,
        '--state-dir',
        join(work, 'state'),
        '--metrics-addr',
        'off',
        '--cni-socket',
        join(work, 'cni.sock'),
        '--cni-missed-dir',
        join(work, 'missed'),
        '--cni-bin-dir',
        join(node.dir, 'cni', 'bin'),
        '--cni-conf-dir',
        join(node.dir, 'cni', 'net.d'),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_NAME: '' } },
    );
    let agentLog = '';
    agent.stderr!.on('data', (d: Buffer) => {
      agentLog += d.toString();
    });
    for (let i = 0; !agentLog.includes('CNI plugin installed'); i++) {
      if (i > 600 || agent.exitCode !== null) throw new Error(`the agent did not install the CNI plugin: ${agentLog.slice(-1500)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const log = join(work, 'times.log');
    const bin = join(node.dir, 'cni', 'bin');
    timeWrap(bin, 'ovnkube-route-cni', log);
    timeWrap(bin, 'multus', log);
    // Two phases: pods started one at a time, then four at a time (the kubelet starts pods in
    // parallel, and the agent then answers several CNI ADDs at once). Injected and opted-out
    // pods are interleaved, so both kinds see the same machine load.
    const phases = [
      { id: 'seq', batch: 1, what: 'one pod at a time' },
      { id: 'par', batch: 4, what: 'four pods at a time' },
    ];
    for (const ph of phases) {
      const names: Array<{ name: string; optOut: boolean }> = [];
      for (let i = 0; i < PODS; i++) names.push({ name: `on-${ph.id}-${i}`, optOut: false }, { name: `off-${ph.id}-${i}`, optOut: true });
      for (let i = 0; i < names.length; i += ph.batch) {
        await Promise.all(
          names.slice(i, i + ph.batch).map(async ({ name, optOut }) => {
            const body = nodePod(name, node.name, {
              annotations: { [PLAN_ANNOTATION]: encodePlan(PLAN, { namespace: NS, key }) },
              ...(optOut ? { labels: { 'routes.k8s.ovn.org/cni-inject': 'disabled' } } : {}),
            });
            const res = await kubeRequest(cp.kc, 'POST', `/api/v1/namespaces/${NS}/pods`, { body });
            if (res.status !== 201) throw new Error(`create ${name}: ${res.status} ${res.body?.message}`);
            await waitPod(cp.kc, NS, name, 'Running', podRunning, 120_000);
          }),
        );
      }
    }
    // Which sandbox is which pod: the loopback cache files name both.
    const podOf = new Map<string, string>();
    const { readdirSync } = await import('node:fs');
    for (const f of readdirSync('/var/lib/cni/results')) {
      try {
        const j = JSON.parse(readFileSync(join('/var/lib/cni/results', f), 'utf8')) as { containerId: string; cniArgs: string[][] };
        const name = j.cniArgs.find(([k]) => k === 'K8S_POD_NAME')?.[1];
        if (name) podOf.set(j.containerId, name);
      } catch {
        /* not ours */
      }
    }
    const times = new Map<string, number[]>(); // "<plugin> <on|off>-<phase>" -> ms
    for (const l of readFileSync(log, 'utf8').split('\n')) {
      const [plugin, cmd, sandbox, ns] = l.split(' ');
      const pod = sandbox ? podOf.get(sandbox) : undefined;
      if (cmd !== 'ADD' || !pod || !ns) continue;
      const k = `${plugin} ${pod.split('-').slice(0, 2).join('-')}`;
      times.set(k, [...(times.get(k) ?? []), Number(ns) / 1e6]);
    }
    // The agent's side of each injected pod's answer, and how much of it was waiting for the
    // pod to arrive through the agent's own watch (the kubelet saw it first).
    const answers = agentLog
      .split('\n')
      .filter((l) => l.includes('"msg":"routes written during CNI ADD"'))
      .map((l) => JSON.parse(l) as { pod: string; ms: number; waitedForPodMs: number });
    const rows: BenchRow[] = [];
    for (const ph of phases) {
      const on = times.get(`ovnkube-route-cni on-${ph.id}`) ?? [];
      const off = times.get(`ovnkube-route-cni off-${ph.id}`) ?? [];
      const net = [...(times.get(`multus on-${ph.id}`) ?? []), ...(times.get(`multus off-${ph.id}`) ?? [])];
      if (on.length < PODS || off.length < PODS)
        throw new Error(`${ph.what}: timed ${on.length} injected and ${off.length} opted-out plugin runs, expected ${PODS} each`);
      const mine = answers.filter((a) => a.pod.startsWith(`${NS}/on-${ph.id}-`));
      const agentMs = mine.map((a) => a.ms);
      const waited = mine.map((a) => a.waitedForPodMs);
      const base = pct(net, 50);
      rows.push(
        {
          bench: `cni (${ph.what}): plugin time in CNI ADD, routes written, p50 / p99 of ${on.length} pods (goal p99 <= 50 ms)`,
          value: `${ms(pct(on, 50))} / ${ms(pct(on, 99))}`,
          baseline: `the pod network's own CNI ADD (Multus: ptp + bridge) p50 / p99: ${ms(base)} / ${ms(pct(net, 99))}`,
          ratio: `${(pct(on, 50) / base).toFixed(2)}x / ${(pct(on, 99) / pct(net, 99)).toFixed(2)}x`,
        },
        {
          bench: `cni (${ph.what}): plugin time, pod opted out (floor: timing wrapper, exec, one round trip), p50`,
          value: ms(pct(off, 50)),
          baseline: `pod network CNI ADD p50: ${ms(base)}`,
          ratio: `${(pct(off, 50) / base).toFixed(2)}x`,
        },
        {
          bench: `cni (${ph.what}): the agent answering, p50 / p99 (of which waiting for the pod from its watch)`,
          value: `${ms(pct(agentMs, 50))} / ${ms(pct(agentMs, 99))}`,
          baseline: `${ms(pct(waited, 50))} / ${ms(pct(waited, 99))}`,
          ratio: '-',
        },
      );
    }
    return rows;
  } finally {
    if (agent && agent.exitCode === null) {
      const gone = new Promise((r) => agent!.once('exit', r));
      agent.kill('SIGTERM');
      await gone;
    }
    await node.stop();
    await cp.stop();
    rmSync(work, { recursive: true, force: true });
    if (existsSync(work)) rmSync(work, { recursive: true, force: true });
  }
}
