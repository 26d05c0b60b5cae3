// The webhook over real HTTPS on 127.0.0.1, port 0, with the CA, serving pair and plan key
// made by certs/gen.sh: name verification against the Service DNS names, TLS >= 1.2, bad
// input on the wire (malformed JSON, wrong kind, missing uid, v1beta1), oversized bodies,
// slow clients, and a serving-cert reload that keeps an open keep-alive connection.
import { once } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls, { type TLSSocket } from 'node:tls';
import t, { type Test } from 'tap';
import { Registry } from 'prom-client';
import { parsePlanKey } from '../../core/plan-codec.js';
import { buildApp } from '../../webhook/admission/server.js';
import { createWebhookMetrics } from '../../webhook/admission/metrics.js';
import type { AdmissionReview } from '../../webhook/admission/review.js';
import { loadServingCert, watchServingCert, type ServingCert } from '../../webhook/admission/tls.js';
import { clusterCaches, genCerts, loadReview, patchOps } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'ovnkube-route-webhook-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
await genCerts(dir, ['--san', 'IP:127.0.0.1']);
const certFile = join(dir, 'tls.crt');
const keyFile = join(dir, 'tls.key');
const ca = readFileSync(join(dir, 'ca.crt'));
const keys = [parsePlanKey(readFileSync(join(dir, 'plan.key'), 'utf8'))];

const registry = new Registry();
const caches = clusterCaches();
const metrics = createWebhookMetrics(registry, caches);
const serving = await loadServingCert(certFile, keyFile);
const app = buildApp({
  admit: { caches, mode: 'default', keys },
  readiness: () => ({ ready: caches.isSynced(), detail: 'caches synced' }),
  registry,
  metrics,
  https: { cert: serving.cert, key: serving.key },
  // Short, so the slow-client tests end soon; the production defaults are in APP_DEFAULTS.
  requestTimeoutMs: 2000,
  headersTimeoutMs: 1000,
  connectionsCheckingIntervalMs: 100,
});
await app.listen({ host: '127.0.0.1', port: 0 });
const port = (app.server.address() as AddressInfo).port;
t.teardown(() => app.close());

const reloads: ServingCert[] = [];
const reloadErrors: Error[] = [];
let onReload: (() => void) | undefined;
let onReloadError: (() => void) | undefined;
const watcher = watchServingCert({
  server: app.server as unknown as { setSecureContext(o: object): void },
  certFile,
  keyFile,
  current: serving,
  pollIntervalMs: 500,
  onReload: (c) => {
    reloads.push(c);
    metrics.observeCertReload(true);
    onReload?.();
  },
  onError: (e) => {
    reloadErrors.push(e);
    metrics.observeCertReload(false);
    onReloadError?.();
  },
});
t.teardown(() => watcher.close());

interface Res {
  status: number;
  body: string;
  socket: TLSSocket;
  reused: boolean;
  protocol: string | null;
  peer: string;
}
function request(opts: {
  path?: string;
  method?: string;
  body?: string | Buffer;
  headers?: Record<string, string>;
  agent?: https.Agent;
  servername?: string;
}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: opts.path ?? '/mutate',
        method: opts.method ?? 'POST',
        ca,
        agent: opts.agent ?? false,
        headers: { 'content-type': 'application/json', ...opts.headers },
        ...(opts.servername ? { servername: opts.servername } : {}),
      },
      (res) => {
        // Read the socket now: a kept-alive socket is detached from the response at its end.
        const socket = res.socket as TLSSocket;
        const protocol = socket.getProtocol();
        const peer = socket.getPeerCertificate().fingerprint256;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, socket, reused: req.reusedSocket, protocol, peer }));
      },
    );
    // The server may answer (413) and close before the whole body is written.
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE' && e.code !== 'ECONNRESET') reject(e);
    });
    req.end(opts.body);
  });
}
const review = () => JSON.stringify(loadReview('review-create-replicaset-pod.json'));
async function admitsNormally(t: Test, what: string): Promise<void> {
  const res = await request({ body: review() });
  t.equal(res.status, 200, `${what}: the next request is served`);
  t.ok(patchOps((JSON.parse(res.body) as AdmissionReview).response).length === 1, `${what}: and patched`);
}

