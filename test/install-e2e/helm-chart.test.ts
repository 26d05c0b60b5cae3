// The Helm chart deploy/helm/ovnkube-route, checked with helm v3.22.0 built from the Go module
// proxy (scripts/controlplane/helm): `helm lint`, and `helm template` with the default values
// and each value the chart offers. The rendered objects must be deploy/'s (same container
// args, security contexts, volumes, RBAC rules), the generated TLS must hang together, and bad
// values must be refused with a message naming the value. Installing it on a whole local
// cluster is in install.test.ts.
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { findBinaries } from '../cluster/binaries.js';
import { loadYamlDocuments } from '../cluster/k8s.js';
import { repoRoot } from '../util/fixtures.js';
import { tierGate } from '../util/tier.js';

const chart = join(repoRoot, 'deploy', 'helm', 'ovnkube-route');
const bins = await findBinaries({ allowBuild: false, set: 'cluster' });
if (bins.dir === null && bins.fatal) throw new Error(`helm: ${bins.reason}`);

type Obj = {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: any;
  data?: Record<string, string>;
  webhooks?: any[];
  rules?: any[];
};

if (tierGate(t, 'helm (built from the Go module proxy)', bins.dir === null ? bins.reason : null)) {
  const helmBin = join(bins.dir!, 'helm');
  const helm = (args: string[]) =>
    spawnSync(helmBin, args, {
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, HELM_CACHE_HOME: '/tmp/ovnkube-route-helm-cache' },
    });
  const render = (set: string[] = [], ns = 'ovnkube-route'): Obj[] => {
    const r = helm(['template', 'r', chart, '-n', ns, '--kube-version', '1.36.3', ...set.flatMap((s) => ['--set', s])]);
    if (r.status !== 0) throw new Error(`helm template ${set.join(' ')}: ${r.stderr}`);
    return parseAllDocuments(r.stdout)
      .map((d) => d.toJS() as Obj)
      .filter((o) => o && o.kind);
  };
  const find = (objs: Obj[], kind: string, name?: string) => objs.find((o) => o.kind === kind && (!name || o.metadata?.name === name));
  const deploy = [
    'namespace.yaml',
    'node-injector-daemonset.yaml',
    'node-injector-policy.yaml',
    'node-injector-priorityclass.yaml',
    'node-injector-rbac.yaml',
    'webhook-config.yaml',
    'webhook-deployment.yaml',
    'webhook-rbac.yaml',
  ].flatMap((f) => loadYamlDocuments(join(repoRoot, 'deploy', f))) as unknown as Obj[];

  t.test('helm lint passes (and is shown able to fail)', async (t) => {
    const ok = helm(['lint', chart, '--kube-version', '1.36.3', '--strict']);
    t.equal(ok.status, 0, 'helm lint --strict', { stdout: ok.stdout, stderr: ok.stderr });
    t.match(ok.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    // (helm lint reports a template's `fail` as INFO, so bad values are checked with
    // helm template below; a broken template is what fails a lint.)
    const copy = mkdtempSync(join(tmpdir(), 'ovrt-chart-'));
    t.teardown(() => rmSync(copy, { recursive: true, force: true }));
    cpSync(chart, join(copy, 'ovnkube-route'), { recursive: true });
    writeFileSync(
      join(copy, 'ovnkube-route', 'templates', 'broken.yaml'),
      'kind: ConfigMap\nmetadata: {name: {{ .Values.nope.nothing }}}\n',
    );
    const bad = helm(['lint', join(copy, 'ovnkube-route'), '--kube-version', '1.36.3', '--strict']);
    t.not(bad.status, 0, 'a broken template fails the lint');
    t.match(bad.stdout + bad.stderr, /broken\.yaml/);
  });

  t.test('the chart renders deploy/ (default values)', async (t) => {
    const objs = render();
    const kinds = objs.map((o) => `${o.kind}/${o.metadata?.name}`).sort();
    t.same(
      kinds,
      [
        'ClusterRole/ovnkube-route-injector',
        'ClusterRole/ovnkube-route-webhook',
        'ClusterRoleBinding/ovnkube-route-injector',
        'ClusterRoleBinding/ovnkube-route-webhook',
        'DaemonSet/ovnkube-route-injector',
        'Deployment/ovnkube-route-webhook',
        'MutatingWebhookConfiguration/ovnkube-route',
        'PodDisruptionBudget/ovnkube-route-webhook',
        'PriorityClass/ovnkube-route-node-critical',
        'Role/ovnkube-route-webhook-leader-election',
        'RoleBinding/ovnkube-route-webhook-leader-election',
        'Secret/ovnkube-route-plan-key',
        'Secret/ovnkube-route-webhook-tls',
        'Service/ovnkube-route-webhook',
        'ServiceAccount/ovnkube-route-injector',
        'ServiceAccount/ovnkube-route-webhook',
        'ValidatingAdmissionPolicy/ovnkube-route-injector-writes',
        'ValidatingAdmissionPolicyBinding/ovnkube-route-injector-writes',
      ],
      'the objects of deplo/ plus the two Secrets',
    );
    for (const kind of ['DaemonSet', 'Deployment']) {
      const a = find(objs, kind)!.spec.template.spec;
      const b = find(deploy, kind)!.spec.template.spec;
      const c0 = a.containers[0];
      const d0 = b.containers[0];
      t.same(c0.args, d0.args, `${kind}: the container args are deploy/'s`);
      t.same(c0.securityContext, d0.securityContext, `${kind}: the container security context is deploy/'s`);
      t.same(c0.volumeMounts, d0.volumeMounts, `${kind}: the mounts are deploy/'s`);
      t.same(a.volumes, b.volumes, `${kind}: the volumes (host paths) are deploy/'s`);
      t.same(c0.resources, d0.resources, `${kind}: the resources are deploy/'s`);
      t.same(a.securityContext, b.securityContext, `${kind}: the pod security context is deploy/'s`);
      t.equal(a.hostNetwork, b.hostNetwork, `${kind}: hostNetwork as deploy/`);
      t.equal(c0.image, d0.image, `${kind}: the image is deploy/'s (${c0.image})`);
    }
    t.equal(find(objs, 'Deployment')!.spec.replicas, 2);
    for (const kind of ['ClusterRole', 'Role']) {
      for (const o of objs.filter((x) => x.kind === kind)) {
        const d = find(deploy, kind, o.metadata!.name)!;
        t.same(o.rules, d.rules, `${kind} ${o.metadata!.name}: the rules are deploy/'s`);
      }
    }
    const vap = find(objs, 'ValidatingAdmissionPolicy')!;
    t.same(vap.spec, find(deploy, 'ValidatingAdmissionPolicy')!.spec, "the ValidatingAdmissionPolicy is deploy/'s");
    const hook = find(objs, 'MutatingWebhookConfiguration')!.webhooks![0];
    const dhook = find(deploy, 'MutatingWebhookConfiguration')!.webhooks![0];
    const { caBundle, ...clientConfig } = hook.clientConfig;
    t.same({ ...hook, clientConfig }, dhook, "the webhook registration is deploy/'s, plus the caBundle");
    t.equal(
      readFileSync(join(chart, 'crds', 'route.yaml'), 'utf8'),
      readFileSync(join(repoRoot, 'crds', 'route.yaml'), 'utf8'),
      'crds/route.yaml is the same in the chart',
    );
    t.equal(
      readFileSync(join(chart, 'files', 'node-injector-policy.yaml'), 'utf8'),
      readFileSync(join(repoRoot, 'deploy', 'node-injector-policy.yaml'), 'utf8'),
      "the chart's copy of the policy is deploy/'s",
    );

    // The generated TLS: one CA, the caBundle, and a serving cert it signed for the Service.
    const tls = find(objs, 'Secret', 'ovnkube-route-webhook-tls')!;
    t.equal(caBundle, tls.data!['ca.crt'], 'the caBundle is the CA in the Secret');
    const ca = new X509Certificate(Buffer.from(tls.data!['ca.crt']!, 'base64'));
    const crt = new X509Certificate(Buffer.from(tls.data!['tls.crt']!, 'base64'));
    t.ok(crt.checkIssued(ca) && crt.verify(ca.publicKey), 'the serving certificate is signed by that CA');
    for (const n of ['ovnkube-route-webhook.ovnkube-route.svc', 'ovnkube-route-webhook.ovnkube-route.svc.cluster.local']) {
      t.ok(crt.subjectAltName?.includes(`DNS:${n}`), `the serving certificate names ${n}`);
    }
    const key = Buffer.from(find(objs, 'Secret', 'ovnkube-route-plan-key')!.data!['plan.key']!, 'base64').toString();
    t.equal(Buffer.from(key.trim(), 'base64').length, 32, 'the generated plan key is 32 random bytes in base64, as certs/gen.sh makes it');
    t.not(
      key,
      Buffer.from(find(render(), 'Secret', 'ovnkube-route-plan-key')!.data!['plan.key']!, 'base64').toString(),
      'a fresh render makes a fresh key (an install keeps the existing one)',
    );
  });

  t.test('each value changes what it says', async (t) => {
    const cm = render(['tls.source=cert-manager']);
    t.notOk(find(cm, 'Secret', 'ovnkube-route-webhook-tls'), 'cert-manager: no generated TLS Secret');
    t.equal(find(cm, 'Certificate', 'ovnkube-route-webhook')?.spec.secretName, 'ovnkube-route-webhook-tls');
    t.ok(find(cm, 'Issuer', 'ovnkube-route-ca'), 'with no issuerRef, a self-signed CA Issuer');
    const hook = find(cm, 'MutatingWebhookConfiguration')!;
    t.equal(
      hook.metadata!.annotations?.['cert-manager.io/inject-ca-from'],
      'ovnkube-route/ovnkube-route-webhook',
      'cert-manager fills the caBundle',
    );
    t.notOk(hook.webhooks![0].clientConfig.caBundle);
    const cmIssuer = render([
      'tls.source=cert-manager',
      'tls.certManager.issuerRef.kind=ClusterIssuer',
      'tls.certManager.issuerRef.name=corp-ca',
    ]);
    t.same(find(cmIssuer, 'Certificate', 'ovnkube-route-webhook')?.spec.issuerRef, { kind: 'ClusterIssuer', name: 'corp-ca' });
    t.notOk(find(cmIssuer, 'Issuer'), 'a given issuer: no Issuer of ours');

    const own = render([
      'tls.source=secret',
      'tls.secretName=my-tls',
      'tls.caBundle=Q0E=',
      'planKey.create=false',
      'planKey.secretName=my-key',
    ]);
    t.notOk(
      own.some((o) => o.kind === 'Secret'),
      'existing Secrets: the chart makes none',
    );
    t.equal(find(own, 'MutatingWebhookConfiguration')!.webhooks![0].clientConfig.caBundle, 'Q0E=');
    const vols = find(own, 'Deployment')!.spec.template.spec.volumes;
    t.same(
      vols.map((v: any) => v.secret.secretName),
      ['my-tls', 'my-key'],
    );
    t.equal(find(own, 'DaemonSet')!.spec.template.spec.volumes.find((v: any) => v.name === 'plan-key').secret.secretName, 'my-key');

    const ds = (set: string[]) => find(render(set), 'DaemonSet')!.spec.template.spec;
    const noCni = ds(['cni.enabled=false']);
    t.notOk(
      noCni.containers[0].args.some((a: string) => a.startsWith('--cni-') && !a.startsWith('--cni-cache-dir=')),
      'cni.enabled=false: no CNI-time args',
    );
    t.notOk(
      noCni.volumes.some((v: any) => /^cni-(bin|conf|run)$/.test(v.name)),
      'and no CNI host paths',
    );
    const paths = ds([
      'cni.binDir=/var/lib/rancher/k3s/data/cni',
      'cni.confDir=/var/lib/rancher/k3s/agent/etc/cni/net.d',
      'nodePaths.stateDir=/data/ovnkr',
    ]);
    const hp = Object.fromEntries(paths.volumes.filter((v: any) => v.hostPath).map((v: any) => [v.name, v.hostPath.path]));
    t.match(
      hp,
      { 'cni-bin': '/var/lib/rancher/k3s/data/cni', 'cni-conf': '/var/lib/rancher/k3s/agent/etc/cni/net.d', state: '/data/ovnkr' },
      'node paths',
    );
    const tol = ds([
      'injector.tolerations[0].key=dedicated',
      'injector.tolerations[0].operator=Exists',
      'injector.resources.limits.memory=1Gi',
    ]);
    t.same(tol.tolerations, [{ key: 'dedicated', operator: 'Exists' }], 'tolerations');
    t.equal(tol.containers[0].resources.limits.memory, '1Gi', 'resources');
    const img = render(['image.repository=registry.example/ovnkube-route', 'image.tag=0.1.1', 'webhook.mode=opt-in', 'webhook.replicas=3']);
    t.equal(find(img, 'Deployment')!.spec.template.spec.containers[0].image, 'registry.example/ovnkube-route:0.1.1', 'image');
    t.ok(find(img, 'Deployment')!.spec.template.spec.containers[0].args.includes('--mode=opt-in'), 'injection mode');
    t.equal(find(img, 'Deployment')!.spec.replicas, 3);
    const mon = render([
      'monitoring.serviceMonitor.enabled=true',
      'monitoring.podMonitor.enabled=true',
      'monitoring.podMonitor.labels.release=prom',
    ]);
    t.equal(find(mon, 'ServiceMonitor')?.spec.endpoints[0].port, 'https', 'ServiceMonitor of the webhook');
    t.equal(find(mon, 'PodMonitor')?.spec.podMetricsEndpoints[0].port, 'metrics', 'PodMonitor of the injectors');
    t.equal(find(mon, 'PodMonitor')?.metadata?.labels?.release, 'prom');
    t.notOk(
      render().some((o) => /Monitor$/.test(o.kind)),
      'no monitors by default',
    );
    const other = render([], 'net-tools');
    t.equal(
      find(other, 'ValidatingAdmissionPolicy')!.spec.matchConditions[0].expression,
      'request.userInfo.username == "system:serviceaccount:net-tools:ovnkube-route-injector"',
      "the policy names the release namespace's injector",
    );
    t.same(find(other, 'MutatingWebhookConfiguration')!.webhooks![0].namespaceSelector.matchExpressions[0].values, [
      'kube-system',
      'net-tools',
    ]);
    t.same(
      find(other, 'MutatingWebhookConfiguration')!.webhooks![0].matchConditions,
      [{ name: 'not-the-controller', expression: 'request.userInfo.username != "system:serviceaccount:net-tools:ovnkube-route-webhook"' }],
      "only the release namespace's controller skips the webhook",
    );
    t.notOk(find(render(['injector.validatingAdmissionPolicy=false']), 'ValidatingAdmissionPolicy'), 'the policy can be left out (< 1.30)');
  });

  t.test('bad values are refused, naming the value', async (t) => {
    for (const [set, msg] of [
      ['tls.source=vault', /tls\.source "vault": expected generated, cert-manager or secret/],
      ['tls.source=secret', /tls\.source=secret: set tls\.caBundle/],
      ['webhook.mode=all', /webhook\.mode "all": expected default or opt-in/],
      ['webhook.replicas=0', /webhook\.replicas: expected at least 1/],
    ] as const) {
      const r = helm(['template', 'r', chart, '--kube-version', '1.36.3', '--set', set]);
      t.not(r.status, 0, `--set ${set} fails`);
      t.match(r.stderr, msg, `--set ${set}: ${r.stderr.split('\n')[0]}`);
    }
  });
}
