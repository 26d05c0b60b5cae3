// The node agent end to end: the real `ovnkube-route agent` binary, running as the
// injector's ServiceAccount with exactly the RBAC of deploy/node-injector-rbac.yaml, against
// a real kube-apiserver. No kubelet runs: pods are created in the API with spec.nodeName
// set to the agent's node and a plan annotation signed with the test key (what the webhook
// would write), and their sandboxes are simulated (a real netns plus its CNI cache file).
// A namespace labelled routes.k8s.ovn.org/inject=disabled is honoured through the agent's
// namespace watch (a copied plan there is not applied; flipping the label acts at once).
import { KubeConfig } from '@kubernetes/client-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { decodeInjectorStatus } from '../../core/injector-status.js';
import { encodePlan, planHash, planKeyFromSecret } from '../../core/plan-codec.js';
import { INJECT_LABEL, PLAN_ANNOTATION, READY_CONDITION, STATUS_ANNOTATION, type Plan, type Pod } from '../../core/types.js';
import { kubeSink } from '../../injector/agent/kube.js';
import { applyManifests, kubeRequest, loadYamlDocuments } from '../cluster/k8s.js';
import { withControlPlane } from '../cluster/tap.js';
import { cliPath, repoRoot } from '../util/fixtures.js';
import { makePod, routeLines } from '../util/netns.js';
import { rootUnavailable, tierGate } from '../util/tier.js';
import { MISSION_PLAN, ownedLines, stateFiles, testKey, until, writeCacheFile } from '../agent/rig.js';
import { freePort, httpGet } from '../util/http.js';

const NODE = 'e2e-node';
const NS = 'e2e-apps';

