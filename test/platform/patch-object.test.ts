// platform/kube-client.ts patchObject, the controller's pod PATCH, against a local HTTP server:
// what it sends, that a non-2xx answer is classified as client-node errors are, and that its
// deadline holds. (Against the real API server: test/webhook-e2e/webhook-controller.test.ts.)
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import t from 'tap';
import { classifyApiError } from '../../platform/api-errors.js';
import { ApiStatusError, ApiTimeoutError, patchObject } from '../../platform/kube-client.js';

interface Seen {
  method?: string;
  url?: string;
  type?: string;
  auth?: string;
  body: string;
}

async function server(answer: (req: IncomingMessage, res: ServerResponse, seen: Seen) => void) {
  const seen: Seen[] = [];
  const srv = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const s = { method: req.method, url: req.url, type: req.headers['content-type'], auth: req.headers.authorization, body };
      seen.push(s);
      answer(req, res, s);
    });
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.teardown(() => {
    srv.closeAllConnections();
    srv.close();
  });
  const kc = new KubeConfig();
  kc.loadFromOptions({
    // client-node only allows plain HTTP (loopback here) with skipTLSVerify.
    clusters: [{ name: 'c', server: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'tok' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return { kc, seen };
}

const ops = [
  { op: 'test', path: '/metadata/uid', value: 'u1' },
  { op: 'add', path: '/metadata/annotations/a', value: 'b' },
];

t.test('sends a JSON Patch with the query and the credentials, and drops the answer', async (t) => {
  const { kc, seen } = await server((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"kind":"Pod"}');
  });
  await patchObject(kc, '/api/v1/namespaces/ns/pods/p', ops, { query: { fieldManager: 'fm' } });
  await patchObject(kc, '/api/v1/namespaces/ns/pods/q', ops);
  t.match(seen[0], {
    method: 'PATCH',
    url: '/api/v1/namespaces/ns/pods/p?fieldManager=fm',
    type: 'application/json-patch+json',
    auth: 'Bearer tok',
  });
  t.same(JSON.parse(seen[0]!.body), ops, 'the operations as given');
  t.match(seen[1], { url: '/api/v1/namespaces/ns/pods/q', auth: 'Bearer tok' }, 'the cached connection options carry the token too');
});

t.test('a refused patch rejects with the status and the Status message, classified like client-node errors', async (t) => {
  const msg = 'the server rejected our request due to an error in our request';
  const { kc } = await server((req, res) => {
    const code = req.url!.includes('/gone') ? 404 : 422;
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', code, message: code === 404 ? 'pods "gone" not found' : msg }));
  });
  const conflict = await patchObject(kc, '/api/v1/namespaces/ns/pods/p', ops).catch((e: unknown) => e);
  t.type(conflict, ApiStatusError);
  t.match(classifyApiError(conflict), { action: 'retry', reason: 'conflict', status: 422, message: msg });
  const gone = await patchObject(kc, '/api/v1/namespaces/ns/pods/gone', ops).catch((e: unknown) => e);
  t.match(classifyApiError(gone), { action: 'gone', status: 404, message: 'pods "gone" not found' });
});

t.test('patches started together ask the KubeConfig for its connection options once; a failed ask is not kept', async (t) => {
  const { kc, seen } = await server((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  });
  const real = kc.applyToHTTPSOptions.bind(kc);
  let asked = 0;
  let fail = true;
  kc.applyToHTTPSOptions = async (opts) => {
    asked++;
    if (fail) throw new Error('token file unreadable');
    return real(opts);
  };
  await t.rejects(patchObject(kc, '/api/v1/namespaces/ns/pods/p', ops), /token file unreadable/);
  fail = false;
  await Promise.all(Array.from({ length: 10 }, (_, i) => patchObject(kc, `/api/v1/namespaces/ns/pods/p${i}`, ops)));
  t.equal(seen.length, 10, 'every patch sent');
  t.equal(asked, 2, 'the failed ask, then one for the 10 patches');
});

t.test("a 429 keeps the server's Retry-After: the controller waits that long (controller-throttle.test.ts)", async (t) => {
  const { kc } = await server((_req, res) => {
    res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '2' });
    res.end(JSON.stringify({ kind: 'Status', code: 429, message: 'Too many requests, please try again later.' }));
  });
  const err = await patchObject(kc, '/api/v1/namespaces/ns/pods/p', ops).catch((e: unknown) => e);
  t.type(err, ApiStatusError);
  t.same((err as ApiStatusError).headers, { 'retry-after': '2' });
  t.match(classifyApiError(err), { action: 'retry', reason: 'throttled', status: 429, retryAfterMs: 2000 });
});

t.test('a server that never answers: ApiTimeoutError at the deadline, classified as a network failure', async (t) => {
  const { kc, seen } = await server(() => {
    /* never answer */
  });
  const err = await patchObject(kc, '/api/v1/namespaces/ns/pods/p', ops, { timeoutMs: 200 }).catch((e: unknown) => e);
  t.equal(seen.length, 1, 'the request arrived');
  t.type(err, ApiTimeoutError);
  t.match((err as Error).message, /PATCH \/api\/v1\/namespaces\/ns\/pods\/p: no complete answer from the API server within 0\.2 s/);
  t.match(classifyApiError(err), { action: 'retry', reason: 'network' });
});
