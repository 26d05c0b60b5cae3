/**
 * Webhook plan resolution over many Routes: desiredPlan (the webhook's and the controller's
 * call, with the namespace index of webhook/plan.ts) for a pod among 50 and 500 Routes, each
 * Route naming its namespace (plus 5 cluster-wide ones), against resolving the same pod over
 * every Route without the index (the same resolution, then the same encode+sign), same run.
 * Exported as run() for test/bench/run.ts; rows also go to test/bench/results/webhook.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodePlan, planKeyFromSecret } from '../../core/plan-codec.js';
import { resolvePlan } from '../../core/resolve.js';
import type { Pod, Route } from '../../core/types.js';
import { cachesFromObjects } from '../../webhook/caches/caches.js';
import { desiredPlan, resolveContext } from '../../webhook/plan.js';
import { ratioRow, time, type BenchRow } from './measure.js';

const here = dirname(fileURLToPath(import.meta.url));

export async function run(): Promise<BenchRow[]> {
  const key = planKeyFromSecret(Buffer.alloc(32, 7));
  const rows: BenchRow[] = [];
  const json: unknown[] = [];
  const perOp: Record<number, number> = {};
  for (const n of [50, 500]) {
    const routes: Route[] = Array.from({ length: n }, (_, i) => ({
      metadata: { name: `r${i}`, resourceVersion: '1', generation: 1 },
      spec: {
        priority: i % 3,
        include:
          i < 5
            ? [{ podSelector: { matchLabels: { app: 'web' } } }]
            : [{ namespaces: [`team-${i}`], podSelector: { matchLabels: { app: 'web' } } }],
        route: [{ dst: `10.${i % 200}.${Math.floor(i / 200)}.0/24`, dev: i % 2 ? 'eth1' : 'eth0' }],
      },
    }));
    const namespaces = Array.from({ length: n }, (_, i) => ({ metadata: { name: `team-${i}` } }));
    const caches = cachesFromObjects({ routes, namespaces });
    const pod: Pod = { metadata: { namespace: 'team-7', name: 'web-1', labels: { app: 'web' } }, spec: {} };
    const full = time(`resolve over all ${n} Routes + sign`, 2000, () => {
      const r = resolvePlan(pod, resolveContext(pod, caches, 'default'));
      return r.kind === 'plan' ? encodePlan(r.plan, { key, namespace: 'team-7' }) : r;
    });
    const indexed = time(`desiredPlan (namespace index), ${n} Routes`, 2000, () =>
      desiredPlan(pod, caches, { mode: 'default', keys: [key] }),
    );
    perOp[n] = indexed.nsPerOp;
    rows.push(ratioRow(`webhook: plan of one pod among ${n} Routes`, indexed, full));
    json.push({
      bench: `webhook desiredPlan, ${n} Routes`,
      unit: 'ns/op',
      value: Math.round(indexed.nsPerOp),
      ratio: +(indexed.nsPerOp / full.nsPerOp).toFixed(2),
      baseline: `resolvePlan over all ${n} Routes + encodePlan, same run`,
      baselineValue: Math.round(full.nsPerOp),
    });
  }
  const scale = perOp[500]! / perOp[50]!;
  rows.push({
    bench: 'webhook: plan of one pod, 500 vs 50 Routes',
    value: `500 Routes: ${(perOp[500]! / 1000).toFixed(1)} µs/op`,
    baseline: `50 Routes: ${(perOp[50]! / 1000).toFixed(1)} µs/op`,
    ratio: `${scale.toFixed(2)}x`,
  });
  json.push({
    bench: 'webhook desiredPlan scaling',
    unit: 'ns/op',
    value: Math.round(perOp[500]!),
    ratio: +scale.toFixed(2),
    baseline: 'desiredPlan with 50 Routes, same run',
    baselineValue: Math.round(perOp[50]!),
  });
  const resDir = join(here, '..', '..', '..', 'test', 'bench', 'results');
  mkdirSync(resDir, { recursive: true });
  writeFileSync(join(resDir, 'webhook.json'), JSON.stringify({ date: new Date().toISOString(), rows: json }, null, 2) + '\n');
  return rows;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const x of await run()) console.log(`${x.bench}\t${x.ratio}\t${x.value}\t${x.baseline}`);
}
