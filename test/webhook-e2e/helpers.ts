/**
 * Helpers of the webhook + controller end-to-end tests (compiled to dist/test/webhook-e2e):
 * the real `ovnkube-route webhook` command as a child process against the harness's
 * kube-apiserver, the MutatingWebhookConfiguration from deploy/ pointed at it, and small
 * pod/Route/metrics helpers over raw API requests (so tests see what the server says).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { KubeConfig } from '@kubernetes/client-node';
import { decodePlan, parsePlanKey, type DecodeResult, type PlanKey } from '../../core/plan-codec.js';
import { PLAN_ANNOTATION, type Pod } from '../../core/types.js';
import type { Test } from 'tap';
import type { ControlPlane } from '../cluster/controlplane.js';
import { applyManifests, kubeRequest, loadYamlDocuments, waitForCRDEstablished, type KubeResponse } from '../cluster/k8s.js';
import { nodeCommand } from '../util/node-child.js';
import { cliPath, repoRoot } from '../util/fixtures.js';
import { genCerts } from '../webhook/helpers.js';
import { metricSum } from '../util/http.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export { until } from '../util/until.js';

/** Fail with the server's message unless the status is one of `ok`. */
export function expectStatus(res: KubeResponse, ok: number[], what: string): KubeResponse {
  if (!ok.includes(res.status))
    throw new Error(`${what}: HTTP ${res.status}: ${res.body?.message ?? JSON.stringify(res.body).slice(0, 300)}`);
  return res;
}

/** A minimal pod (no scheduler or kubelet runs: it stays Pending, which is all we need). */
export function podBody(
  name: string | { generateName: string },
  opts: { labels?: Record<string, string>; annotations?: Record<string, string>; hostNetwork?: boolean } = {},
): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...(typeof name === 'string' ? { name } : name),
      ...(opts.labels ? { labels: opts.labels } : {}),
      ...(opts.annotations ? { annotations: opts.annotations } : {}),
    },
    spec: {
      containers: [{ name: 'c', image: 'registry.invalid/none:1' }],
      nodeName: 'node-1',
      ...(opts.hostNetwork ? { hostNetwork: true } : {}),
    },
  };
}

/** Create a pod; resolves with the stored object (after admission). */
export async function createPod(kc: KubeConfig, namespace: string, pod: Pod): Promise<Pod> {
  return expectStatus(
    await kubeRequest(kc, 'POST', `/api/v1/namespaces/${namespace}/pods`, { body: pod }),
    [201],
    `create pod in ${namespace}`,
  ).body as Pod;
}

export async function getPod(kc: KubeConfig, namespace: string, name: string): Promise<Pod> {
  return expectStatus(await kubeRequest(kc, 'GET', `/api/v1/namespaces/${namespace}/pods/${name}`), [200], `get pod ${namespace}/${name}`)
    .body as Pod;
}

export const planAnnotation = (pod: Pod): string | undefined => pod.metadata?.annotations?.[PLAN_ANNOTATION];

/** Decode a pod's plan as the injector does (signature required, bound to the namespace). */
export function verifyPlan(pod: Pod, keys: PlanKey[]): DecodeResult | undefined {
  const v = planAnnotation(pod);
  return v === undefined ? undefined : decodePlan(v, { namespace: pod.metadata?.namespace ?? '', keys, requireSignature: true });
}

/** The `dst dev` lines of a pod's verified plan, or null when it has none or it does not verify. */
export function planRoutes(pod: Pod, keys: PlanKey[]): string[] | null {
  const d = verifyPlan(pod, keys);
  return d?.ok ? d.plan.routes.map((r) => `${r.dst} ${r.dev}${r.via ? ` via ${r.via}` : ''}`) : null;
}

export async function createNamespace(kc: KubeConfig, name: string, labels: Record<string, string> = {}): Promise<void> {
  expectStatus(
    await kubeRequest(kc, 'POST', '/api/v1/namespaces', { body: { metadata: { name, labels } } }),
    [201, 409],
    `create namespace ${name}`,
  );
}

