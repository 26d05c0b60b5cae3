/**
 * A cluster state for the live CLI commands (explain, plan without -f, routes --remote), put
 * into a real kube-apiserver: the Route CRD, deploy/namespace.yaml and the webhook
 * Deployment of deploy/ (its --mode is what explain reads), the plan key Secret, a Service,
 * four Routes that select, conflict, exclude and miss, and pods carrying what the webhook and
 * the agent would have written (signed plans, status reports, Events). No webhook or agent
 * runs: the annotations are written as they write them (core's encoder), so the CLI's
 * reading of them is what is tested.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { encodeInjectorStatus } from '../../core/injector-status.js';
import { encodePlan, parsePlanKey, planHash, type PlanKey } from '../../core/plan-codec.js';
import { PLAN_ANNOTATION, STATUS_ANNOTATION, type Plan } from '../../core/types.js';
import { applyManifests, kubeRequest, loadYamlDocuments, waitForCRDEstablished } from '../cluster/k8s.js';
import { repoRoot } from '../util/fixtures.js';

export const NS = 'app';
export const NODE = 'node-x';

export interface LiveFixture {
  key: PlanKey;
  keyText: string;
  svcIP: string;
  /** The plan app/web must get. */
  webPlan: Plan;
}

async function must(kc: KubeConfig, method: string, path: string, body: unknown, what: string): Promise<any> {
  const r = await kubeRequest(kc, method, path, { body });
  if (r.status >= 300) throw new Error(`${what}: HTTP ${r.status}: ${r.body?.message ?? JSON.stringify(r.body)}`);
  return r.body;
}

const pod = (
  name: string,
  extra: { labels?: Record<string, string>; annotations?: Record<string, string>; hostNetwork?: boolean } = {},
) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: NS, labels: extra.labels ?? {}, annotations: extra.annotations ?? {} },
  spec: { nodeName: NODE, ...(extra.hostNetwork ? { hostNetwork: true } : {}), containers: [{ name: 'main', image: 'busybox' }] },
});

