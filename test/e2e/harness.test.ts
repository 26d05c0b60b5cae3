// The control-plane harness itself: the apiserver it starts has the properties every other
// e2e test relies on (TLS with our CA, RBAC, both webhook admission plugins, service-account
// tokens from our signing key), and it leaves nothing behind: not on stop(), and not when
// the process that started it is SIGKILLed (the watchdog does it then).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { startControlPlane, SERVICE_ACCOUNT_ISSUER } from '../cluster/controlplane.js';
import { kubeRequest } from '../cluster/k8s.js';
import { issueCert } from '../cluster/pki.js';
import { withControlPlane } from '../cluster/tap.js';
import { kubeConfigWithToken, serviceAccountKubeConfig, until } from '../cluster/helpers.js';
import { alive } from '../cluster/procs.js';

const readBody = (req: IncomingMessage) =>
  new Promise<any>((resolve) => {
    let s = '';
    req.on('data', (d: Buffer) => {
      s += d.toString();
    });
    req.on('end', () => resolve(JSON.parse(s)));
  });

const cp = await withControlPlane(t);
if (cp) {
  const { kc } = cp;

  await t.test('TLS and authentication', async (t) => {
    t.match(cp.server, /^https:\/\/127\.0\.0\.1:\d+$/, 'serves HTTPS on loopback');
    const anon = kubeConfigWithToken(cp);
    const res = await kubeRequest(anon, 'GET', '/api/v1/namespaces');
    t.ok(res.status === 401 || res.status === 403, `no credentials: refused (HTTP ${res.status})`);
    const admin = await kubeRequest(kc, 'GET', '/api/v1/namespaces/default');
    t.equal(admin.status, 200, 'the admin kubeconfig works');
  });

  await t.test('RBAC is enforced', async (t) => {
    const res = await kubeRequest(kc, 'GET', '/api/v1/namespaces/default/configmaps', { headers: { 'Impersonate-User': 'nobody' } });
    t.equal(res.status, 403, 'a user without bindings is forbidden', { message: res.body?.message });
    t.match(String(res.body?.message), 'User "nobody" cannot list resource "configmaps"');
  });

  await t.test('service-account tokens are signed with our key and authenticate', async (t) => {
    t.equal((await kubeRequest(kc, 'POST', '/api/v1/namespaces', { body: { metadata: { name: 'harness' } } })).status, 201);
    t.equal(
      (await kubeRequest(kc, 'POST', '/api/v1/namespaces/harness/serviceaccounts', { body: { metadata: { name: 'probe' } } })).status,
      201,
    );
    const sa = await serviceAccountKubeConfig(cp, 'harness', 'probe');
    const token = String(sa.getCurrentUser()?.token);
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString());
    t.equal(claims.iss, SERVICE_ACCOUNT_ISSUER, 'issuer claim');
    const who = await kubeRequest(sa, 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
    });
    t.equal(who.body?.status?.userInfo?.username, 'system:serviceaccount:harness:probe', 'the token authenticates as the ServiceAccount');
  });

  await t.test('mutating and validating webhooks are called', async (t) => {
    const [cert, key] = await issueCert(cp.pki, cp.dir, 'test-webhook', '/CN=test-webhook', ['subjectAltName=IP:127.0.0.1']);
    const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
      const review = await readBody(req);
      const obj = review.request.object;
      // The apiserver appends ?timeout=5s (the webhook's timeoutSeconds) to the URL.
      const path = new URL(req.url ?? '/', 'https://127.0.0.1').pathname;
      const response: Record<string, unknown> = { uid: review.request.uid, allowed: true };
      if (path === '/validate' && obj.metadata.name === 'deny-me') {
        Object.assign(response, { allowed: false, status: { code: 403, message: 'harness test webhook says no' } });
      }
      if (path === '/mutate') {
        const patch = [{ op: 'add', path: '/data', value: { ...obj.data, mutated: 'yes' } }];
        Object.assign(response, { patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') });
      }
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response }));
    };
    const server = createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (req, res) => {
      handle(req, res).catch((e: unknown) => {
        res.statusCode = 500;
        res.end(String(e));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.teardown(() => new Promise<void>((r) => server.close(() => r())));
    const port = (server.address() as { port: number }).port;
    const hook = (kind: string, path: string) => ({
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind,
      metadata: { name: `harness-${path}` },
      webhooks: [
        {
          name: `${path}.harness.test`,
          sideEffects: 'None',
          admissionReviewVersions: ['v1'],
          failurePolicy: 'Fail',
          timeoutSeconds: 5,
          clientConfig: { url: `https://127.0.0.1:${port}/${path}`, caBundle: Buffer.from(cp.caPem).toString('base64') },
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'harness' } },
          rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['configmaps'] }],
        },
      ],
    });
    const reg = 'admissionregistration.k8s.io/v1';
    t.equal(
      (
        await kubeRequest(kc, 'POST', `/apis/${reg}/validatingwebhookconfigurations`, {
          body: hook('ValidatingWebhookConfiguration', 'validate'),
        })
      ).status,
      201,
    );
    t.equal(
      (
        await kubeRequest(kc, 'POST', `/apis/${reg}/mutatingwebhookconfigurations`, {
          body: hook('MutatingWebhookConfiguration', 'mutate'),
        })
      ).status,
      201,
    );
    const cms = '/api/v1/namespaces/harness/configmaps';
    // Registration reaches the admission chain through an informer: wait (with dry runs) until it has.
    let last: any;
    await until('the validating webhook denies deny-me', async () => {
      last = await kubeRequest(kc, 'POST', cms, { body: { metadata: { name: 'deny-me' } }, query: { dryRun: 'All' } });
      return last.status !== 201;
    });
    t.match(String(last.body?.message), 'harness test webhook says no', 'the denial carries the webhook message');
    await until('the mutating webhook is active', async () => {
      last = await kubeRequest(kc, 'POST', cms, { body: { metadata: { name: 'allow-me' }, data: { a: 'b' } }, query: { dryRun: 'All' } });
      return last.body?.data?.mutated === 'yes';
    });
    const created = await kubeRequest(kc, 'POST', cms, { body: { metadata: { name: 'allow-me' }, data: { a: 'b' } } });
    t.equal(created.status, 201);
    t.same(created.body?.data, { a: 'b', mutated: 'yes' }, 'the stored object carries the JSON patch');
  });
}