const ROUTES = '/apis/k8s.ovn.org/v1/routes';

export async function applyRoute(kc: KubeConfig, name: string, spec: Record<string, unknown>): Promise<void> {
  const res = await kubeRequest(kc, 'PATCH', `${ROUTES}/${name}`, {
    query: { fieldManager: 'e2e', force: 'true' },
    contentType: 'application/apply-patch+yaml',
    body: { apiVersion: 'k8s.ovn.org/v1', kind: 'Route', metadata: { name }, spec },
  });
  expectStatus(res, [200, 201], `apply Route ${name}`);
}

export async function getRoute(kc: KubeConfig, name: string): Promise<any> {
  return expectStatus(await kubeRequest(kc, 'GET', `${ROUTES}/${name}`), [200], `get Route ${name}`).body;
}

export async function deleteRoute(kc: KubeConfig, name: string): Promise<void> {
  expectStatus(await kubeRequest(kc, 'DELETE', `${ROUTES}/${name}`), [200, 404], `delete Route ${name}`);
}

/**
 * Write a kubeconfig at `path` that authenticates as ServiceAccount `namespace/name` (a
 * TokenRequest token), so a process runs with exactly the RBAC deploy/ grants it.
 */
export async function serviceAccountKubeconfig(
  kc: KubeConfig,
  server: string,
  caPem: string,
  namespace: string,
  name: string,
  path: string,
): Promise<string> {
  const tr = expectStatus(
    await kubeRequest(kc, 'POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
    }),
    [201],
    `token for ServiceAccount ${namespace}/${name}`,
  );
  writeFileSync(
    path,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'sa',
      clusters: [{ name: 'c', cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
      users: [{ name: 'sa', user: { token: tr.body.status.token } }],
      contexts: [{ name: 'sa', context: { cluster: 'c', user: 'sa' } }],
    }),
    { mode: 0o600 },
  );
  return `system:serviceaccount:${namespace}:${name}`;
}

/** The plan key of a certs/gen.sh output folder. */
export const readPlanKey = (certDir: string): PlanKey => parsePlanKey(readFileSync(join(certDir, 'plan.key'), 'utf8'));

/** What installAddon() set up. */
export interface Addon {
  /** certs/gen.sh output (serving pair valid for 127.0.0.1, CA, plan key); removed at teardown. */
  certDir: string;
  keys: PlanKey[];
  /** Kubeconfig of deploy/'s ServiceAccount, and its username (for --trusted-user). */
  kubeconfig: string;
  user: string;
}

/**
 * Install what the add-on needs from the repository: crds/, deploy/namespace.yaml and
 * deploy/webhook-rbac.yaml; make certs with certs/gen.sh (plus IP SAN 127.0.0.1, since the
 * API server reaches the test's process by URL); and a kubeconfig for the ServiceAccount.
 */
export async function installAddon(t: Test, cp: ControlPlane): Promise<Addon> {
  const manifests = ['crds/route.yaml', 'deploy/namespace.yaml', 'deploy/webhook-rbac.yaml'].flatMap((f) =>
    loadYamlDocuments(join(repoRoot, f)),
  );
  for (const r of await applyManifests(cp.kc, manifests)) {
    if (!r.ok) throw new Error(`${r.object}: ${r.message}`);
  }
  await waitForCRDEstablished(cp.kc, 'routes.k8s.ovn.org');
  const certDir = mkdtempSync(join(tmpdir(), 'ovnkube-route-e2e-'));
  t.teardown(() => rmSync(certDir, { recursive: true, force: true }));
  await genCerts(certDir, ['--san', 'IP:127.0.0.1']);
  const kubeconfig = join(certDir, 'sa-kubeconfig');
  const user = await serviceAccountKubeconfig(cp.kc, cp.server, cp.caPem, 'ovnkube-route', 'ovnkube-route-webhook', kubeconfig);
  return { certDir, keys: [readPlanKey(certDir)], kubeconfig, user };
}

