/**
 * The design document's world on the demo cluster: its Services, its demo Route (verbatim)
 * plus a second Route with the target table's other rows (a CIDR via the OVN gateway, one
 * more Service pinned to eth0), and pods of every kind the add-on must tell apart.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { INJECT_LABEL, type Pod } from '../core/types.js';
import { kubeRequest } from '../test/cluster/k8s.js';
import { NODE_NETS } from '../test/cluster/node.js';
import { nodePod } from '../test/cluster/pods.js';

export const APPS = 'demo-apps';
export const OPTED_OUT = 'demo-legacy';

/** Services by name, each with the NIC the Routes pin it to before the edit. */
export const SERVICES = [
  { namespace: 'default', name: 'nginx', dev: 'eth1', route: 'demo' },
  { namespace: 'kube-system', name: 'nginx1', dev: 'eth0', route: 'demo' },
  { namespace: 'default', name: 'api', dev: 'eth0', route: 'demo-ovn' },
] as const;

/** The design document's demo Route, unchanged (mission.md), with nginx on `nginxDev`. */
export function demoRoute(nginxDev: 'eth0' | 'eth1'): Record<string, unknown> {
  return {
    route: [
      { dst: '172.16.10.0/24', dev: 'eth1' },
      { dst: '172.16.11.0/24', dev: 'eth0' },
    ],
    svc: [
      { namespace: 'default', name: 'nginx', dev: nginxDev },
      { namespace: 'kube-system', name: 'nginx1', dev: 'eth0' },
    ],
    feature_gate: {},
  };
}

/** The target table's other rows: a CIDR to Calico, a CIDR via the OVN gateway, a Service to Calico. */
export const OVN_ROUTE = {
  route: [
    { dst: '192.168.2.0/24', dev: 'eth0' },
    { dst: '172.16.20.0/24', dev: 'eth1', via: NODE_NETS.eth1.gateway },
  ],
  svc: [{ namespace: 'default', name: 'api', dev: 'eth0' }],
};

/** Destination ranges the pods may send to: the host drops them (blackhole) while the demo runs. */
export const DEMO_RANGES = ['172.16.10.0/24', '172.16.11.0/24', '172.16.20.0/24', '192.168.2.0/24'];
/** The control plane's Service ClusterIP range (test/cluster/controlplane.ts): blackholed too. */
export const SERVICE_RANGE = '10.96.0.0/16';

function must(res: { status: number; body?: any }, ok: number[], what: string): any {
  if (!ok.includes(res.status))
    throw new Error(`${what}: HTTP ${res.status}: ${res.body?.message ?? JSON.stringify(res.body ?? '').slice(0, 300)}`);
  return res.body;
}

export async function applyRoute(kc: KubeConfig, name: string, spec: Record<string, unknown>): Promise<void> {
  must(
    await kubeRequest(kc, 'PATCH', `/apis/k8s.ovn.org/v1/routes/${name}`, {
      query: { fieldManager: 'ovnkube-route-demo', force: 'true' },
      contentType: 'application/apply-patch+yaml',
      body: { apiVersion: 'k8s.ovn.org/v1', kind: 'Route', metadata: { name }, spec },
    }),
    [200, 201],
    `apply Route ${name}`,
  );
}

/** Create the Services; resolves with their ClusterIPs by `namespace/name`. */
export async function createServices(kc: KubeConfig): Promise<Record<string, string>> {
  const ips: Record<string, string> = {};
  for (const s of SERVICES) {
    const body = must(
      await kubeRequest(kc, 'POST', `/api/v1/namespaces/${s.namespace}/services`, {
        body: {
          metadata: { name: s.name, labels: { 'app.kubernetes.io/part-of': 'ovnkube-route-demo' } },
          spec: { ports: [{ port: 80 }] },
        },
      }),
      [201],
      `Service ${s.namespace}/${s.name}`,
    );
    ips[`${s.namespace}/${s.name}`] = String(body.spec.clusterIP);
  }
  return ips;
}

export async function createNamespaces(kc: KubeConfig): Promise<void> {
  must(await kubeRequest(kc, 'POST', '/api/v1/namespaces', { body: { metadata: { name: APPS } } }), [201], `namespace ${APPS}`);
  must(
    await kubeRequest(kc, 'POST', '/api/v1/namespaces', {
      body: { metadata: { name: OPTED_OUT, labels: { [INJECT_LABEL]: 'disabled' } } },
    }),
    [201],
    `namespace ${OPTED_OUT} (opted out)`,
  );
}

export interface DemoPod {
  namespace: string;
  name: string;
  kind: string;
  pod: Pod;
}

/**
 * The pods: two replicas of a Deployment-like set (generateName, shared labels: the webhook
 * sees no name at admission), a pod of the opted-out namespace, a hostNetwork pod, and a
 * pod without eth1 (no Multus network selected).
 */
export async function createPods(kc: KubeConfig, node: string): Promise<DemoPod[]> {
  const specs: Array<{ ns: string; kind: string; body: Pod }> = [];
  for (let i = 0; i < 2; i++) {
    const b = nodePod('', node, { labels: { app: 'web' } });
    b.metadata = { generateName: 'web-', labels: { app: 'web' }, annotations: b.metadata!.annotations! };
    specs.push({ ns: APPS, kind: 'replica (two NICs)', body: b });
  }
  specs.push({ ns: OPTED_OUT, kind: 'opted-out namespace', body: nodePod('legacy', node) });
  specs.push({ ns: APPS, kind: 'hostNetwork', body: nodePod('host-agent', node, { hostNetwork: true }) });
  specs.push({ ns: APPS, kind: 'no eth1', body: nodePod('solo', node, { eth1: false }) });
  const out: DemoPod[] = [];
  for (const s of specs) {
    const pod = must(
      await kubeRequest(kc, 'POST', `/api/v1/namespaces/${s.ns}/pods`, { body: s.body }),
      [201],
      `pod in ${s.ns} (${s.kind})`,
    ) as Pod;
    out.push({ namespace: s.ns, name: pod.metadata!.name!, kind: s.kind, pod });
  }
  return out;
}