t.test('stop() leaves no process and no folder behind', async (t) => {
  if (!cp) return;
  const other = await startControlPlane();
  t.ok(alive(other.pids.etcd) && alive(other.pids.apiserver), 'both servers run');
  await other.stop();
  t.notOk(alive(other.pids.etcd), 'etcd is gone');
  t.notOk(alive(other.pids.apiserver), 'kube-apiserver is gone');
  t.notOk(existsSync(other.dir), `${other.dir} is removed`);
});

t.test('a SIGKILLed owner leaves nothing behind either (watchdog)', async (t) => {
  if (!cp) return;
  const harness = fileURLToPath(new URL('../cluster/controlplane.js', import.meta.url));
  const script = `const { startControlPlane } = await import(${JSON.stringify(harness)});
    const c = await startControlPlane();
    console.log(JSON.stringify({ dir: c.dir, pids: c.pids }));
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    child.on('exit', (code) => reject(new Error(`the owner process exited with ${code} before its control plane was up`)));
  });
  const { dir, pids } = JSON.parse(line) as { dir: string; pids: { etcd: number; apiserver: number } };
  t.ok(alive(pids.etcd) && alive(pids.apiserver), 'its servers run');
  child.kill('SIGKILL');
  await until('servers and folder gone after the owner died', () => !alive(pids.etcd) && !alive(pids.apiserver) && !existsSync(dir));
  t.pass('etcd, kube-apiserver and the folder are gone');
});