t.test("admission over TLS, verified against the script's CA", async (t) => {
  const res = await request({ body: review() });
  t.equal(res.status, 200);
  t.ok(['TLSv1.2', 'TLSv1.3'].includes(res.protocol ?? ''), `negotiated ${res.protocol}`);
  const answer = JSON.parse(res.body) as AdmissionReview;
  t.equal(answer.response?.uid, '8c2f7a51-1b7e-4f0e-9d3c-6a1b2c3d4e5f');
  t.equal(patchOps(answer.response)[0]?.path, '/metadata/annotations');
  for (const name of ['ovnkube-route-webhook.ovnkube-route.svc', 'ovnkube-route-webhook.ovnkube-route.svc.cluster.local']) {
    t.equal((await request({ path: '/healthz', method: 'GET', servername: name })).status, 200, `the certificate is valid for ${name}`);
  }
  await t.rejects(
    request({ path: '/healthz', method: 'GET', servername: 'other.ovnkube-route.svc' }),
    { code: 'ERR_TLS_CERT_ALTNAME_INVALID' },
    'and verification is real: another name is refused',
  );
});

t.test('TLS older than 1.2 is refused by the server', async (t) => {
  const s = tls.connect({ host: '127.0.0.1', port, ca, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
  const [err] = (await once(s, 'error')) as [NodeJS.ErrnoException];
  t.equal(err.code, 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'the server answers with a protocol_version alert');
});

t.test('bad input on the wire is a 400 with a message, and the server keeps serving', async (t) => {
  const base = loadReview('review-create-replicaset-pod.json');
  const cases: [string, string, string][] = [
    ['malformed JSON', '{"kind":"AdmissionReview","request":{"uid":', 'FST_ERR_CTP_INVALID_JSON_BODY'],
    ['the wrong kind', JSON.stringify({ ...base, kind: 'AdmissionRequest' }), 'OVNKR_REVIEW_WRONG_KIND'],
    ['a missing uid', JSON.stringify({ ...base, request: { ...base.request, uid: undefined } }), 'OVNKR_REVIEW_NO_UID'],
    ['v1beta1', JSON.stringify({ ...base, apiVersion: 'admission.k8s.io/v1beta1' }), 'OVNKR_REVIEW_V1BETA1'],
    ['an empty body', '', 'FST_ERR_CTP_EMPTY_JSON_BODY'],
  ];
  for (const [what, body, code] of cases) {
    const res = await request({ body });
    t.equal(res.status, 400, `${what}: 400`);
    const parsed = JSON.parse(res.body) as { code: string; message: string };
    t.equal(parsed.code, code, `${what}: code ${code}`);
    t.ok(parsed.message.length > 10, `${what}: with a message (${parsed.message})`);
    await admitsNormally(t, what);
  }
});

t.test('oversized bodies get 413 and the server keeps serving', async (t) => {
  // Just past the 7 MiB limit: a real review with a huge annotation.
  const big = loadReview('review-create-replicaset-pod.json');
  (big.request.object as { metadata: { annotations?: Record<string, string> } }).metadata.annotations = {
    big: 'x'.repeat(7 * 1024 * 1024 + 1),
  };
  const body = JSON.stringify(big);
  const sized = await request({ body });
  t.equal(sized.status, 413, 'with Content-Length: 413');
  t.equal((JSON.parse(sized.body) as { code: string }).code, 'FST_ERR_CTP_BODY_TOO_LARGE');
  await admitsNormally(t, 'after a sized oversized body');
  const chunked = await request({ body, headers: { 'transfer-encoding': 'chunked' } });
  t.equal(chunked.status, 413, 'chunked, without Content-Length: 413 too');
  await admitsNormally(t, 'after a chunked oversized body');
});

/**
 * A raw TLS client that sends `head` and then trickles a byte every 50 ms until the server
 * answers or closes. `closed` resolves on 'close' whatever came before it: a drip already on
 * its way when the server closed makes the server's kernel answer with a reset, an
 * ECONNRESET here after the answer was read (events.once would reject on that 'error').
 */
async function trickler(head: string, drip: string): Promise<{ data: () => string; closed: Promise<unknown> }> {
  const s = tls.connect({ host: '127.0.0.1', port, ca });
  await once(s, 'secureConnect');
  let data = '';
  s.setEncoding('utf8');
  const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
  const timer = setInterval(() => {
    if (!s.destroyed) s.write(drip);
  }, 50);
  const stop = (): void => clearInterval(timer);
  s.on('data', (d: string) => {
    data += d;
    stop(); // answered: nothing more to send
  });
  s.on('error', stop);
  void closed.then(stop);
  s.write(head);
  return { data: () => data, closed };
}

t.test('slow clients do not block others and are cut off by the request timeouts', async (t) => {
  const slowBodies = await Promise.all(
    Array.from({ length: 10 }, () =>
      trickler('POST /mutate HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"kind":', ' '),
    ),
  );
  const slowHeaders = await Promise.all(Array.from({ length: 10 }, () => trickler('POST /mutate HTTP/1.1\r\nHost: webhook\r\n', 'X')));
  for (let i = 0; i < 3; i++) await admitsNormally(t, `with 20 slow clients connected (${i + 1})`);
  t.ok(
    [...slowBodies, ...slowHeaders].every((s) => s.data() === ''),
    'the slow requests were still pending meanwhile',
  );
  await Promise.all([...slowBodies, ...slowHeaders].map((s) => s.closed));
  t.ok(
    slowBodies.every((s) => s.data().startsWith('HTTP/1.1 408')),
    'a body that never completes: 408 and closed (requestTimeout)',
  );
  t.ok(
    slowHeaders.every((s) => s.data().startsWith('HTTP/1.1 408')),
    'headers that never complete: 408 and closed (headersTimeout)',
  );
  await admitsNormally(t, 'after the slow clients were cut off');
});

t.test('/healthz, /readyz and /metrics over HTTPS', async (t) => {
  t.equal((await request({ path: '/healthz', method: 'GET' })).status, 200);
  const ready = await request({ path: '/readyz', method: 'GET' });
  t.equal(ready.status, 200);
  t.match(ready.body, /ok: caches synced/);
  const m = await request({ path: '/metrics', method: 'GET' });
  t.match(m.body, /ovnkube_route_webhook_requests_total\{outcome="too-large"\} 2/, 'both 413s counted');
  t.match(m.body, /ovnkube_route_webhook_requests_total\{outcome="bad-request"\} 5/, 'the five 400s counted');
});

t.test('a new serving pair is loaded without dropping an open keep-alive connection', async (t) => {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca });
  t.teardown(() => agent.destroy());
  const first = await request({ path: '/healthz', method: 'GET', agent });
  const oldFp = first.peer;
  t.equal(oldFp, serving.fingerprint, 'the first connection sees the original certificate');

  const reloaded = new Promise<void>((resolve) => {
    onReload = resolve;
  });
  await genCerts(dir, ['--san', 'IP:127.0.0.1']); // same CA, new serving key and certificate
  await reloaded;
  const newFp = new X509Certificate(readFileSync(certFile)).fingerprint256;
  t.not(newFp, oldFp, 'the script made a new certificate');
  t.equal(reloads.at(-1)?.fingerprint, newFp, 'the watcher loaded it');

  const second = await request({ path: '/healthz', method: 'GET', agent });
  t.equal(second.status, 200, 'the kept-alive connection still works');
  t.ok(second.reused, 'on the same socket');
  t.equal(second.socket, first.socket, 'the very same socket');
  t.equal(second.peer, oldFp, 'which keeps the handshake it made');
  const fresh = await request({ path: '/healthz', method: 'GET' });
  t.equal(fresh.peer, newFp, 'a new connection gets the new certificate');
  t.match((await request({ path: '/metrics', method: 'GET' })).body, /ovnkube_route_webhook_cert_reloads_total\{result="success"\} [1-9]/);
});

t.test('a broken pair is refused and the current one stays in use', async (t) => {
  const inUse = reloads.at(-1)?.fingerprint ?? serving.fingerprint;
  const failed = new Promise<void>((resolve) => {
    onReloadError = resolve;
  });
  const good = readFileSync(certFile);
  writeFileSync(certFile, 'not a certificate\n');
  await failed;
  t.match(reloadErrors.at(-1)?.message, /expected a PEM certificate/, 'the error names the file and the problem');
  t.equal((await request({ path: '/healthz', method: 'GET' })).peer, inUse, 'new connections still get the current pair');
  const errorsBefore = reloadErrors.length;
  writeFileSync(certFile, good);
  t.equal(await watcher.check(), false, 'restoring the served pair is not a reload');
  t.equal(reloadErrors.length, errorsBefore, 'and reports no error');
  await admitsNormally(t, 'after the broken pair');
});
