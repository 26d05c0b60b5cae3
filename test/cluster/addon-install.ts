/**
 * The add-on installed on a whole local cluster (cluster.ts) exactly as a user installs it:
 * the image built here (addon-image.ts) and imported into the node's containerd,
 * `certs/gen.sh` into a folder outside the repository, `kubectl apply -f crds/`, the namespace
 * and the two Secrets, `kubectl apply -f deploy/`, the caBundle patch that certs/gen.sh prints,
 * and `kubectl rollout status` of both workloads. Shared by test/install-e2e and
 * `npm run cluster:up -- --with-addon` (scripts/controlplane/cluster-up.mjs). No tap here.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADDON_IMAGE_REF, buildAddonImage } from './addon-image.js';
import type { LocalCluster } from './cluster.js';
import { recordNodeCleanup } from './node.js';

export const ADDON_NAMESPACE = 'ovnkube-route';
/** Host folders the DaemonSet's hostPaths (DirectoryOrCreate) make on the node. */
export const AGENT_HOST_DIRS = ['/var/lib/ovnkube-route', '/run/ovnkube-route'];
/** What the DaemonSet's --rt-protos-dir writes into the host's /etc (proto 111's name). */
export const RT_PROTOS_FILE = '/etc/iproute2/rt_protos.d/ovnkube-route.conf';

/**
 * Remove, with the cluster's node (its stop(), `node:down`/`cluster:down`, or the reaper after
 * a crash), the agent's host folders and its rt_protos file that this run is about to create.
 * Call it from the process that started the cluster, before the agent runs.
 */
export function cleanAgentHostDirs(): void {
  for (const d of AGENT_HOST_DIRS) if (!existsSync(d)) recordNodeCleanup(['rm', '-rf', d]);
  // A file of the machine's /etc that must not be left behind (other tests read `ip` output).
  if (!existsSync(RT_PROTOS_FILE)) recordNodeCleanup(['rm', '-f', RT_PROTOS_FILE]);
}

export interface InstallResult {
  /** certs/gen.sh's folder: ca.crt, tls.crt, tls.key, plan.key, ca-bundle.b64. */
  certs: string;
  image: { ref: string; digest: string; nodeVersion: string; ms: number };
}

/** Run kubectl against the cluster; throw with its stderr when it fails. */
function kubectlOk(c: LocalCluster, args: string[], input?: string): string {
  const r = c.kubectl(args, input);
  if (r.status !== 0) throw new Error(`kubectl ${args.join(' ')} exited with ${r.status}: ${(r.stderr || r.stdout).trim().slice(-3000)}`);
  return r.stdout;
}

/** Warning Events of the add-on's namespace, for a rollout that failed. */
function warnings(c: LocalCluster): string {
  return c
    .kubectl(['-n', ADDON_NAMESPACE, 'get', 'events', '--sort-by=.lastTimestamp'])
    .stdout.split('\n')
    .filter((l) => /Warning/.test(l))
    .join('\n')
    .slice(-4000);
}

/**
 * Install the add-on from `repoRoot`'s crds/ and deploy/ onto `c` and wait for both
 * rollouts. `work` receives certs/gen.sh's output (`<work>/certs`) and the image tarball
 * (removed once imported). Throws, naming the step, when a step fails.
 */
export function installFromDeploy(c: LocalCluster, repoRoot: string, work: string, log: (l: string) => void = () => {}): InstallResult {
  const t0 = Date.now();
  const image = buildAddonImage(repoRoot);
  const tarball = join(work, 'ovnkube-route-image.tar');
  writeFileSync(tarball, image.tarball);
  c.importImage(tarball);
  rmSync(tarball);
  const ms = Date.now() - t0;
  log(`image ${ADDON_IMAGE_REF} ${image.digest} (Node ${image.nodeVersion}) built and imported in ${ms} ms`);
  const certs = join(work, 'certs');
  const gen = spawnSync('bash', [join(repoRoot, 'certs', 'gen.sh'), certs], { encoding: 'utf8' });
  if (gen.status !== 0) throw new Error(`certs/gen.sh ${certs} exited with ${gen.status}: ${gen.stderr.trim()}`);
  // The README's steps (certs/gen.sh prints the same commands).
  kubectlOk(c, ['apply', '-f', join(repoRoot, 'crds')]);
  kubectlOk(c, ['apply', '-f', join(repoRoot, 'deploy', 'namespace.yaml')]);
  const secret = (args: string[]) =>
    kubectlOk(
      c,
      ['apply', '-f', '-'],
      kubectlOk(c, ['-n', ADDON_NAMESPACE, 'create', 'secret', ...args, '--dry-run=client', '-o', 'yaml']),
    );
  secret(['tls', 'ovnkube-route-webhook-tls', `--cert=${certs}/tls.crt`, `--key=${certs}/tls.key`]);
  secret(['generic', 'ovnkube-route-plan-key', `--from-file=plan.key=${certs}/plan.key`]);
  kubectlOk(c, ['apply', '-f', join(repoRoot, 'deploy')]);
  const bundle = spawnSync('cat', [join(certs, 'ca-bundle.b64')], { encoding: 'utf8' }).stdout.trim();
  kubectlOk(c, [
    'patch',
    'mutatingwebhookconfiguration',
    'ovnkube-route',
    '--type=json',
    '-p',
    JSON.stringify([{ op: 'add', path: '/webhooks/0/clientConfig/caBundle', value: bundle }]),
  ]);
  for (const w of ['deployment/ovnkube-route-webhook', 'daemonset/ovnkube-route-injector']) {
    const r = c.kubectl(['-n', ADDON_NAMESPACE, 'rollout', 'status', w, '--timeout=150s']);
    if (r.status !== 0) throw new Error(`kubectl rollout status ${w}: ${(r.stderr || r.stdout).trim()}\nWarning Events:\n${warnings(c)}`);
    log(`${w} rolled out`);
  }
  return { certs, image: { ref: ADDON_IMAGE_REF, digest: image.digest, nodeVersion: image.nodeVersion, ms } };
}