export async function setupLiveFixture(kc: KubeConfig): Promise<LiveFixture> {
  const base = [
    ...loadYamlDocuments(join(repoRoot, 'crds', 'route.yaml')),
    ...loadYamlDocuments(join(repoRoot, 'deploy', 'namespace.yaml')),
  ];
  for (const r of await applyManifests(kc, base)) if (!r.ok) throw new Error(`${r.object}: ${r.message}`);
  await waitForCRDEstablished(kc, 'routes.k8s.ovn.org');
  const deploy = loadYamlDocuments(join(repoRoot, 'deploy', 'webhook-deployment.yaml')).filter((o) => o.kind === 'Deployment');
  for (const r of await applyManifests(kc, deploy)) if (!r.ok) throw new Error(`${r.object}: ${r.message}`);
  const keyText = randomBytes(32).toString('base64');
  const key = parsePlanKey(keyText);
  await must(
    kc,
    'POST',
    '/api/v1/namespaces/ovnkube-route/secrets',
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'ovnkube-route-plan-key', namespace: 'ovnkube-route' },
      data: { 'plan.key': Buffer.from(keyText + '\n').toString('base64') },
    },
    'plan key Secret',
  );
  await must(
    kc,
    'POST',
    '/api/v1/namespaces',
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { team: 'blue' } } },
    'namespace',
  );
  const svc = await must(
    kc,
    'POST',
    `/api/v1/namespaces/${NS}/services`,
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'nginx', namespace: NS },
      spec: { ports: [{ port: 80 }] },
    },
    'Service',
  );
  const svcIP = String(svc.spec.clusterIP);
  const routes = [
    {
      name: 'a-svc',
      spec: {
        svc: [
          { namespace: NS, name: 'nginx', dev: 'eth1' },
          { namespace: NS, name: 'missing', dev: 'eth1' },
        ],
        route: [{ dst: '172.16.10.0/24', dev: 'eth1' }],
        include: [{ namespaces: ['other'] }, { namespaces: [NS] }],
      },
    },
    {
      name: 'b-override',
      spec: { route: [{ dst: '172.16.10.0/24', dev: 'eth0' }], include: [{ podSelector: { matchLabels: { tier: 'web' } } }] },
    },
    { name: 'c-excluded', spec: { route: [{ dst: '192.168.2.0/24', dev: 'eth0' }], exclude: [{ pods: [`${NS}/web`] }] } },
    {
      name: 'd-elsewhere',
      spec: { route: [{ dst: '10.9.0.0/16', dev: 'eth0' }], include: [{ namespaceSelector: { matchLabels: { team: 'red' } } }] },
    },
  ];
  for (const r of routes)
    await must(
      kc,
      'POST',
      '/apis/k8s.ovn.org/v1/routes',
      { apiVersion: 'k8s.ovn.org/v1', kind: 'Route', metadata: { name: r.name }, spec: r.spec },
      `Route ${r.name}`,
    );

  const webPlan: Plan = {
    v: 1,
    routes: [
      { dst: `${svcIP}/32`, dev: 'eth1' },
      { dst: '172.16.10.0/24', dev: 'eth1' },
    ],
  };
  const signed = (p: Plan, k: PlanKey = key) => encodePlan(p, { key: k, namespace: NS });
  const now = new Date().toISOString();
  // web: stamped with the plan that resolves now; the agent applied one route and skipped the other.
  await must(
    kc,
    'POST',
    `/api/v1/namespaces/${NS}/pods`,
    pod('web', {
      labels: { tier: 'web' },
      annotations: {
        [PLAN_ANNOTATION]: signed(webPlan),
        [STATUS_ANNOTATION]: encodeInjectorStatus({
          plan: planHash(webPlan),
          applied: 1,
          skipped: [{ dst: '172.16.10.0/24', dev: 'eth1', reason: 'missing-dev', detail: 'no interface eth1 in the netns' }],
          node: NODE,
          time: now,
          start: { mode: 'cni' },
        }),
      },
    }),
    'pod web',
  );
  // stale: an older plan, signed; the agent reports that older plan.
  const old: Plan = { v: 1, routes: [{ dst: '172.16.10.0/24', dev: 'eth0' }] };
  await must(
    kc,
    'POST',
    `/api/v1/namespaces/${NS}/pods`,
    pod('stale', {
      annotations: {
        [PLAN_ANNOTATION]: signed(old),
        [STATUS_ANNOTATION]: encodeInjectorStatus({ plan: planHash(old), applied: 1, skipped: [], node: NODE, time: now }),
      },
    }),
    'pod stale',
  );
  // forged: the right plan, signed with a key the cluster does not have.
  await must(
    kc,
    'POST',
    `/api/v1/namespaces/${NS}/pods`,
    pod('forged', {
      annotations: {
        [PLAN_ANNOTATION]: signed(
          {
            v: 1,
            routes: [
              { dst: `${svcIP}/32`, dev: 'eth1' },
              { dst: '172.16.10.0/24', dev: 'eth1' },
              { dst: '192.168.2.0/24', dev: 'eth0' },
            ],
          },
          parsePlanKey(randomBytes(32).toString('base64')),
        ),
      },
    }),
    'pod forged',
  );
  await must(kc, 'POST', `/api/v1/namespaces/${NS}/pods`, pod('host', { hostNetwork: true }), 'pod host');
  // Events on web: one of the agent's, one of someone else's (not shown).
  const ev = (name: string, component: string, reason: string, message: string) => ({
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name, namespace: NS },
    involvedObject: { apiVersion: 'v1', kind: 'Pod', name: 'web', namespace: NS },
    type: 'Warning',
    reason,
    message,
    source: { component, host: NODE },
    reportingComponent: component,
    reportingInstance: NODE,
    firstTimestamp: now,
    lastTimestamp: now,
    count: 2,
  });
  await must(
    kc,
    'POST',
    `/api/v1/namespaces/${NS}/events`,
    ev('web.ours', 'ovnkube-route-injector', 'RoutesSkipped', '172.16.10.0/24 dev eth1: missing-dev'),
    'Event',
  );
  await must(kc, 'POST', `/api/v1/namespaces/${NS}/events`, ev('web.kubelet', 'kubelet', 'BackOff', 'not ours'), 'Event');
  return { key, keyText, svcIP, webPlan };
}
