/**
 * A deterministic cluster for the webhook's HTTPS benchmark (test/bench/webhook.bench.ts):
 * N Routes of the mix a cluster with many teams would have, the Namespaces, Services and
 * owner objects they refer to, and pod CREATE AdmissionReviews as the API server sends them
 * (generateName, no name and no uid in the pod, the ReplicaSet controller as the user).
 *
 * The Route mix, so that what one pod is resolved against stays about the same size as the
 * cluster grows (a plan of 5-15 routes at 50 Routes and at 500) while the Routes to look at grow:
 * - route-0000..0002: cluster-wide (no include), excluding kube-system and dev namespaces:
 *   CIDRs via the OVN gateway and a Service
 * - route-0003, 0004: podSelector only (tier=frontend, any namespace), a default route
 * - every 10th after those: namespaceSelector on a team label (one team per 10 namespaces, at
 *   least 8) with a podSelector of matchExpressions: a CIDR and a Service
 * - the rest: naming one namespace, with a podSelector, an owner or a pod-name glob, 1-3 CIDRs
 *   and 1-2 Services (some in other namespaces, some that do not exist), priorities 0-2
 * CIDRs overlap between Routes (some with different devices), so conflicts are resolved too.
 */
import type { KubeObject, Namespace, Route, Service } from '../../core/types.js';
import type { CacheObjects } from '../../webhook/caches/caches.js';

/** Namespaces of a world of n Routes: one per two Routes, at least 10. */
export const namespaceCount = (n: number): number => Math.max(10, Math.floor(n / 2));

const nsName = (k: number): string => `team-${k}`;
/** Teams (the namespaceSelector label): one per 10 namespaces, at least 8. */
const teamCount = (nsCount: number): number => Math.max(8, Math.ceil(nsCount / 10));
const ENVS = ['prod', 'staging', 'dev'] as const;
const APPS = ['web', 'api', 'worker'] as const;

/** The namespaces, Services (web, api, db, cache in each), ReplicaSets and Jobs. */
function namespacedObjects(nsCount: number): Required<Omit<CacheObjects, 'routes'>> {
  const namespaces: Namespace[] = [];
  const services: Service[] = [];
  const replicaSets: KubeObject[] = [];
  const jobs: KubeObject[] = [];
  for (const name of ['default', 'kube-system']) {
    namespaces.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'kubernetes.io/metadata.name': name } } });
  }
  for (let k = 0; k < nsCount; k++) {
    const ns = nsName(k);
    const labels: Record<string, string> = { 'kubernetes.io/metadata.name': ns, team: `t${k % teamCount(nsCount)}`, env: ENVS[k % 3]! };
    if (k % 23 === 22) labels['routes.k8s.ovn.org/inject'] = 'disabled';
    namespaces.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels, resourceVersion: String(100 + k) } });
    for (const [j, svc] of ['web', 'api', 'db', 'cache'].entries()) {
      const ip = `10.96.${k % 250}.${10 + j + 4 * Math.floor(k / 250)}`;
      services.push({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: svc, namespace: ns, resourceVersion: String(10_000 + 4 * k + j) },
        spec: { type: 'ClusterIP', clusterIP: ip, clusterIPs: [ip], ipFamilies: ['IPv4'] },
      });
    }
    for (const app of APPS) {
      replicaSets.push({
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        metadata: {
          name: `${app}-5f7c${k % 10}b9d`,
          namespace: ns,
          uid: `rs-${k}-${app}`,
          ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: app, uid: `deploy-${k}-${app}`, controller: true }],
        },
      });
    }
    jobs.push({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: {
        name: 'nightly-28901440',
        namespace: ns,
        ownerReferences: [{ apiVersion: 'batch/v1', kind: 'CronJob', name: 'nightly', uid: `cron-${k}`, controller: true }],
      },
    });
  }
  return { namespaces, services, replicaSets, jobs };
}

