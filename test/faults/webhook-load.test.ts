// The webhook under load (issue #16), the real `ovnkube-route webhook` process with synced
// caches against a real kube-apiserver:
// - SIGTERM while 24 clients keep sending admission reviews: no request that was fully
//   sent before the SIGTERM fails (each one gets its allowed review);
// - its serving certificate rotated five times (certs/gen.sh re-run: same CA, new pair)
//   while clients make a new TLS connection for every review: no handshake and no review
//   fails, and the new certificates are served.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import t from 'tap';
import { withControlPlane } from '../cluster/tap.js';
import { installAddon, startWebhook, until, type WebhookProcess } from '../webhook-e2e/helpers.js';
import { genCerts } from '../webhook/helpers.js';
import { repoRoot } from '../util/fixtures.js';

const review = readFileSync(join(repoRoot, 'test', 'webhook', 'fixtures', 'review-create-replicaset-pod.json'), 'utf8');

interface Sent {
  finishAt: number;
  endAt: number;
  status: number;
  allowed: boolean;
  error?: string;
  peer?: string;
}

/** POST one review; resolves with what happened (never rejects). */
function post(port: number, ca: Buffer, agent: https.Agent | false): Promise<Sent> {
  return new Promise((resolve) => {
    const rec: Sent = { finishAt: Infinity, endAt: 0, status: 0, allowed: false };
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: '/mutate',
        method: 'POST',
        ca,
        agent,
        headers: { 'content-type': 'application/json' },
        timeout: 30_000,
      },
      (res) => {
        const sock = res.socket as TLSSocket;
        const cert = sock.getPeerCertificate?.();
        if (cert?.fingerprint256) rec.peer = cert.fingerprint256;
        let b = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          b += d;
        });
        res.on('end', () => {
          rec.endAt = Date.now();
          rec.status = res.statusCode ?? 0;
          try {
            rec.allowed = (JSON.parse(b) as { response?: { allowed?: boolean } }).response?.allowed === true;
          } catch {
            /* not a review */
          }
          resolve(rec);
        });
        res.on('error', (e) => {
          rec.endAt = Date.now();
          rec.error = e.message;
          resolve(rec);
        });
      },
    );
    req.on('finish', () => {
      rec.finishAt = Date.now();
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 30 s')));
    req.on('error', (e) => {
      rec.endAt = Date.now();
      rec.error = (e as NodeJS.ErrnoException).code ?? e.message;
      resolve(rec);
    });
    req.end(review);
  });
}

/** `workers` loops posting reviews until stop() resolves; returns every record. */
function load(port: number, ca: Buffer, workers: number, agent: https.Agent | false): { records: Sent[]; stop: () => Promise<Sent[]> } {
  const records: Sent[] = [];
  let stopped = false;
  const loops = Array.from({ length: workers }, async () => {
    while (!stopped) records.push(await post(port, ca, agent));
  });
  return {
    records,
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
      return records;
    },
  };
}

const cp = await withControlPlane(t);
if (cp) {
  const addon = await installAddon(t, cp);
  const ca = readFileSync(join(addon.certDir, 'ca.crt'));
  const start = async (): Promise<WebhookProcess> => {
    const wh = await startWebhook({ kubeconfig: addon.kubeconfig, certDir: addon.certDir });
    t.teardown(() => wh.stop('SIGKILL'));
    await until('caches synced (ready)', async () => (await wh.get('/readyz')).status === 200, 60_000);
    return wh;
  };

  await t.test('SIGTERM under load: every review sent before it is answered', async (t) => {
    const wh = await start();
    const agent = new https.Agent({ keepAlive: true, maxSockets: 24 });
    t.teardown(() => agent.destroy());
    const l = load(wh.port, ca, 24, agent);
    await until('under load (500 reviews answered)', () => l.records.filter((r) => r.status === 200).length >= 500, 60_000, 20);
    const killAt = Date.now();
    const exit = wh.stop('SIGTERM');
    t.equal(await exit, 0, 'exit 0');
    const all = await l.stop();
    const before = all.filter((r) => r.finishAt < killAt);
    const bad = before.filter((r) => r.status !== 200 || !r.allowed);
    const inFlight = before.filter((r) => r.endAt >= killAt);
    const after = all.filter((r) => r.finishAt >= killAt);
    t.comment(
      `${all.length} reviews: ${before.length} sent before SIGTERM (${inFlight.length} of them answered after it), ${after.length} after it (${after.filter((r) => r.status === 200).length} answered)`,
    );
    t.same(
      bad.map((r) => r.error ?? `HTTP ${r.status}`),
      [],
      'no review sent before SIGTERM failed',
    );
    t.ok(before.length >= 500, 'a real load');
  });

  await t.test('serving certificate rotated five times under load: no failed handshake', async (t) => {
    const wh = await start();
    const first = new X509Certificate(readFileSync(join(addon.certDir, 'tls.crt'))).fingerprint256;
    const l = load(wh.port, ca, 8, false); // a new connection, so a new handshake, per review
    await until('under load', () => l.records.length >= 100, 60_000, 20);
    const served = [first];
    for (let i = 1; i <= 5; i++) {
      await genCerts(addon.certDir, ['--san', 'IP:127.0.0.1']);
      const fp = new X509Certificate(readFileSync(join(addon.certDir, 'tls.crt'))).fingerprint256;
      served.push(fp);
      await until(`rotation ${i} served`, () => l.records.slice(-8).some((r) => r.peer === fp), 60_000, 20);
    }
    const all = await l.stop();
    const bad = all.filter((r) => r.error || r.status !== 200 || !r.allowed);
    const seen = new Set(all.map((r) => r.peer));
    t.comment(`${all.length} reviews, each on a new TLS connection, across ${served.length} certificates`);
    t.same(
      bad.map((r) => r.error ?? `HTTP ${r.status}`),
      [],
      'no handshake and no review failed',
    );
    t.ok(
      served.every((fp) => seen.has(fp)),
      'every certificate was served in turn',
    );
    t.equal(new Set(served).size, 6, 'six different certificates');
    t.ok((await wh.metric('ovnkube_route_webhook_cert_reloads_total', { result: 'success' })) >= 5, 'reloads counted');
  });
}
