// Every manifest in deploy/ (whatever is there when the test runs, multi-document YAML,
// subfolders such as deploy/cert-manager/ included) must pass a server-side dry run
// (`kubectl apply --server-side --dry-run=server`) against a real kube-apiserver with the
// Route CRD installed: schema, strict field validation, defaulting, admission and RBAC
// escalation checks all run; nothing is stored. A deliberately broken manifest goes through
// the same path first, so the check is shown able to fail. Objects of third-party APIs this
// control plane does not serve (cert-manager.io) cannot be checked here: each is reported
// as a tap SKIP with the reason, never passed silently.
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import t from 'tap';
import { applyManifests, kubeRequest, loadYamlDocuments, waitForCRDEstablished, type ManifestObject } from '../cluster/k8s.js';
import { withControlPlane } from '../cluster/tap.js';
import { repoRoot } from '../util/fixtures.js';

const deployDir = join(repoRoot, 'deploy');
/** deploy/ and its subfolders, in the order `kubectl apply -f deploy/ && kubectl apply -f deploy/<sub>/` would go. */
function manifestFiles(dir: string): string[] {
  const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name));
  return [
    ...entries.filter((e) => e.isFile() && /\.ya?ml$/.test(e.name)).map((e) => join(dir, e.name)),
    // deploy/helm/ holds the chart: templates, not manifests (test/install-e2e/helm-chart.test.ts).
    ...entries.filter((e) => e.isDirectory() && !(dir === deployDir && e.name === 'helm')).flatMap((e) => manifestFiles(join(dir, e.name))),
  ];
}
const files = manifestFiles(deployDir);
// Groups a plain kube-apiserver serves, plus ours; anything else needs someone else's CRDs.
const isServedGroup = (apiVersion: string) =>
  !apiVersion.includes('/') || /(\.k8s\.io|^apps|^batch|^policy|^autoscaling|^k8s\.ovn\.org)\//.test(apiVersion);

const cp = await withControlPlane(t);
if (cp) {
  const { kc } = cp;
  const crds = loadYamlDocuments(join(repoRoot, 'crds', 'route.yaml'));

  await t.test('crds/ installs', async (t) => {
    const installed = await applyManifests(kc, crds);
    t.ok(
      installed.every((r) => r.ok),
      'crds/ installed',
      { results: installed },
    );
    await waitForCRDEstablished(kc, 'routes.k8s.ovn.org');
  });

  await t.test('the dry run refuses broken manifests (negative control)', async (t) => {
    const broken: ManifestObject[] = [
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'x', namespace: 'default' }, automountServiceAcountToken: false },
      { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'x', namespace: 'default' }, spec: { template: { spec: {} } } },
      { apiVersion: 'k8s.ovn.org/v1', kind: 'Route', metadata: { name: 'x' }, spec: { route: [{ dst: '10.0.0.5/24', dev: 'eth1' }] } },
      { apiVersion: 'example.com/v1', kind: 'Nothing', metadata: { name: 'x' } },
    ];
    const results = await applyManifests(kc, broken, { dryRun: true });
    t.match(results[0], { ok: false, message: /automountServiceAcountToken: field not declared in schema/ }, 'a misspelt field is refused');
    t.match(
      results[1],
      { ok: false, message: /spec\.template\.spec\.containers: Required value/ },
      'a DaemonSet without containers is refused',
    );
    t.match(results[2], { ok: false, message: /host bits set/ }, 'a bad Route is refused by the CRD');
    t.match(results[3], { ok: false, message: /not served/ }, 'an unknown API is refused');
  });

  await t.test('every manifest in deploy/ passes a server-side dry run', async (t) => {
    // deploy/ ships manifests: finding none means the lookup broke, not that all is well.
    if (!t.ok(files.length > 0, `deploy/ holds *.yaml manifests (found ${files.length})`)) return;
    const objects = files.flatMap((f) => loadYamlDocuments(f).map((o) => ({ f: relative(repoRoot, f), o })));
    t.ok(objects.length > 0, `${files.length} file(s) in deploy/ hold objects`);
    // Namespaced objects can only be dry-run into a namespace that exists, and a dry run
    // creates nothing: so the Namespaces declared in deploy/ are created for real first.
    const namespaces = objects.filter(({ o }) => o.kind === 'Namespace' && o.apiVersion === 'v1').map(({ o }) => o);
    for (const r of await applyManifests(kc, namespaces)) t.ok(r.ok, `${r.object} created`, { message: r.message });
    for (const { f, o } of objects) {
      if (!isServedGroup(o.apiVersion)) {
        const served = await kubeRequest(kc, 'GET', `/apis/${o.apiVersion}`);
        if (served.status === 404) {
          t.pass(`${f}: ${o.kind} ${o.metadata?.name} not checked`, {
            skip: `API ${o.apiVersion} is not served by this control plane (its CRDs are not installed)`,
          });
          continue;
        }
      }
      const [r] = await applyManifests(kc, [o], { dryRun: true });
      t.ok(r?.ok, `${f}: ${r?.object} accepted`, { status: r?.status, message: r?.message });
    }
  });

  await t.test('crds/ itself passes the same dry run again (kubectl apply -f crds/ is idempotent)', async (t) => {
    for (const r of await applyManifests(kc, crds, { dryRun: true })) t.ok(r.ok, `${r.object} accepted`, { message: r.message });
  });
}
