// The webhook's manifests in deploy/ agree with each other and with the code: the
// MutatingWebhookConfiguration's settings and selectors (evaluated with core's label
// selector code), the cert-manager variant being the same webhook, the Deployment's args
// parsing into a valid config whose files are where the Secrets are mounted, the names
// certs/gen.sh uses, and least-privilege RBAC. (The server-side dry run of deploy/
// against a real kube-apiserver is test/e2e/deploy.test.ts.)
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { labelSelectorMatches } from '../../core/match.js';
import type { LabelSelector } from '../../core/types.js';
import { parseWebhookConfig } from '../../webhook/config.js';
import { repoRoot } from '../util/fixtures.js';
import { genCerts } from './helpers.js';

type Obj = Record<string, any>;
const load = (f: string): Obj[] =>
  parseAllDocuments(readFileSync(join(repoRoot, 'deploy', f), 'utf8'))
    .map((d) => d.toJS() as Obj)
    .filter(Boolean);
const mine = ['namespace.yaml', 'webhook-rbac.yaml', 'webhook-deployment.yaml', 'webhook-config.yaml'].flatMap(load);
const find = (objs: Obj[], kind: string, name: string): Obj => {
  const o = objs.find((x) => x.kind === kind && x.metadata?.name === name);
  if (!o) throw new Error(`no ${kind} ${name}`);
  return o;
};
const hookConfig = find(mine, 'MutatingWebhookConfiguration', 'ovnkube-route');
const hook = hookConfig.webhooks[0] as Obj;
const deployment = find(mine, 'Deployment', 'ovnkube-route-webhook');
const service = find(mine, 'Service', 'ovnkube-route-webhook');
const pod = deployment.spec.template.spec as Obj;
const container = pod.containers[0] as Obj;

t.test('the webhook registration fails open, fast, and only for pods', async (t) => {
  t.has(hook, {
    failurePolicy: 'Ignore',
    timeoutSeconds: 5,
    reinvocationPolicy: 'IfNeeded',
    sideEffects: 'None',
    admissionReviewVersions: ['v1'],
    matchPolicy: 'Equivalent',
  });
  t.same(hook.rules, [
    { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['pods'], scope: 'Namespaced' },
  ]);
  t.same(
    hook.clientConfig.service,
    { name: service.metadata.name, namespace: service.metadata.namespace, path: '/mutate', port: service.spec.ports[0].port },
    'it calls the Service on /mutate',
  );
  t.notOk('caBundle' in hook.clientConfig, 'no caBundle field, so re-applying the file never wipes the one patched in');
});

t.test("the selectors leave out kube-system, the add-on's namespace, and opted-out namespaces and pods", async (t) => {
  const ns = (name: string, labels: Record<string, string> = {}) => ({ 'kubernetes.io/metadata.name': name, ...labels });
  const nsSel = hook.namespaceSelector as LabelSelector;
  t.ok(labelSelectorMatches(nsSel, ns('default')), 'default: called');
  t.ok(labelSelectorMatches(nsSel, ns('team-a', { 'routes.k8s.ovn.org/inject': 'enabled' })), 'an opted-in namespace: called');
  t.notOk(labelSelectorMatches(nsSel, ns('kube-system')), 'kube-system: not called');
  t.notOk(labelSelectorMatches(nsSel, ns('ovnkube-route')), "the add-on's namespace: not called");
  t.notOk(labelSelectorMatches(nsSel, ns('legacy', { 'routes.k8s.ovn.org/inject': 'disabled' })), 'an opted-out namespace: not called');
  const objSel = hook.objectSelector as LabelSelector;
  t.ok(labelSelectorMatches(objSel, undefined), 'a pod without labels: called');
  t.ok(labelSelectorMatches(objSel, { 'routes.k8s.ovn.org/inject': 'enabled' }), 'an opted-in pod: called');
  t.notOk(labelSelectorMatches(objSel, { app: 'x', 'routes.k8s.ovn.org/inject': 'disabled' }), 'an opted-out pod: not called');
  const addonNs = find(mine, 'Namespace', 'ovnkube-route');
  t.notOk(labelSelectorMatches(nsSel, addonNs.metadata.labels), 'the namespace as declared in deploy/namespace.yaml is left out');
});

