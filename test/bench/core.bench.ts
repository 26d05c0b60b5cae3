/**
 * Core benchmarks: plan resolution and the signed codec, against same-run baselines.
 * - resolve: one pod against 50 Routes (selectors, 20 Services) vs. a JSON round trip of the
 *   same pod (what any admission handler pays just to read the request).
 * - encode+sign / decode+verify a 64-route plan vs. a bare HMAC-SHA256 over the same bytes.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { decodePlan, encodePlan, planKeyFromSecret } from '../../core/plan-codec.js';
import { resolvePlan, type ResolveContext } from '../../core/resolve.js';
import type { Plan, Pod, Route, Service } from '../../core/types.js';
import { ratioRow, time, type BenchRow } from './measure.js';

export function runCoreBench(): BenchRow[] {
  const services = new Map<string, Service>();
  for (let i = 0; i < 20; i++)
    services.set(`default/svc-${i}`, {
      metadata: { namespace: 'default', name: `svc-${i}` },
      spec: { clusterIP: `10.86.0.${i + 1}`, clusterIPs: [`10.86.0.${i + 1}`] },
    });
  const routes: Route[] = Array.from({ length: 50 }, (_, r) => ({
    metadata: { name: `route-${r}` },
    spec: {
      priority: r % 3,
      route: Array.from({ length: 4 }, (_, k) => ({ dst: `172.${16 + (r % 8)}.${k * 16}.0/20`, dev: r % 2 ? 'eth1' : 'eth0' })),
      svc: [{ namespace: 'default', name: `svc-${r % 20}`, dev: 'eth1' }],
      include: [
        { namespaces: ['default', 'prod-*'], podSelector: { matchLabels: { app: 'web' } } },
        { owners: [{ kind: 'Deployment', name: `web-${r}` }] },
      ],
      exclude: [{ namespaces: ['kube-system'] }],
    },
  }));
  const pod: Pod = {
    metadata: {
      namespace: 'default',
      name: 'web-7d4f-abcde',
      labels: { app: 'web', 'pod-template-hash': '7d4f' },
      ownerReferences: [{ kind: 'ReplicaSet', name: 'web-7d4f', controller: true }],
    },
    spec: { containers: [{ name: 'web', image: 'nginx' }] },
  };
  const ctx: ResolveContext = {
    routes,
    namespace: { metadata: { name: 'default', labels: {} } },
    service: (ns, n) => services.get(`${ns}/${n}`),
    owners: [
      { kind: 'ReplicaSet', namespace: 'default', name: 'web-7d4f' },
      { kind: 'Deployment', namespace: 'default', name: 'web' },
    ],
    mode: 'default',
  };
  const podJson = JSON.stringify(pod);
  const rows: BenchRow[] = [];
  const base = time('JSON round trip of the pod', 20_000, () => JSON.parse(podJson));
  const res = time('resolvePlan, 50 Routes', 2_000, () => resolvePlan(pod, ctx));
  rows.push(ratioRow('core: resolve one pod against 50 Routes', res, base));

  const key = planKeyFromSecret(randomBytes(32));
  const plan: Plan = { v: 1, routes: Array.from({ length: 64 }, (_, i) => ({ dst: `10.${i}.0.0/16`, dev: 'eth1', via: '10.124.2.1' })) };
  const value = encodePlan(plan, { key, namespace: 'default' });
  const hmacBase = time('bare HMAC-SHA256 of the value', 20_000, () => createHmac('sha256', key.secret).update(value).digest());
  rows.push(
    ratioRow(
      'core: encode+sign a 64-route plan',
      time('encodePlan', 5_000, () => encodePlan(plan, { key, namespace: 'default' })),
      hmacBase,
    ),
  );
  rows.push(
    ratioRow(
      'core: decode+verify a 64-route plan',
      time('decodePlan', 5_000, () => decodePlan(value, { namespace: 'default', keys: [key], requireSignature: true })),
      hmacBase,
    ),
  );
  return rows;
}
