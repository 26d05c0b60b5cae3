/**
 * What CNI-time injection adds to pod start, on the real node (kubelet + containerd + Multus):
 * pods with two NICs and a 5-route plan are started with the plugin chained after Multus, and
 * the plugin's own time inside CNI ADD (exec, the socket round trip, the agent writing the
 * routes) is recorded for every sandbox by a timing wrapper around the binary. That time is
 * exactly what the pod's start waits for beyond its network's own CNI ADD (Multus with ptp and
 * bridge), which is measured the same way in the same run as the baseline. Pods labelled
 * routes.k8s.ovn.org/cni-inject=disabled give the plugin's floor (asked, nothing written).
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

const PODS = 12;
const PLAN: Plan = {
  v: 1,
  routes: [
    { dst: '172.16.10.0/24', dev: 'eth1' }, { dst: '172.16.11.0/24', dev: 'eth1', via: '10.124.2.1' }, { dst: '192.168.2.0/24', dev: 'eth0' },
    { dst: '10.96.0.10/32', dev: 'eth1' }, { dst: '10.96.0.11/32', dev: 'eth0' },
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
  writeFileSync(bin, `#!/bin/sh
s=$(date +%s%N)
"$0.real"
rc=$?
e=$(date +%s%N)
echo "${plugin} $CNI_COMMAND $CNI_CONTAINERID $((e - s))" >> ${log}
exit $rc
`);
  chmodSync(bin, 0o755);
}

export async function run(): Promise<BenchRow[] | { skipped: string }> {
  const why = nodeUnavailable();
  if (why) return { skipped: `CNI-time injection on the real node: ${why}` };
  const cpBins = await findBinaries({ allowBuild: false });
  const nodeBins = await findBinaries({ allowBuild: false, set: 'node' });
  if (!cpBins.dir || !nodeBins.dir) return { skipped: `CNI-time injection on the real node: binaries not built (${cpBins.reason ?? nodeBins.reason}); run npm test -- test/node-e2e once` };
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
    agent = spawn(process.execPath, [cliPath, 'agent', '--node-name', node.name, '--plan-key', join(work, 'plan.key'),
      '--kubeconfig', cp.kubeconfigPath, '--state-dir', join(work, 'state'), '--metrics-addr', 'off',
      '--cni-socket', join(work, 'cni.sock'), '--cni-missed-dir', join(work, 'missed'),
      '--cni-bin-dir', join(node.dir, 'cni', 'bin'), '--cni-conf-dir', join(node.dir, 'cni', 'net.d')],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_NAME: '' } });
    let agentLog = '';
    agent.stderr!.on('data', (d: Buffer) => { agentLog += d.toString(); });
    for (let i = 0; !agentLog.includes('CNI plugin installed'); i++) {
      if (i > 600 || agent.exitCode !== null) throw new Error(`the agent did not install the CNI plugin: ${agentLog.slice(-1500)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const log = join(work, 'times.log');
    const bin = join(node.dir, 'cni', 'bin');
    timeWrap(bin, 'ovnkube-route-cni', log);
    timeWrap(bin, 'multus', log);
    // Interleaved, a few at a time: both kinds see the same machine load.
    const names: Array<{ name: string; optOut: boolean }> = [];
    for (let i = 0; i < PODS; i++) names.push({ name: `on-${i}`, optOut: false }, { name: `off-${i}`, optOut: true });
    for (let i = 0; i < names.length; i += 4) {
      const batch = names.slice(i, i + 4);
      await Promise.all(batch.map(async ({ name, optOut }) => {
        const body = nodePod(name, node.name, { annotations: { [PLAN_ANNOTATION]: encodePlan(PLAN, { namespace: NS, key }) }, ...(optOut ? { labels: { 'routes.k8s.ovn.org/cni-inject': 'disabled' } } : {}) });
        const res = await kubeRequest(cp.kc, 'POST', `/api/v1/namespaces/${NS}/pods`, { body });
        if (res.status !== 201) throw new Error(`create ${name}: ${res.status} ${res.body?.message}`);
        await waitPod(cp.kc, NS, name, 'Running', podRunning, 120_000);
      }));
    }
    // Which sandbox is which pod: the loopback cache files name both.
    const bySandbox = new Map<string, string>();
    for (const l of readFileSync(log, 'utf8').split('\n')) {
      const [, cmd, sandbox] = l.split(' ');
      if (cmd === 'ADD' && sandbox) bySandbox.set(sandbox, '');
    }
    const { readdirSync } = await import('node:fs');
    for (const f of readdirSync('/var/lib/cni/results')) {
      try {
        const j = JSON.parse(readFileSync(join('/var/lib/cni/results', f), 'utf8')) as { containerId: string; cniArgs: string[][] };
        const name = j.cniArgs.find(([k]) => k === 'K8S_POD_NAME')?.[1];
        if (name && bySandbox.has(j.containerId)) bySandbox.set(j.containerId, name);
      } catch { /* not ours */ }
    }
    const on: number[] = [];
    const off: number[] = [];
    const net: number[] = [];
    for (const l of readFileSync(log, 'utf8').split('\n')) {
      const [plugin, cmd, sandbox, ns] = l.split(' ');
      if (cmd !== 'ADD' || !sandbox || !ns) continue;
      const t = Number(ns) / 1e6;
      if (plugin === 'multus') net.push(t);
      else if (bySandbox.get(sandbox)?.startsWith('on-')) on.push(t);
      else if (bySandbox.get(sandbox)?.startsWith('off-')) off.push(t);
    }
    if (on.length < PODS || off.length < PODS) throw new Error(`timed ${on.length} injected and ${off.length} opted-out plugin runs, expected ${PODS} each`);
    const base = pct(net, 50);
    // The agent's side of each injected pod's answer, and how much of it was waiting for the
    // pod to arrive through the agent's own watch (the kubelet saw it first).
    const answers = agentLog.split('\n').filter((l) => l.includes('"msg":"routes written during CNI ADD"'))
      .map((l) => JSON.parse(l) as { ms: number; waitedForPodMs: number });
    const agentMs = answers.map((a) => a.ms);
    const waited = answers.map((a) => a.waitedForPodMs);
    return [
      { bench: 'cni: the agent answering (p50 / p99), of which waiting for the pod from its watch (p50 / p99)', value: `${ms(pct(agentMs, 50))} / ${ms(pct(agentMs, 99))}`, baseline: `${ms(pct(waited, 50))} / ${ms(pct(waited, 99))}`, ratio: '-' },
      { bench: `cni: plugin time in CNI ADD, routes written (p50 of ${on.length} pods)`, value: ms(pct(on, 50)), baseline: `the pod network's own CNI ADD (Multus: ptp + bridge), p50: ${ms(base)}`, ratio: `${(pct(on, 50) / base).toFixed(2)}x` },
      { bench: 'cni: plugin time in CNI ADD, routes written (p99; goal <= 50 ms)', value: ms(pct(on, 99)), baseline: `pod network CNI ADD p99: ${ms(pct(net, 99))}`, ratio: `${(pct(on, 99) / pct(net, 99)).toFixed(2)}x` },
      { bench: 'cni: plugin time in CNI ADD, pod opted out (floor: exec + round trip)', value: ms(pct(off, 50)), baseline: `pod network CNI ADD p50: ${ms(base)}`, ratio: `${(pct(off, 50) / base).toFixed(2)}x` },
    ];
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