t.test("the add-on's namespace: Pod Security warns and audits at the level it enforces", async (t) => {
  const labels = find(mine, 'Namespace', 'ovnkube-route').metadata.labels ?? {};
  const psa = 'pod-security.kubernetes.io';
  t.equal(labels[`${psa}/enforce`], 'privileged', 'the injector needs privileged');
  // A mode the namespace leaves out takes the cluster's default: with a `baseline` warning
  // default, every change of the DaemonSet printed a PodSecurity warning (troubleshooting.md).
  for (const mode of ['warn', 'audit']) {
    t.equal(labels[`${psa}/${mode}`], labels[`${psa}/enforce`], `${mode} is the enforced level`);
    t.equal(labels[`${psa}/${mode}-version`], labels[`${psa}/enforce-version`], `${mode}-version is the enforced version`);
  }
});

t.test("only the controller's own ServiceAccount skips the webhook (matchConditions)", async (t) => {
  const sa = `system:serviceaccount:${deployment.metadata.namespace}:${pod.serviceAccountName}`;
  t.same(
    hook.matchConditions,
    [{ name: 'not-the-controller', expression: `request.userInfo.username != "${sa}"` }],
    "the one condition names the Deployment's ServiceAccount, exactly",
  );
  t.ok(
    find(mine, 'ServiceAccount', pod.serviceAccountName),
    'that ServiceAccount is the one deploy/webhook-rbac.yaml declares (no other identity is excluded)',
  );
});