/**
 * Register deploy/webhook-config.yaml (of `root`, default this tree) as it is, except clientConfig: the URL of the test's
 * process (https://127.0.0.1:<port>/mutate) and the CA bundle of the certs/ folder.
 */
export async function registerWebhook(kc: KubeConfig, port: number, certDir: string, root: string = repoRoot): Promise<any> {
  const [config] = loadYamlDocuments(join(root, 'deploy', 'webhook-config.yaml')) as any[];
  for (const w of config.webhooks) {
    w.clientConfig = { url: `https://127.0.0.1:${port}/mutate`, caBundle: readFileSync(join(certDir, 'ca-bundle.b64'), 'utf8').trim() };
  }
  const res = await kubeRequest(
    kc,
    'PATCH',
    `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${config.metadata.name}`,
    {
      query: { fieldManager: 'e2e', force: 'true' },
      contentType: 'application/apply-patch+yaml',
      body: config,
    },
  );
  expectStatus(res, [200, 201], 'register the MutatingWebhookConfiguration');
  return config;
}

/** One running `ovnkube-route webhook` process. */
export interface WebhookProcess {
  child: ChildProcess;
  port: number;
  /** Parsed JSON log lines so far. */
  logs: Record<string, any>[];
  /** GET a path over HTTPS (the certs/ CA), e.g. /metrics. */
  get(path: string): Promise<{ status: number; body: string }>;
  /** The sum of a metric's samples that carry `labels` (0 when there are none). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** Send `signal` and wait for the exit; resolves with the exit code or signal. */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/** `webhook` and the flags that run it on 127.0.0.1:`port` with the certs/gen.sh output in `certDir`. */
export function webhookArgs(certDir: string, kubeconfig: string, port: number): string[] {
  return [
    'webhook',
    '--tls-cert',
    join(certDir, 'tls.crt'),
    '--tls-key',
    join(certDir, 'tls.key'),
    '--plan-key',
    join(certDir, 'plan.key'),
    '--kubeconfig',
    kubeconfig,
    '--listen-address',
    '127.0.0.1',
    '--port',
    String(port),
  ];
}

/** Start `ovnkube-route webhook` with certs from `certDir`; resolves once it listens. */
export async function startWebhook(opts: {
  kubeconfig: string;
  certDir: string;
  port?: number;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Another build's CLI (benchmarks compare with an earlier commit); default this tree's. */
  cli?: string;
  /** Node flags before the script (the soak's `--inspect=...`). */
  nodeArgs?: string[];
}): Promise<WebhookProcess> {
  const { certDir } = opts;
  // Without the test runner's loader (node-child.ts): the webhook as its Deployment runs it.
  const child = spawn(
    ...nodeCommand([
      ...(opts.nodeArgs ?? []),
      opts.cli ?? cliPath,
      ...webhookArgs(certDir, opts.kubeconfig, opts.port ?? 0),
      ...(opts.args ?? []),
    ]),
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...opts.env },
    },
  );
  const logs: Record<string, any>[] = [];
  const exited = once(child, 'exit').then(([code, sig]) => (sig as string | null) ?? (code as number));
  const port = await new Promise<number>((resolve, reject) => {
    createInterface(child.stderr!).on('line', (l) => {
      let o: Record<string, any>;
      try {
        o = JSON.parse(l);
      } catch {
        o = { msg: l };
      }
      logs.push(o);
      if (o.msg === 'webhook listening') resolve(o.port);
    });
    void exited.then((how) => reject(new Error(`webhook exited (${how}) before listening: ${JSON.stringify(logs.slice(-5))}`)));
  });
  const ca = readFileSync(join(certDir, 'ca.crt'));
  const get = (path: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, ca, agent: false, timeout: 10_000 }, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => {
          b += d.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
      });
      req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer in 10 s`)));
      req.on('error', reject);
      req.end();
    });
  return {
    child,
    port,
    logs,
    get,
    async metric(name, labels = {}) {
      return metricSum((await get('/metrics')).body, name, labels);
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
