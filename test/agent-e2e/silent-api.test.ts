// A silent API server, then the real one (issue #16, defect 1), through a TCP endpoint on
// loopback that either answers nothing or forwards to a real kube-apiserver (TLS passes
// through untouched):
// - the real `ovnkube-route agent` binary logs its retries while the endpoint is silent,
//   stays unready but alive, and becomes ready once the real API server is behind it;
// - the webhook's informer caches sync through it, survive the endpoint going silent with
//   their watches open (idle watchdog, retries logged), and see new objects once it answers.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import t from 'tap';
import { stringify } from 'yaml';
import { cachesFromApi, CACHED_RESOURCES } from '../../webhook/caches/caches.js';
import { applyManifests, kubeRequest, loadYamlDocuments, waitForCRDEstablished } from '../cluster/k8s.js';
import { withControlPlane } from '../cluster/tap.js';
import { SwitchableFront } from '../util/fake-api.js';
import { cliPath, repoRoot } from '../util/fixtures.js';
import { testKey, until } from '../agent/rig.js';
import { freePort, httpGet as get } from '../util/http.js';

/** The control plane's admin kubeconfig, pointed at `port` on loopback instead. */
function viaFront(kc: KubeConfig, port: number): { kc: KubeConfig; yaml: string } {
  const cfg = JSON.parse(kc.exportConfig()) as { clusters: { cluster: { server: string } }[] };
  for (const c of cfg.clusters) c.cluster.server = `https://127.0.0.1:${port}`;
  const out = new KubeConfig();
  out.loadFromString(JSON.stringify(cfg));
  return { kc: out, yaml: stringify(cfg) };
}

const cp = await withControlPlane(t);
if (cp) {
  const apiserver = { host: '127.0.0.1', port: Number(new URL(cp.server).port) };
  await t.test('the Route CRD is installed (the webhook caches list Routes)', async (t) => {
    for (const r of await applyManifests(cp.kc, loadYamlDocuments(join(repoRoot, 'crds', 'route.yaml')))) t.ok(r.ok, `${r.object} applied`);
    await waitForCRDEstablished(cp.kc, 'routes.k8s.ovn.org');
  });

  await t.test('the agent binary: silent endpoint, then the real API server', async (t) => {
    const front = new SwitchableFront();
    const frontPort = await front.listen();
    const dir = mkdtempSync(join(tmpdir(), 'agent-silent-e2e-'));
    t.teardown(async () => {
      await front.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, viaFront(cp.kc, frontPort).yaml);
    const keyFile = join(dir, 'plan.key');
    writeFileSync(keyFile, testKey().secret.toString('base64') + '\n', { mode: 0o600 });
    const port = await freePort();
    const agent = spawn(
      process.execPath,
      [
        cliPath,
        'agent',
        '--node-name',
        'silent-node',
        '--plan-key',
        keyFile,
        '--cni-cache-dir',
        join(dir, 'cni'),
        '--netns-dir',
        join(dir, 'netns'),
        '--state-dir',
        join(dir, 'state'),
        '--kubeconfig',
        kubeconfig,
        '--metrics-addr',
        `127.0.0.1:${port}`,
        '--api-timeout',
        '2s',
        '--log-level',
        'debug',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_NAME: '' } },
    );
    let log = '';
    agent.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
    });
    const exited = new Promise<number | null>((r) => agent.once('exit', (code) => r(code)));
    t.teardown(() => {
      if (agent.exitCode === null) agent.kill('SIGKILL');
    });
    const retries = (re: RegExp): number => log.split('\n').filter((l) => l.includes('list/watch failed; retrying') && re.test(l)).length;
    await until(
      'the pod list was retried twice with a log line naming the deadline',
      () => retries(/"what":"pods of node silent-node".*GET \/api\/v1\/pods.*no complete answer from the API server within 2 s/) >= 2,
      60_000,
    );
    t.equal((await get(port, '/readyz')).status, 503, 'unready while the endpoint is silent');
    t.equal((await get(port, '/healthz')).status, 200, 'alive: its loops retry');
    front.forwardTo(apiserver);
    await until('ready once the real API server answers', async () => (await get(port, '/readyz')).status === 200, 60_000);
    agent.kill('SIGTERM');
    t.equal(await exited, 0);
  });

  await t.test('webhook caches: sync through the endpoint, survive it going silent, recover', async (t) => {
    const front = new SwitchableFront();
    const frontPort = await front.listen();
    t.teardown(() => front.close());
    front.forwardTo(apiserver);
    const errors: string[] = [];
    const caches = cachesFromApi(viaFront(cp.kc, frontPort).kc, {
      apiTimeoutMs: 2000,
      watchDeadlines: { connectMs: 2000, idleMs: 3000 },
      backoff: { initialMs: 100, maxMs: 1000 },
      observer: { onError: (resource, err) => errors.push(`${resource}: ${(err as Error).message}`) },
    });
    caches.start();
    t.teardown(() => caches.stop());
    await caches.synced;
    t.equal((await kubeRequest(cp.kc, 'POST', '/api/v1/namespaces', { body: { metadata: { name: 'before-silence' } } })).status, 201);
    await until('a namespace created now is cached (the watch works)', () => caches.namespaces.get('before-silence'), 30_000);

    front.freeze();
    await until(
      'every resource noticed the silence and retried',
      () =>
        CACHED_RESOURCES.every((r) =>
          errors.some((e) => e.startsWith(`${r}: `) && /no event or bookmark within 3 s|no answer|no complete answer/.test(e)),
        ),
      60_000,
    );
    t.equal((await kubeRequest(cp.kc, 'POST', '/api/v1/namespaces', { body: { metadata: { name: 'during-silence' } } })).status, 201);
    t.same(caches.stalled(30_000), [], 'alive while retrying');

    front.forwardTo(apiserver);
    await until('the namespace created during the silence is cached after it', () => caches.namespaces.get('during-silence'), 60_000);
    t.ok(caches.isSynced());
  });
}