t.test('the cert-manager variant is the same webhook plus CA injection', async (t) => {
  const cm = load('cert-manager/webhook-config.yaml')[0]!;
  const { annotations, ...meta } = cm.metadata;
  t.same({ ...cm, metadata: meta }, hookConfig, 'identical apart from the annotation');
  t.same(annotations, { 'cert-manager.io/inject-ca-from': 'ovnkube-route/ovnkube-route-webhook' });
  const cert = find(load('cert-manager/certificate.yaml'), 'Certificate', 'ovnkube-route-webhook');
  t.equal(
    `${cert.metadata.namespace}/${cert.metadata.name}`,
    annotations['cert-manager.io/inject-ca-from'],
    'the annotation names the Certificate',
  );
  const tlsVolume = pod.volumes.find((v: Obj) => v.name === 'tls');
  t.equal(cert.spec.secretName, tlsVolume.secret.secretName, 'the Certificate writes the Secret the Deployment mounts');
  const issuers = load('cert-manager/issuer.yaml');
  t.ok(find(issuers, 'Issuer', cert.spec.issuerRef.name).spec.ca, 'issued by the CA Issuer');
  t.ok(find(issuers, 'Certificate', 'ovnkube-route-ca').spec.isCA, 'whose CA certificate is made by cert-manager too');

  const dir = mkdtempSync(join(tmpdir(), 'ovnkube-route-deploy-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { stdout } = await genCerts(dir);
  const sans = new X509Certificate(readFileSync(join(dir, 'tls.crt'))).subjectAltName?.split(', ').map((s) => s.replace(/^DNS:/, ''));
  t.same(cert.spec.dnsNames, sans, 'the Certificate and certs/gen.sh give the same DNS names');
  t.match(stdout, `create secret tls ${tlsVolume.secret.secretName} `, 'gen.sh prints the Secret name the Deployment mounts');
  const planVolume = pod.volumes.find((v: Obj) => v.name === 'plan-key');
  t.match(stdout, `create secret generic ${planVolume.secret.secretName} --from-file=plan.key=`, 'and the plan key Secret name');
});

t.test("the Deployment's args are a valid config, pointing at the mounted Secrets", async (t) => {
  t.equal(deployment.spec.replicas, 2, 'two replicas (leader election picks the controller)');
  const env: Record<string, string> = { POD_NAMESPACE: deployment.metadata.namespace, SERVICE_ACCOUNT: pod.serviceAccountName };
  t.same(
    container.env.map((e: Obj) => e.valueFrom.fieldRef.fieldPath),
    ['metadata.namespace', 'spec.serviceAccountName'],
    'downward API',
  );
  // Kubernetes expands $(VAR) in args from the container's env.
  const args = (container.args as string[]).map((a) => a.replace(/\$\(([A-Z_]+)\)/g, (_, v: string) => env[v] ?? `$(${v})`));
  t.equal(args[0], 'webhook', 'runs the webhook command');
  const config = parseWebhookConfig(args.slice(1), {});
  t.same(config.trustedUsers, ['system:serviceaccount:ovnkube-route:ovnkube-route-webhook'], 'trusts its own service account');
  t.ok(find(mine, 'ServiceAccount', pod.serviceAccountName), 'which deploy/ declares');
  const mountOf = (file: string) => container.volumeMounts.find((m: Obj) => file.startsWith(`${m.mountPath}/`));
  t.equal(mountOf(config.tlsCert)?.name, 'tls', 'the cert is in the tls volume');
  t.equal(mountOf(config.tlsKey)?.name, 'tls', 'and the key');
  t.equal(mountOf(config.planKeys[0]!)?.name, 'plan-key', 'the plan key in its own volume');
  t.notOk(
    container.volumeMounts.some((m: Obj) => m.subPath),
    'no subPath (it would freeze the files and stop reloads)',
  );
  const port = container.ports.find((p: Obj) => p.name === 'https');
  t.equal(port.containerPort, config.port, 'the container port is the one the webhook listens on');
  t.equal(service.spec.ports[0].targetPort, 'https', 'the Service targets it by name');
  t.same(service.spec.selector, deployment.spec.selector.matchLabels, "the Service selects the Deployment's pods");
  t.has(container.readinessProbe.httpGet, { path: '/readyz', port: 'https', scheme: 'HTTPS' }, 'ready only once the caches synced');
  t.has(container.livenessProbe.httpGet, { path: '/healthz', port: 'https', scheme: 'HTTPS' });
  t.has(container.securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  t.equal(pod.securityContext.runAsNonRoot, true);
  t.equal(planVolumeMode(pod) & 0o044, 0o040, 'the plan key is group-readable (fsGroup), not world-readable');
});
const planVolumeMode = (p: Obj): number => p.volumes.find((v: Obj) => v.name === 'plan-key').secret.defaultMode as number;

t.test('RBAC is least privilege', async (t) => {
  const flat = (rules: Obj[]) =>
    rules
      .flatMap((r) =>
        r.apiGroups.flatMap((g: string) =>
          r.resources.flatMap((res: string) =>
            r.verbs.map((v: string) => `${g || 'core'}/${res}:${v}${r.resourceNames ? `[${r.resourceNames.join(',')}]` : ''}`),
          ),
        ),
      )
      .sort();
  const cluster = find(mine, 'ClusterRole', 'ovnkube-route-webhook');
  t.same(flat(cluster.rules), [
    'apps/replicasets:get',
    'apps/replicasets:list',
    'apps/replicasets:watch',
    'batch/jobs:get',
    'batch/jobs:list',
    'batch/jobs:watch',
    'core/events:create',
    'core/events:patch',
    'core/namespaces:get',
    'core/namespaces:list',
    'core/namespaces:watch',
    'core/pods:get',
    'core/pods:list',
    'core/pods:patch',
    'core/pods:watch',
    'core/services:get',
    'core/services:list',
    'core/services:watch',
    'events.k8s.io/events:create',
    'events.k8s.io/events:patch',
    'k8s.ovn.org/routes/status:patch',
    'k8s.ovn.org/routes/status:update',
    'k8s.ovn.org/routes:get',
    'k8s.ovn.org/routes:list',
    'k8s.ovn.org/routes:watch',
  ]);
  const role = find(mine, 'Role', 'ovnkube-route-webhook-leader-election');
  t.equal(role.metadata.namespace, 'ovnkube-route', 'leases only in its own namespace');
  t.same(flat(role.rules), [
    'coordination.k8s.io/leases:create',
    'coordination.k8s.io/leases:get[ovnkube-route-controller]',
    'coordination.k8s.io/leases:update[ovnkube-route-controller]',
  ]);
  const sa = find(mine, 'ServiceAccount', 'ovnkube-route-webhook');
  for (const b of [
    find(mine, 'ClusterRoleBinding', 'ovnkube-route-webhook'),
    find(mine, 'RoleBinding', 'ovnkube-route-webhook-leader-election'),
  ]) {
    t.same(
      b.subjects,
      [{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: sa.metadata.namespace }],
      `${b.kind} binds the webhook's account only`,
    );
  }
  t.equal(find(mine, 'ClusterRoleBinding', 'ovnkube-route-webhook').roleRef.name, cluster.metadata.name);
  t.equal(find(mine, 'RoleBinding', 'ovnkube-route-webhook-leader-election').roleRef.name, role.metadata.name);
});

t.test("every namespaced object lives in the add-on's namespace", async (t) => {
  for (const o of mine.filter(
    (x) => !['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration'].includes(x.kind),
  )) {
    t.equal(o.metadata.namespace, 'ovnkube-route', `${o.kind} ${o.metadata.name}`);
  }
});