function metricValue(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

const cp = await withControlPlane(t);
if (cp && tierGate(t, 'netns', rootUnavailable()))
  await t.test('node agent against a real kube-apiserver', async (t) => {
    const { kc } = cp;
    const dir = mkdtempSync(join(tmpdir(), 'ovrt-agent-e2e-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const cacheDir = mkdtempSync(join(dir, 'cni-'));
    const stateDir = mkdtempSync(join(dir, 'state-'));

    // The injector's identity, RBAC and write policy, exactly as deployed.
    const manifests = [
      'namespace.yaml',
      'node-injector-rbac.yaml',
      'node-injector-priorityclass.yaml',
      'node-injector-policy.yaml',
    ].flatMap((f) => loadYamlDocuments(join(repoRoot, 'deploy', f)));
    for (const r of await applyManifests(kc, manifests)) t.ok(r.ok, `${r.object} applied`, { message: r.message });
    t.equal((await kubeRequest(kc, 'POST', '/api/v1/namespaces', { body: { metadata: { name: NS } } })).status, 201);
    // The agent's credentials as the kubelet would project them: a token bound to the agent's
    // own pod on its node (so it names the node), for the injector ServiceAccount.
    t.equal((await kubeRequest(kc, 'POST', '/api/v1/nodes', { body: { metadata: { name: NODE } } })).status, 201, 'Node object');
    const self = await kubeRequest(kc, 'POST', '/api/v1/namespaces/ovnkube-route/pods', {
      body: {
        metadata: { name: 'injector-self' },
        spec: { nodeName: NODE, serviceAccountName: 'ovnkube-route-injector', containers: [{ name: 'c', image: 'registry.invalid/none' }] },
      },
    });
    t.equal(self.status, 201, "the agent's own pod");
    const token = async (bound: boolean): Promise<string> => {
      const spec = bound
        ? { expirationSeconds: 3600, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: 'injector-self', uid: self.body.metadata.uid } }
        : { expirationSeconds: 3600 };
      const tr = await kubeRequest(kc, 'POST', '/api/v1/namespaces/ovnkube-route/serviceaccounts/ovnkube-route-injector/token', {
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec },
      });
      t.equal(tr.status, 201, `${bound ? 'pod-bound ' : ''}token for the injector ServiceAccount`, { message: tr.body?.message });
      return String(tr.body.status.token);
    };
    const writeKubeconfig = (file: string, tok: string): string => {
      writeFileSync(
        file,
        stringify({
          apiVersion: 'v1',
          kind: 'Config',
          'current-context': 'c',
          clusters: [{ name: 'c', cluster: { server: cp.server, 'certificate-authority-data': Buffer.from(cp.caPem).toString('base64') } }],
          users: [{ name: 'injector', user: { token: tok } }],
          contexts: [{ name: 'c', context: { cluster: 'c', user: 'injector' } }],
        }),
      );
      return file;
    };
    const boundToken = await token(true);
    const claims = JSON.parse(Buffer.from(boundToken.split('.')[1] ?? '', 'base64url').toString()) as {
      'kubernetes.io'?: { node?: { name?: string } };
    };
    t.equal(claims['kubernetes.io']?.node?.name, NODE, 'the token names the node');
    const kubeconfig = writeKubeconfig(join(dir, 'injector.kubeconfig'), boundToken);
    const unboundKubeconfig = writeKubeconfig(join(dir, 'unbound.kubeconfig'), await token(false));
    // A new policy reaches admission through an informer: wait (dry runs) until it denies.
    await until(
      'the write policy is in force',
      async () =>
        (
          await kubeRequest(kubeconfigUser(kubeconfig), 'PATCH', '/api/v1/namespaces/ovnkube-route/pods/injector-self', {
            body: { metadata: { labels: { probe: 'x' } } },
            contentType: 'application/merge-patch+json',
            query: { dryRun: 'All' },
          })
        ).status === 403,
    );
    const key = testKey();
    const keyFile = join(dir, 'plan.key');
    writeFileSync(keyFile, key.secret.toString('base64') + '\n', { mode: 0o600 });
    t.equal(key.id, planKeyFromSecret(Buffer.from(key.secret)).id);

    let agent: ChildProcess | undefined;
    let log = '';
    let port = 0;
    const startAgent = async (): Promise<void> => {
      port = await freePort();
      agent = spawn(
        process.execPath,
        [
          cliPath,
          'agent',
          '--node-name',
          NODE,
          '--plan-key',
          keyFile,
          '--cni-cache-dir',
          cacheDir,
          '--state-dir',
          stateDir,
          '--kubeconfig',
          kubeconfig,
          '--metrics-addr',
          `127.0.0.1:${port}`,
          '--resync-period',
          '5s',
          '--log-level',
          'debug',
        ],
        { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_NAME: '' } },
      );
      agent.stderr!.on('data', (d: Buffer) => {
        log += d.toString();
      });
      const spawned = Date.now();
      await until(
        'the agent is ready (pods and namespaces listed, cache scanned)',
        async () => (await httpGet(port, '/readyz')).status === 200,
        60_000,
      );
      t.comment(`agent ready ${Date.now() - spawned} ms after spawn (a figure, not an assertion)`);
    };
    const stopAgent = async (): Promise<number | null> => {
      const a = agent;
      if (!a || a.exitCode !== null) return a?.exitCode ?? null;
      const exited = new Promise<number | null>((r) => a.once('exit', (code) => r(code)));
      a.kill('SIGTERM');
      return exited;
    };
    t.teardown(async () => {
      await stopAgent();
    });
    await startAgent();

    const podPath = (name: string): string => `/api/v1/namespaces/${NS}/pods/${name}`;
    const createPod = async (name: string, plan: Plan, extra: { readinessGate?: boolean } = {}): Promise<Pod> => {
      const res = await kubeRequest(kc, 'POST', `/api/v1/namespaces/${NS}/pods`, {
        body: {
          metadata: { name, annotations: { [PLAN_ANNOTATION]: encodePlan(plan, { namespace: NS, key }) } },
          spec: {
            nodeName: NODE,
            containers: [{ name: 'c', image: 'registry.invalid/none' }],
            ...(extra.readinessGate ? { readinessGates: [{ conditionType: READY_CONDITION }] } : {}),
          },
        },
      });
      t.equal(res.status, 201, `pod ${name} created`, { message: res.body?.message });
      return res.body as Pod;
    };
    const getPod = async (name: string): Promise<Pod> => (await kubeRequest(kc, 'GET', podPath(name))).body as Pod;
    const setPlan = async (name: string, value: string): Promise<void> => {
      const res = await kubeRequest(kc, 'PATCH', podPath(name), {
        body: { metadata: { annotations: { [PLAN_ANNOTATION]: value } } },
        contentType: 'application/merge-patch+json',
      });
      t.equal(res.status, 200, 'plan annotation patched', { message: res.body?.message });
    };
    const metrics = async (): Promise<string> => (await httpGet(port, '/metrics')).body;

    const { pod: ns } = makePod(t);
    const WANT = [
      '10.124.0.0/16 via 10.124.2.1 dev eth1 proto 111',
      '10.86.205.109 dev eth1 proto 111',
      '10.86.69.17 dev eth0 proto 111',
      '172.16.10.0/24 dev eth1 proto 111',
      '192.168.2.0/24 dev eth0 proto 111',
    ];

    await t.test('routes appear in the simulated sandbox; status and readiness are reported to the API', async (t) => {
      const pod = await createPod('web', MISSION_PLAN, { readinessGate: true });
      writeCacheFile(cacheDir, pod, ns.path);
      await until('plan routes in the netns', () => JSON.stringify(ownedLines(routeLines(ns))) === JSON.stringify(WANT));
      t.same(ownedLines(routeLines(ns)), WANT);
      const reported = await until('status annotation on the pod', async () =>
        decodeInjectorStatus((await getPod('web')).metadata?.annotations?.[STATUS_ANNOTATION]),
      );
      t.match(reported, { plan: planHash(MISSION_PLAN), applied: 5, skipped: [], node: NODE });
      const cond = await until('ready condition True', async () =>
        ((await getPod('web')).status as { conditions?: { type: string; status: string; reason: string }[] })?.conditions?.find(
          (c) => c.type === READY_CONDITION && c.status === 'True',
        ),
      );
      t.equal(cond.reason, 'RoutesInPlace');
      t.ok(metricValue(await metrics(), 'ovnkube_route_injector_routes_applied_total') >= 5, 'routes applied counted');
    });

    await t.test(
      'editing the plan annotation (a Route edit, as the controller writes it) changes the routes with no restart',
      async (t) => {
        const next: Plan = {
          v: 1,
          routes: [
            { dst: '10.86.69.17/32', dev: 'eth1' },
            { dst: '172.16.30.0/24', dev: 'eth1', via: '10.124.2.1' },
          ],
        };
        await setPlan('web', encodePlan(next, { namespace: NS, key }));
        const want = ['10.86.69.17 dev eth1 proto 111', '172.16.30.0/24 via 10.124.2.1 dev eth1 proto 111'];
        await until('the new plan is in the netns', () => JSON.stringify(ownedLines(routeLines(ns))) === JSON.stringify(want));
        t.same(ownedLines(routeLines(ns)), want);
        await until(
          'status names the new plan',
          async () => decodeInjectorStatus((await getPod('web')).metadata?.annotations?.[STATUS_ANNOTATION])?.plan === planHash(next),
        );
        t.pass('reported');
      },
    );

    await t.test('a forged plan is refused with an Event, and the routes stay', async (t) => {
      const before = ownedLines(routeLines(ns));
      await setPlan('web', encodePlan({ v: 1, routes: [{ dst: '0.0.0.0/1', dev: 'eth1' }] }, { namespace: NS, key: testKey() }));
      const uid = (await getPod('web')).metadata!.uid!;
      const ev = await until('PlanRejected Event', async () => {
        const res = await kubeRequest(kc, 'GET', `/api/v1/namespaces/${NS}/events`, {
          query: { fieldSelector: `involvedObject.uid=${uid},reason=PlanRejected` },
        });
        return (res.body?.items as { message: string; source?: { component?: string } }[] | undefined)?.[0];
      });
      t.match(ev.message, /unknown-key/);
      t.equal(ev.source?.component, 'ovnkube-route-injector');
      t.same(ownedLines(routeLines(ns)), before, 'routes as they were');
      t.ok(metricValue(await metrics(), 'ovnkube_route_injector_plans_rejected_total{code="unknown-key"}') >= 1, 'counted');
    });

    await t.test(
      'a namespace labelled inject=disabled: a copied plan is not applied; flipping the label re-evaluates at once',
      async (t) => {
        const OUT = 'e2e-optout';
        const label = async (value: string | null): Promise<void> => {
          const res = await kubeRequest(kc, 'PATCH', `/api/v1/namespaces/${OUT}`, {
            body: { metadata: { labels: { [INJECT_LABEL]: value } } },
            contentType: 'application/merge-patch+json',
          });
          t.equal(res.status, 200, `namespace label ${INJECT_LABEL}=${value}`, { message: res.body?.message });
        };
        t.equal(
          (
            await kubeRequest(kc, 'POST', '/api/v1/namespaces', {
              body: { metadata: { name: OUT, labels: { [INJECT_LABEL]: 'disabled' } } },
            })
          ).status,
          201,
        );
        // The webhook never sees this namespace; a pod author copies a plan signed for it.
        const res = await kubeRequest(kc, 'POST', `/api/v1/namespaces/${OUT}/pods`, {
          body: {
            metadata: { name: 'copier', annotations: { [PLAN_ANNOTATION]: encodePlan(MISSION_PLAN, { namespace: OUT, key }) } },
            spec: { nodeName: NODE, containers: [{ name: 'c', image: 'registry.invalid/none' }] },
          },
        });
        t.equal(res.status, 201, 'pod created', { message: res.body?.message });
        const { pod: out } = makePod(t);
        writeCacheFile(cacheDir, res.body as Pod, out.path);
        const statusPlan = async (): Promise<string | undefined> =>
          decodeInjectorStatus(
            ((await kubeRequest(kc, 'GET', `/api/v1/namespaces/${OUT}/pods/copier`)).body as Pod).metadata?.annotations?.[
              STATUS_ANNOTATION
            ],
          )?.plan;
        await until('the agent looked at it and reported no plan in force', async () => (await statusPlan()) === '');
        t.same(ownedLines(routeLines(out)), [], 'no routes');
        await label(null);
        await until('label removed: the plan is applied', () => JSON.stringify(ownedLines(routeLines(out))) === JSON.stringify(WANT));
        await label('disabled');
        await until('label back: the routes are removed', () => ownedLines(routeLines(out)).length === 0);
        await until('and reported', async () => (await statusPlan()) === '');
        t.match(log, /"reason":"namespace-opted-out"/, 'the reason is logged');
      },
    );

    await t.test('the agent cannot do more than its RBAC and write policy say', async (t) => {
      const sa = kubeconfigUser(kubeconfig);
      t.equal((await kubeRequest(sa, 'GET', '/api/v1/namespaces/ovnkube-route/secrets')).status, 403, 'no Secrets');
      t.equal((await kubeRequest(sa, 'DELETE', podPath('web'))).status, 403, 'no pod deletion');
      t.equal((await kubeRequest(sa, 'GET', '/apis/apps/v1/daemonsets')).status, 403, 'nothing else');
      t.equal((await kubeRequest(sa, 'GET', '/api/v1/namespaces')).status, 200, 'namespaces: listed (their opt-out labels)');
      t.equal(
        (
          await kubeRequest(sa, 'PATCH', `/api/v1/namespaces/${NS}`, {
            body: { metadata: { labels: { x: 'y' } } },
            contentType: 'application/merge-patch+json',
          })
        ).status,
        403,
        'namespaces: read only',
      );
      const elsewhere = await kubeRequest(kc, 'POST', `/api/v1/namespaces/${NS}/pods`, {
        body: {
          metadata: { name: 'elsewhere' },
          spec: { nodeName: 'other-node', containers: [{ name: 'c', image: 'registry.invalid/none' }] },
        },
      });
      t.equal(elsewhere.status, 201);
      const merge = 'application/merge-patch+json';
      const denied = async (
        what: string,
        who: typeof sa,
        path: string,
        body: unknown,
        message: RegExp,
        contentType = merge,
      ): Promise<void> => {
        const res = await kubeRequest(who, 'PATCH', path, { body, contentType });
        t.equal(res.status, 403, `${what}: refused`, { message: res.body?.message });
        t.match(String(res.body?.message), message, `${what}: by the policy`);
      };
      const status = { metadata: { annotations: { [STATUS_ANNOTATION]: '{"v":1}' } } };
      await denied('a pod of another node', sa, podPath('elsewhere'), status, /only write pods of its own node/);
      await denied(
        'a token that names no node',
        kubeconfigUser(unboundKubeconfig),
        podPath('web'),
        status,
        /pod-bound token that names its node/,
      );
      await denied('a label', sa, podPath('web'), { metadata: { labels: { x: 'y' } } }, /may not change a pod's labels/);
      await denied(
        'the plan annotation',
        sa,
        podPath('web'),
        { metadata: { annotations: { [PLAN_ANNOTATION]: '{}' } } },
        /only change the routes\.k8s\.ovn\.org\/status annotation/,
      );
      await denied(
        'a container image',
        sa,
        podPath('web'),
        { spec: { containers: [{ name: 'c', image: 'evil.invalid/x' }] } },
        /may not change a pod's spec/,
        'application/strategic-merge-patch+json',
      );
      await denied(
        'the pod IP',
        sa,
        `${podPath('web')}/status`,
        { status: { podIP: '10.9.9.9', podIPs: [{ ip: '10.9.9.9' }] } },
        /phase, IPs or container statuses/,
      );
      await denied(
        'another condition',
        sa,
        `${podPath('web')}/status`,
        { status: { conditions: [{ type: 'Ready', status: 'True' }] } },
        /only set the routes\.k8s\.ovn\.org\/ready condition/,
        'application/strategic-merge-patch+json',
      );
      const ok = await kubeRequest(sa, 'PATCH', podPath('web'), { body: status, contentType: merge, query: { dryRun: 'All' } });
      t.equal(ok.status, 200, "the status annotation of its own node's pod is allowed", { message: ok.body?.message });
    });

    await t.test('writes are guarded by the pod UID', async (t) => {
      const pod = await getPod('web');
      const sink = kubeSink(kc, NODE);
      await t.rejects(
        sink.patchPodAnnotations({ namespace: NS, name: 'web', uid: '00000000-0000-0000-0000-000000000000' }, { [STATUS_ANNOTATION]: 'x' }),
        { code: 422, message: /metadata\.uid.*field is immutable/ },
        'a patch for another UID of the same name is refused (and never retried: see report.ts)',
      );
      t.not((await getPod('web')).metadata?.annotations?.[STATUS_ANNOTATION], 'x');
      t.ok(pod.metadata?.uid);
    });

    await t.test('a restart converges without rewriting anything, then follows plan edits', async (t) => {
      await setPlan('web', encodePlan(MISSION_PLAN, { namespace: NS, key }));
      await until('plan back in place', () => JSON.stringify(ownedLines(routeLines(ns))) === JSON.stringify(WANT));
      t.equal(await stopAgent(), 0, 'the agent exits 0 on SIGTERM');
      t.same(ownedLines(routeLines(ns)), WANT, 'routes stay while no agent runs');
      await startAgent();
      const more: Plan = { v: 1, routes: [...MISSION_PLAN.routes, { dst: '172.16.40.0/24', dev: 'eth0' }] };
      await setPlan('web', encodePlan(more, { namespace: NS, key }));
      await until('the added route is in', () => routeLines(ns).includes('172.16.40.0/24 dev eth0 proto 111'));
      t.equal(ownedLines(routeLines(ns)).length, 6, 'nothing duplicated');
      t.equal(
        metricValue(await metrics(), 'ovnkube_route_injector_routes_applied_total'),
        1,
        'the restarted agent wrote only the one new route',
      );
    });

    await t.test('deleting the pod cleans its state', async (t) => {
      const plan: Plan = { ...MISSION_PLAN, default: { dev: 'eth1', via: '10.124.2.1' } };
      await setPlan('web', encodePlan(plan, { namespace: NS, key }));
      await until('default replaced', () => routeLines(ns).includes('default via 10.124.2.1 dev eth1 proto 111'));
      await until('state saved', () => stateFiles(stateDir).length === 1);
      t.equal((await kubeRequest(kc, 'DELETE', podPath('web'), { query: { gracePeriodSeconds: '0' } })).status, 200);
      await until('state removed', () => stateFiles(stateDir).length === 0);
      t.pass('removed');
    });

    t.test('agent log is JSON lines', async (t) => {
      const lines = log.trim().split('\n').filter(Boolean);
      t.ok(lines.length > 0);
      t.ok(
        lines.every((l) => {
          try {
            return typeof JSON.parse(l).msg === 'string';
          } catch {
            return false;
          }
        }),
        'every line parses',
      );
    });
  });

/** A KubeConfig for the user of a kubeconfig file. */
function kubeconfigUser(file: string): KubeConfig {
  const k = new KubeConfig();
  k.loadFromFile(file);
  return k;
}