/** Route i of a world with nsCount namespaces. */
function routeAt(i: number, nsCount: number): Route {
  const dev = i % 2 ? 'eth1' : 'eth0';
  const metadata = { name: `route-${String(i).padStart(4, '0')}`, resourceVersion: String(1000 + i), generation: 1 };
  const cidr = (j: number) => `172.${16 + (i % 16)}.${(i * 3 + j) % 256}.0/24`;
  if (i < 3) {
    return {
      metadata,
      spec: {
        priority: 0,
        route: [
          { dst: `10.124.${i}.0/24`, dev: 'eth1', via: '10.124.2.1' },
          { dst: '192.168.2.0/24', dev: 'eth0' },
        ],
        svc: [{ namespace: 'kube-system', name: 'dns', dev: 'eth0' }],
        exclude: [{ namespaces: ['kube-system'] }, { namespaceSelector: { matchLabels: { env: 'dev' } } }],
      },
    };
  }
  if (i < 5) {
    return {
      metadata,
      spec: {
        priority: 0,
        include: [{ podSelector: { matchLabels: { tier: 'frontend' } } }],
        ...(i === 3 ? { defaultRoute: { dev: 'eth1', via: 'gateway' } } : {}),
        route: [{ dst: `10.200.${i}.0/24`, dev: 'eth1' }],
      },
    };
  }
  if (i % 10 === 0) {
    return {
      metadata,
      spec: {
        priority: 1,
        include: [
          {
            namespaceSelector: { matchLabels: { team: `t${(i / 10) % teamCount(nsCount)}` } },
            podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['web', 'api'] }] },
          },
        ],
        route: [{ dst: cidr(0), dev }],
        svc: [{ namespace: nsName(i % nsCount), name: 'db', dev: 'eth1' }],
      },
    };
  }
  const k = i % nsCount;
  const ns = nsName(k);
  const term =
    i % 3 === 0
      ? { namespaces: [ns], podSelector: { matchLabels: { app: APPS[i % 3]! } } }
      : i % 3 === 1
        ? { namespaces: [ns], owners: [{ kind: 'Deployment' as const, name: APPS[i % 3]! }] }
        : { pods: [`${ns}/${APPS[i % 3]!}-*`] };
  return {
    metadata,
    spec: {
      priority: i % 3,
      include: [term],
      ...(i % 7 === 0 ? { exclude: [{ podSelector: { matchLabels: { 'routes.k8s.ovn.org/skip': 'true' } } }] } : {}),
      route: Array.from({ length: 1 + (i % 3) }, (_, j) => ({ dst: cidr(j), dev: j % 2 ? 'eth0' : dev })),
      svc: [
        { namespace: ns, name: 'api', dev: 'eth1' },
        ...(i % 2 ? [{ namespace: nsName((k + 1) % nsCount), name: i % 5 ? 'web' : 'gone', dev: 'eth0' }] : []),
      ],
    },
  };
}

/** Everything the caches hold for a world of n Routes. */
export function benchWorld(n: number): Required<CacheObjects> {
  const nsCount = namespaceCount(n);
  const objects = namespacedObjects(nsCount);
  const dns: Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'dns', namespace: 'kube-system', resourceVersion: '9' },
    spec: { type: 'ClusterIP', clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'] },
  };
  return { ...objects, services: [dns, ...objects.services], routes: Array.from({ length: n }, (_, i) => routeAt(i, nsCount)) };
}

/**
 * Pod CREATE reviews as the API server sends them: `count` of them, cycling through the
 * namespaces of a world of n Routes and through Deployment pods (web, api, worker), CronJob
 * pods and bare pods, with a readiness-gate label on some. Each review has its own uid.
 * With `distinct`, each pod also has a label of its own (`bench-pod: <r>`), so no two pods
 * have the same resolution inputs (the webhook's plan memo never answers twice).
 */
