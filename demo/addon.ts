/**
 * The add-on installed on the demo cluster the way a user installs it from this repository,
 * its three parts running as local processes with deploy/'s identities:
 * - crds/route.yaml, deploy/'s namespace, RBAC, PriorityClass and admission policy;
 * - certs/gen.sh: the serving pair (valid for 127.0.0.1, where the API server calls it) and
 *   the plan key;
 * - `ovnkube-route webhook` (admission + controller) as the webhook ServiceAccount, and
 *   deploy/webhook-config.yaml registered with its URL and CA bundle;
 * - `ovnkube-route agent` as the injector ServiceAccount, with a token bound to its own
 *   hostNetwork pod on the node (as the DaemonSet's pod has), CNI-time injection on.
 * Each process runs in its own process group with its pid file in the control plane's folder,
 * so the control plane's reaper (or `npm run cluster:down`) stops it whatever happens to us.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { serviceAccountKubeConfig } from '../test/cluster/helpers.js';
import { applyManifests, loadYamlDocuments, waitForCRDEstablished } from '../test/cluster/k8s.js';
import { CNI_CACHE_DIR, type RealNode } from '../test/cluster/node.js';
import { agentKubeconfig } from '../test/cluster/pods.js';
import { registerWebhook, webhookArgs } from '../test/webhook-e2e/helpers.js';
import { logTail, startServer, stopGroup, type ServerProcess } from '../test/cluster/procs.js';
import type { ControlPlane } from '../test/cluster/controlplane.js';
import { freePort, httpGet } from '../test/util/http.js';
import { cliPath, repoRoot } from '../test/util/fixtures.js';

const execFileP = promisify(execFile);

export interface Addon {
  certDir: string;
  webhook: ServerProcess;
  agent: ServerProcess;
  agentMetricsPort: number;
  webhookPort: number;
  stop(): Promise<void>;
}

async function waitFor(what: string, proc: ServerProcess, ok: () => Promise<boolean>, ms = 90_000): Promise<void> {
  let ended: string | null = null;
  void proc.exited.then((how) => {
    ended = how;
  });
  const deadline = Date.now() + ms;
  for (;;) {
    if (ended) throw new Error(`${what}: ${proc.name} ${ended}; last lines of ${proc.logPath}:\n${logTail(proc.logPath)}`);
    if (await ok().catch(() => false)) return;
    if (Date.now() > deadline)
      throw new Error(`${what}: not so after ${ms / 1000} s; last lines of ${proc.logPath}:\n${logTail(proc.logPath)}`);
    await sleep(200);
  }
}

function httpsStatus(port: number, path: string, ca: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, ca, agent: false, timeout: 5000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
    req.end();
  });
}

/** Install and start the add-on; `progress` gets one line per step. */
export async function installAddon(
  cp: ControlPlane,
  node: RealNode,
  work: string,
  keep: boolean,
  progress: (l: string) => void,
): Promise<Addon> {
  const { kc } = cp;
  const files = [
    'crds/route.yaml',
    'deploy/namespace.yaml',
    'deploy/webhook-rbac.yaml',
    'deploy/node-injector-rbac.yaml',
    'deploy/node-injector-priorityclass.yaml',
    'deploy/node-injector-policy.yaml',
  ];
  for (const r of await applyManifests(
    kc,
    files.flatMap((f) => loadYamlDocuments(join(repoRoot, f))),
  )) {
    if (!r.ok) throw new Error(`apply ${r.object}: ${r.message}`);
  }
  await waitForCRDEstablished(kc, 'routes.k8s.ovn.org');
  progress(`applied ${files.join(', ')}`);

  const certDir = join(work, 'certs');
  mkdirSync(certDir, { recursive: true });
  await execFileP(join(repoRoot, 'certs', 'gen.sh'), [certDir, '--san', 'IP:127.0.0.1'], { timeout: 120_000 }).catch(
    (e: Error & { stderr?: string }) => {
      throw new Error(`certs/gen.sh: ${e.stderr?.trim() || e.message}`);
    },
  );
  progress(`certs/gen.sh made the serving pair and the plan key in ${certDir}`);

  // The webhook + controller as deploy/'s ServiceAccount.
  const whKubeconfig = join(work, 'webhook.kubeconfig');
  writeFileSync(whKubeconfig, (await serviceAccountKubeConfig(cp, 'ovnkube-route', 'ovnkube-route-webhook', 24 * 3600)).exportConfig(), {
    mode: 0o600,
  });
  const webhookPort = await freePort();
  const webhook = startServer(
    cp.dir,
    'ovnkube-route-webhook',
    process.execPath,
    [
      cliPath,
      ...webhookArgs(certDir, whKubeconfig, webhookPort),
      '--trusted-user',
      'system:serviceaccount:ovnkube-route:ovnkube-route-webhook',
    ],
    keep,
  );
  const ca = readFileSync(join(certDir, 'ca.crt'));
  await waitFor('the webhook is ready', webhook, async () => (await httpsStatus(webhookPort, '/readyz', ca)) === 200);
  const config = await registerWebhook(kc, webhookPort, certDir);
  progress(`webhook + controller ready on https://127.0.0.1:${webhookPort} (pid ${webhook.pid}), registered as ${config.metadata.name}`);

  // The agent as the injector ServiceAccount, its token bound to its own pod on the node.
  const agentKc = await agentKubeconfig(cp, node.name, 'ovnkube-route-agent-demo', join(work, 'agent.kubeconfig'));
  const agentMetricsPort = await freePort();
  const stateDir = join(work, 'agent-state');
  mkdirSync(stateDir, { recursive: true });
  const agent = startServer(
    cp.dir,
    'ovnkube-route-agent',
    process.execPath,
    [
      cliPath,
      'agent',
      '--node-name',
      node.name,
      '--plan-key',
      join(certDir, 'plan.key'),
      '--kubeconfig',
      agentKc,
      '--cni-cache-dir',
      CNI_CACHE_DIR,
      '--netns-dir',
      '/var/run/netns',
      '--state-dir',
      stateDir,
      '--metrics-addr',
      `127.0.0.1:${agentMetricsPort}`,
      '--cni-socket',
      join(work, 'cni.sock'),
      '--cni-missed-dir',
      join(work, 'cni-missed'),
      '--cni-bin-dir',
      join(node.dir, 'cni', 'bin'),
      '--cni-conf-dir',
      join(node.dir, 'cni', 'net.d'),
    ],
    keep,
  );
  await waitFor('the agent is ready', agent, async () => (await httpGet(agentMetricsPort, '/readyz')).status === 200);
  progress(
    `agent ready (pid ${agent.pid}), CNI-time injection chained after Multus; metrics on http://127.0.0.1:${agentMetricsPort}/metrics`,
  );

  return {
    certDir,
    webhook,
    agent,
    agentMetricsPort,
    webhookPort,
    async stop() {
      // The agent first: a clean stop takes its CNI plugin out of the node's chain.
      await stopGroup(agent.pid, agent.child, 15_000);
      await stopGroup(webhook.pid, webhook.child, 15_000);
    },
  };
}
