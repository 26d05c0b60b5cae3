/**
 * One server of the webhook's HTTPS benchmark, run as its own process (forked by
 * test/bench/webhook.bench.ts with an IPC channel), so the load generator and the server
 * under test do not share a JavaScript thread:
 *
 *   webhook-server.js webhook ROUTES CERTDIR   the admission app as webhook/main.ts wires it
 *       (buildApp with the production logger at info level, prom-client default metrics and
 *       the webhook's metrics, a plan key, the controller as trusted writer), its caches fed
 *       directly with the objects of benchWorld(ROUTES) instead of informers
 *   webhook-server.js floor 0 CERTDIR FILE     the floor: bare fastify over HTTPS with the same
 *       serving pair, parsing the same AdmissionReviews and answering each with the constant
 *       allowed response in FILE (a response the webhook gave, so the bytes sent back are the
 *       same size), only the uid echoed
 *
 * Messages: the child sends {port} once listening; the parent sends 'cpu' (answered with
 * {cpu: process.cpuUsage()}) and 'stop' (closes the server and exits, which also writes a
 * --cpu-prof profile when the child runs with one).
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import Fastify from 'fastify';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { parsePlanKey } from '../../core/plan-codec.js';
import { createWebhookMetrics } from '../../webhook/admission/metrics.js';
import { buildApp } from '../../webhook/admission/server.js';
import { cachesFromObjects } from '../../webhook/caches/caches.js';
import { createLogger } from '../../platform/log.js';
import { benchWorld } from './webhook-world.js';

interface Listening {
  listen(o: { host: string; port: number }): Promise<string>;
  close(): Promise<void>;
  server: { address(): AddressInfo | string | null };
}

function webhookApp(routes: number, certDir: string): Listening {
  const caches = cachesFromObjects(benchWorld(routes));
  const keys = [parsePlanKey(readFileSync(join(certDir, 'plan.key'), 'utf8'))];
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const metrics = createWebhookMetrics(registry, caches);
  return buildApp({
    admit: { caches, mode: 'default', keys, trustedUsers: ['system:serviceaccount:ovnkube-route:ovnkube-route-webhook'] },
    readiness: () => ({ ready: caches.isSynced(), detail: 'caches synced' }),
    registry,
    metrics,
    https: { cert: readFileSync(join(certDir, 'tls.crt')), key: readFileSync(join(certDir, 'tls.key')) },
    // As in production: JSON lines on stderr at info (the parent sends them to a file).
    logger: createLogger(process.stderr, 'info'),
  }) as unknown as Listening;
}

function floorApp(certDir: string, responseFile: string): Listening {
  const constant = JSON.parse(readFileSync(responseFile, 'utf8')) as { response: Record<string, unknown> };
  const app = Fastify({
    logger: false,
    bodyLimit: 7 * 1024 * 1024,
    https: { cert: readFileSync(join(certDir, 'tls.crt')), key: readFileSync(join(certDir, 'tls.key')), minVersion: 'TLSv1.2' },
  });
  app.post('/mutate', async (req) => {
    const uid = (req.body as { request?: { uid?: string } }).request?.uid;
    return { ...constant, response: { ...constant.response, uid } };
  });
  return app as unknown as Listening;
}

const [kind, routes, certDir, responseFile] = process.argv.slice(2);
if (!process.send || !certDir || (kind !== 'webhook' && kind !== 'floor') || (kind === 'floor' && !responseFile)) {
  console.error('usage (forked with IPC): webhook-server.js webhook ROUTES CERTDIR | floor 0 CERTDIR RESPONSEFILE');
  process.exit(2);
}
const app = kind === 'webhook' ? webhookApp(Number(routes), certDir) : floorApp(certDir, responseFile!);
await app.listen({ host: '127.0.0.1', port: 0 });
process.on('message', (m) => {
  if (m === 'cpu') process.send!({ cpu: process.cpuUsage() });
  if (m === 'stop') void app.close().then(() => process.exit(0));
});
process.on('disconnect', () => process.exit(0));
process.send({ port: (app.server.address() as AddressInfo).port });
