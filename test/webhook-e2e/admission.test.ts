// The webhook against a real kube-apiserver (the e2e tier): informer caches running under
// the webhook's own service account with exactly the RBAC of deploy/, and the
// MutatingWebhookConfiguration of deploy/ registered with the caBundle from certs/gen.sh and
// pointed at this process. Pods get their plan; opted-out, hostNetwork and kube-system pods
// get none; forged plans are replaced at CREATE and UPDATE; dryRun answers the same; cache
// change hooks see Route edits, Service recreation and namespace label changes.
// (What the controller keeps true afterwards is the controller's e2e.)
import { KubeConfig } from '@kubernetes/client-node';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Registry } from 'prom-client';
import { decodePlan, parsePlanKey } from '../../core/plan-codec.js';
import { PLAN_ANNOTATION, type Pod } from '../../core/types.js';
import { buildApp } from '../../webhook/admission/server.js';
import { cachesFromApi } from '../../webhook/caches/caches.js';
import type { ChangeEvent } from '../../webhook/caches/store.js';
import { applyManifests, kubeRequest, loadYamlDocuments, waitForCRDEstablished, type ManifestObject } from '../cluster/k8s.js';
import { withControlPlane } from '../cluster/tap.js';
import { repoRoot } from '../util/fixtures.js';
import { genCerts } from '../webhook/helpers.js';
import { until } from '../util/until.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cp = await withControlPlane(t);
if (cp) {
  const { kc } = cp;
  const ok = async (what: string, p: Promise<{ status: number; body: any }>) => {
    const r = await p;
    if (r.status >= 300) throw new Error(`${what}: HTTP ${r.status}: ${r.body?.message ?? JSON.stringify(r.body)}`);
    return r.body;
  };
  await applyManifests(kc, loadYamlDocuments(join(repoRoot, 'crds', 'route.yaml')));
  await waitForCRDEstablished(kc, 'routes.k8s.ovn.org');

  // The webhook's identity and RBAC, exactly as deploy/ declares them.
  const deployObjs = ['namespace.yaml', 'webhook-rbac.yaml'].flatMap((f) => loadYamlDocuments(join(repoRoot, 'deploy', f)));
  for (const r of await applyManifests(kc, deployObjs)) if (!r.ok) throw new Error(`${r.object}: ${r.message}`);
  const token = (
    await ok(
      'TokenRequest',
      kubeRequest(kc, 'POST', '/api/v1/namespaces/ovnkube-route/serviceaccounts/ovnkube-route-webhook/token', {
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
      }),
    )
  ).status.token as string;
  const asWebhook = new KubeConfig();
  asWebhook.loadFromOptions({
    clusters: [{ name: 'c', server: cp.server, caData: Buffer.from(cp.caPem).toString('base64') }],
    users: [{ name: 'webhook', token }],
    contexts: [{ name: 'c', cluster: 'c', user: 'webhook' }],
    currentContext: 'c',
  });

  const dir = mkdtempSync(join(tmpdir(), 'ovnkube-route-e2e-webhook-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await genCerts(dir, ['--san', 'IP:127.0.0.1']);
  const keys = [parsePlanKey(readFileSync(join(dir, 'plan.key'), 'utf8'))];

  const caches = cachesFromApi(asWebhook, { backoff: { initialMs: 200, maxMs: 2000 } });
  caches.start();
  t.teardown(() => caches.stop());
  const registry = new Registry();
  const app = buildApp({
    admit: { caches, mode: 'default', keys },
    readiness: () => ({ ready: caches.isSynced(), detail: '' }),
    registry,
    cacheGauges: caches,
    https: { cert: readFileSync(join(dir, 'tls.crt')), key: readFileSync(join(dir, 'tls.key')) },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  const port = (app.server.address() as AddressInfo).port;

  await t.test("the caches sync under the webhook's own RBAC", async (t) => {
    await caches.synced;
    t.ok(caches.isSynced(), 'all five informers listed and watch');
    t.equal(caches.namespaces.get('ovnkube-route')?.metadata?.labels?.['routes.k8s.ovn.org/inject'], 'disabled', 'namespaces are in');
  });

  const ns = 'e2e-webhook';
  const svcBody = { metadata: { name: 'nginx' }, spec: { ports: [{ port: 80 }] } };
  let svc: any;

  // Everything after the first subtest runs in subtests: tap ends the root test once no
  // subtest is pending, so top-level work between subtests would race the teardown.
  await t.test("setup: a namespace, a Service, a Route, and deploy/'s webhook registration", async (t) => {
    await ok('namespace', kubeRequest(kc, 'POST', '/api/v1/namespaces', { body: { metadata: { name: ns } } }));
    await ok(
      'opted-out namespace',
      kubeRequest(kc, 'POST', '/api/v1/namespaces', {
        body: { metadata: { name: 'e2e-legacy', labels: { 'routes.k8s.ovn.org/inject': 'disabled' } } },
      }),
    );
    svc = await ok('service', kubeRequest(kc, 'POST', `/api/v1/namespaces/${ns}/services`, { body: svcBody }));
    await ok(
      'route',
      kubeRequest(kc, 'POST', '/apis/k8s.ovn.org/v1/routes', {
        body: {
          apiVersion: 'k8s.ovn.org/v1',
          kind: 'Route',
          metadata: { name: 'e2e-target' },
          spec: {
            svc: [{ namespace: ns, name: 'nginx', dev: 'eth1' }],
            route: [{ dst: '172.16.10.0/24', dev: 'eth1' }],
          },
        },
      }),
    );
    await until('the caches see the Route and the Service', () => !!caches.routes.get('e2e-target') && !!caches.service(ns, 'nginx'));

    // deploy/webhook-config.yaml, pointed at this process with the CA from certs/gen.sh.
    const hookConfig = loadYamlDocuments(join(repoRoot, 'deploy', 'webhook-config.yaml'))[0] as ManifestObject & {
      webhooks: Record<string, unknown>[];
    };
    hookConfig.webhooks[0]!.clientConfig = {
      url: `https://127.0.0.1:${port}/mutate`,
      caBundle: readFileSync(join(dir, 'ca-bundle.b64'), 'utf8'),
    };
    for (const r of await applyManifests(kc, [hookConfig])) if (!r.ok) throw new Error(`${r.object}: ${r.message}`);
    t.pass('registered');
  });

  const pod = (
    name: string,
    extra: { labels?: Record<string, string>; annotations?: Record<string, string>; hostNetwork?: boolean; generateName?: boolean } = {},
  ) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...(extra.generateName ? { generateName: `${name}-` } : { name }),
      ...(extra.labels ? { labels: extra.labels } : {}),
      ...(extra.annotations ? { annotations: extra.annotations } : {}),
    },
    spec: { containers: [{ name: 'c', image: 'busybox' }], ...(extra.hostNetwork ? { hostNetwork: true } : {}) },
  });
  const create = async (namespace: string, body: object, query?: Record<string, string>) =>
    ok(
      'create pod',
      kubeRequest(kc, 'POST', `/api/v1/namespaces/${namespace}/pods`, { body, ...(query ? { query } : {}) }),
    ) as Promise<Pod>;
  const planOf = (p: Pod) => p.metadata?.annotations?.[PLAN_ANNOTATION];
  const routesOf = (p: Pod, namespace = ns) => {
    const d = decodePlan(planOf(p) ?? '', { namespace, keys, requireSignature: true });
    return d.ok ? d.plan.routes : d.error;
  };
  const expectRoutes = (ip: string) => [
    { dst: `${ip}/32`, dev: 'eth1' },
    { dst: '172.16.10.0/24', dev: 'eth1' },
  ];

  await t.test('the API server starts calling the webhook', async (t) => {
    // The registration reaches the API server's admission chain asynchronously.
    await until('the API server calls the webhook', async () => !!planOf(await create(ns, pod('probe', { generateName: true }))));
    t.pass('a probe pod was stamped');
  });

  await t.test('pods are stamped by the API server calling the webhook', async (t) => {
    const p = await create(ns, pod('web'));
    t.same(
      routesOf(p),
      expectRoutes(svc.spec.clusterIP),
      "the plan holds the Service's ClusterIP /32 and the CIDR, signed for the namespace",
    );
    const stored = (await ok('get', kubeRequest(kc, 'GET', `/api/v1/namespaces/${ns}/pods/web`))) as Pod;
    t.equal(planOf(stored), planOf(p), 'and it is stored');
    const generated = await create(ns, pod('gen', { generateName: true }));
    t.match(generated.metadata?.name, /^gen-/, 'a generateName pod');
    t.same(routesOf(generated), expectRoutes(svc.spec.clusterIP), 'is stamped too');
  });

  await t.test('opted-out, hostNetwork and kube-system pods get no plan', async (t) => {
    t.notOk(
      planOf(await create(ns, pod('optout', { labels: { 'routes.k8s.ovn.org/inject': 'disabled' } }))),
      'pod labelled inject=disabled',
    );
    t.notOk(planOf(await create('e2e-legacy', pod('old'))), 'pod in a namespace labelled inject=disabled');
    t.notOk(planOf(await create(ns, pod('host', { hostNetwork: true }))), 'hostNetwork pod');
    t.notOk(planOf(await create('kube-system', pod('sys'))), 'kube-system pod');
  });

  await t.test('a forged plan never survives, at CREATE or UPDATE', async (t) => {
    const forged = JSON.stringify({ v: 1, routes: [{ dst: '0.0.0.0/0', dev: 'eth1' }] });
    const p = await create(ns, pod('forger', { annotations: { [PLAN_ANNOTATION]: forged } }));
    t.same(routesOf(p), expectRoutes(svc.spec.clusterIP), 'replaced at CREATE');
    const patched = (await ok(
      'patch',
      kubeRequest(kc, 'PATCH', `/api/v1/namespaces/${ns}/pods/forger`, {
        body: { metadata: { annotations: { [PLAN_ANNOTATION]: forged } } },
        contentType: 'application/merge-patch+json',
      }),
    )) as Pod;
    t.same(routesOf(patched), expectRoutes(svc.spec.clusterIP), 'replaced at UPDATE');
    const removed = (await ok(
      'patch',
      kubeRequest(kc, 'PATCH', `/api/v1/namespaces/${ns}/pods/forger`, {
        body: { metadata: { annotations: { [PLAN_ANNOTATION]: null } } },
        contentType: 'application/merge-patch+json',
      }),
    )) as Pod;
    t.equal(planOf(removed), planOf(p), 'and removing it puts it back');
  });

  await t.test('dryRun gets the same answer and stores nothing', async (t) => {
    const dry = await create(ns, pod('dry'), { dryRun: 'All' });
    t.same(routesOf(dry), expectRoutes(svc.spec.clusterIP), 'stamped');
    t.equal((await kubeRequest(kc, 'GET', `/api/v1/namespaces/${ns}/pods/dry`)).status, 404, 'not stored');
  });

  await t.test('change hooks see Route edits, Service recreation and namespace label changes', async (t) => {
    const events: ChangeEvent<unknown>[] = [];
    const offs = [
      caches.onRouteChange((e) => events.push(e)),
      caches.onServiceChange((e) => events.push(e)),
      caches.onNamespaceChange((e) => events.push(e)),
    ];
    t.teardown(() => offs.forEach((off) => off()));
    await ok(
      'route patch',
      kubeRequest(kc, 'PATCH', '/apis/k8s.ovn.org/v1/routes/e2e-target', {
        body: { spec: { route: [{ dst: '172.16.20.0/24', dev: 'eth1' }] } },
        contentType: 'application/merge-patch+json',
      }),
    );
    await ok('svc delete', kubeRequest(kc, 'DELETE', `/api/v1/namespaces/${ns}/services/nginx`));
    const oldIP = svc.spec.clusterIP as string;
    svc = await ok('svc recreate', kubeRequest(kc, 'POST', `/api/v1/namespaces/${ns}/services`, { body: svcBody }));
    await ok(
      'ns label',
      kubeRequest(kc, 'PATCH', `/api/v1/namespaces/${ns}`, {
        body: { metadata: { labels: { team: 'a' } } },
        contentType: 'application/merge-patch+json',
      }),
    );
    await until(
      'all four changes seen',
      () =>
        caches.namespaces.get(ns)?.metadata?.labels?.team === 'a' && caches.service(ns, 'nginx')?.spec?.clusterIP === svc.spec.clusterIP,
    );
    const route = events.find((e) => e.resource === 'routes') as ChangeEvent<any> | undefined;
    t.equal(route?.type, 'update', 'Route: an update event');
    t.same(
      [route?.old?.spec?.route, route?.object?.spec?.route],
      [[{ dst: '172.16.10.0/24', dev: 'eth1' }], [{ dst: '172.16.20.0/24', dev: 'eth1' }]],
      'Route: old and new spec',
    );
    const svcs = events.filter((e) => e.resource === 'services') as ChangeEvent<any>[];
    t.same(
      svcs.map((e) => [e.type, e.object.spec?.clusterIP]),
      [
        ['delete', oldIP],
        ['add', svc.spec.clusterIP],
      ],
      'Service: deleted, then added with its new ClusterIP',
    );
    const nsEv = events.find((e) => e.resource === 'namespaces') as ChangeEvent<any> | undefined;
    t.same([nsEv?.old?.metadata?.labels?.team, nsEv?.object?.metadata?.labels?.team], [undefined, 'a'], 'Namespace: old and new labels');
    const p = await create(ns, pod('after'));
    t.same(
      routesOf(p),
      [
        { dst: `${svc.spec.clusterIP}/32`, dev: 'eth1' },
        { dst: '172.16.20.0/24', dev: 'eth1' },
      ],
      'new pods get the new ClusterIP and the edited CIDR',
    );
  });

  await t.test('metrics reflect what happened', async (t) => {
    const m = await registry.metrics();
    t.match(m, /ovnkube_route_webhook_plans_overwritten_total\{action="replaced",signed="false"\} 2/, 'two forgeries replaced');
    t.match(m, /ovnkube_route_webhook_plans_skipped_total\{reason="host-network"\} 1/, 'the hostNetwork pod was seen and skipped');
    t.match(m, /ovnkube_route_cache_objects\{resource="routes"\} 1/, 'cache size from the real informer');
  });

  await t.test('unregister', async (t) => {
    await ok('unregister', kubeRequest(kc, 'DELETE', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/ovnkube-route'));
    t.pass('webhook configuration deleted');
  });
}