export function podReviews(n: number, count: number, distinct = false): Buffer[] {
  const nsCount = namespaceCount(n);
  const out: Buffer[] = [];
  for (let r = 0; r < count; r++) {
    const k = (r * 7) % nsCount;
    const ns = nsName(k);
    const shape = r % 5;
    const app = APPS[r % 3]!;
    const rs = `${app}-5f7c${k % 10}b9d`;
    const owner =
      shape < 3
        ? { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: rs, uid: `rs-${k}-${app}`, controller: true, blockOwnerDeletion: true }
        : shape === 3
          ? { apiVersion: 'batch/v1', kind: 'Job', name: 'nightly-28901440', uid: `job-${k}`, controller: true, blockOwnerDeletion: true }
          : undefined;
    const labels: Record<string, string> =
      shape < 3
        ? { app, 'pod-template-hash': `5f7c${k % 10}b9d`, ...(app === 'web' ? { tier: 'frontend' } : {}) }
        : shape === 3
          ? { 'batch.kubernetes.io/job-name': 'nightly-28901440', 'job-name': 'nightly-28901440' }
          : { app: 'debug' };
    if (r % 4 === 0) labels['routes.k8s.ovn.org/readiness-gate'] = 'true';
    if (distinct) labels['bench-pod'] = String(r);
    const generateName = shape < 3 ? `${rs}-` : shape === 3 ? 'nightly-28901440-' : 'debug-';
    const review = {
      kind: 'AdmissionReview',
      apiVersion: 'admission.k8s.io/v1',
      request: {
        uid: `${(0x8c2f7a51 + r).toString(16).padStart(8, '0')}-1b7e-4f0e-9d3c-6a1b2c3d4e5f`,
        kind: { group: '', version: 'v1', kind: 'Pod' },
        resource: { group: '', version: 'v1', resource: 'pods' },
        requestKind: { group: '', version: 'v1', kind: 'Pod' },
        requestResource: { group: '', version: 'v1', resource: 'pods' },
        namespace: ns,
        operation: 'CREATE',
        userInfo: {
          username: 'system:serviceaccount:kube-system:replicaset-controller',
          uid: 'e1c0d0a4-7d52-4a52-b0c8-51d7c1f7a6b2',
          groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
        },
        object: {
          kind: 'Pod',
          apiVersion: 'v1',
          metadata: {
            generateName,
            namespace: ns,
            creationTimestamp: null,
            labels,
            ...(owner ? { ownerReferences: [owner] } : {}),
          },
          spec: {
            volumes: [
              {
                name: 'kube-api-access-7xk2p',
                projected: {
                  sources: [
                    { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
                    { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
                    { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
                  ],
                  defaultMode: 420,
                },
              },
            ],
            containers: [
              {
                name: app,
                image: `registry.example.com/${ns}/${app}:1.27.3`,
                ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
                env: [
                  { name: 'LOG_LEVEL', value: 'info' },
                  { name: 'POD_IP', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'status.podIP' } } },
                ],
                resources: { limits: { cpu: '500m', memory: '256Mi' }, requests: { cpu: '100m', memory: '128Mi' } },
                volumeMounts: [
                  { name: 'kube-api-access-7xk2p', readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' },
                ],
                readinessProbe: { httpGet: { path: '/healthz', port: 8080, scheme: 'HTTP' }, periodSeconds: 10 },
                terminationMessagePath: '/dev/termination-log',
                terminationMessagePolicy: 'File',
                imagePullPolicy: 'IfNotPresent',
              },
            ],
            restartPolicy: shape === 3 ? 'OnFailure' : 'Always',
            terminationGracePeriodSeconds: 30,
            dnsPolicy: 'ClusterFirst',
            serviceAccountName: 'default',
            serviceAccount: 'default',
            securityContext: {},
            schedulerName: 'default-scheduler',
            tolerations: [
              { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
              { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
            ],
            priority: 0,
            enableServiceLinks: true,
            preemptionPolicy: 'PreemptLowerPriority',
          },
          status: {},
        },
        oldObject: null,
        dryRun: false,
        options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
      },
    };
    out.push(Buffer.from(JSON.stringify(review)));
  }
  return out;
}
