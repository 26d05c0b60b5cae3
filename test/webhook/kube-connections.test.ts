// Connection reuse of the Kubernetes client (core/kube-connections.ts, used by the webhook and the agent), counted at a local
// TLS server standing in for the API server: @kubernetes/client-node 1.4 alone opens a new TLS
// connection for every API call; with shareConnections every call of a KubeConfig reuses one
// keep-alive connection. Connections are counted, never timed.
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import t from 'tap';
import { shareConnections } from '../../platform/kube-connections.js';
import { genCerts } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'ovnkube-route-kubeconn-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
await genCerts(dir, ['--san', 'IP:127.0.0.1']);
const ca = readFileSync(join(dir, 'ca.crt'));

let tlsConnections = 0;
const requests: string[] = [];
const server = https.createServer(
  { cert: readFileSync(join(dir, 'tls.crt')), key: readFileSync(join(dir, 'tls.key')), keepAliveTimeout: 60_000 },
  (req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const name = /\/namespaces\/([^/?]+)/.exec(req.url ?? '')?.[1] ?? 'x';
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: {} } }));
  },
);
server.on('secureConnection', () => {
  tlsConnections++;
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
t.teardown(() => {
  server.closeAllConnections();
  server.close();
});
const port = (server.address() as AddressInfo).port;

function kubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'local', server: `https://127.0.0.1:${port}`, caData: ca.toString('base64') }],
    users: [{ name: 'u', token: 'test-token' }],
    contexts: [{ name: 'c', cluster: 'local', user: 'u' }],
    currentContext: 'c',
  });
  return kc;
}

async function calls(kc: KubeConfig, n: number): Promise<number> {
  const before = tlsConnections;
  const core = kc.makeApiClient(CoreV1Api);
  for (let i = 0; i < n; i++) {
    const ns = await core.readNamespace({ name: `ns-${i}` });
    if (ns.metadata?.name !== `ns-${i}`) throw new Error(`unexpected answer ${JSON.stringify(ns)}`);
  }
  return tlsConnections - before;
}

t.test('the client alone opens a TLS connection per API call (why shareConnections exists)', async (t) => {
  const opened = await calls(kubeConfig(), 5);
  t.ok(opened > 1, `5 calls opened ${opened} TLS connections`);
});

t.test('with shareConnections, API calls reuse one keep-alive connection', async (t) => {
  const kc = kubeConfig();
  const shared = shareConnections(kc);
  t.equal(shareConnections(kc), shared, 'idempotent');
  const n = requests.length;
  const opened = await calls(kc, 20);
  t.equal(requests.length - n, 20, 'every call reached the server');
  t.equal(opened, 1, '20 sequential calls, 1 TLS connection');
  t.equal(shared.agents, 1, 'one agent made');
  // Several API clients of the same KubeConfig share it too.
  t.equal(await calls(kc, 5), 0, 'another API client of the same KubeConfig: no new connection');
  // Calls in parallel open at most one connection per call in flight, then reuse them.
  const core = kc.makeApiClient(CoreV1Api);
  const before = tlsConnections;
  await Promise.all(Array.from({ length: 4 }, (_, i) => core.readNamespace({ name: `p-${i}` })));
  await Promise.all(Array.from({ length: 4 }, (_, i) => core.readNamespace({ name: `q-${i}` })));
  t.ok(tlsConnections - before <= 4, `2 rounds of 4 parallel calls opened ${tlsConnections - before} connections (<= 4)`);
});

t.test('shared agents are per KubeConfig', async (t) => {
  const kc = kubeConfig();
  const shared = shareConnections(kc);
  t.equal(await calls(kc, 2), 1, 'a second KubeConfig opens its own connection');
  t.equal(shared.agents, 1);
});
