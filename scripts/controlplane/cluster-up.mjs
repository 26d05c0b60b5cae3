#!/usr/bin/env node
// `npm run cluster:up`: start a control plane (etcd + kube-apiserver on 127.0.0.1) that keeps
// running after this command returns, for the demo and for poking at by hand. Prints
// `export KUBECONFIG=...` on stdout (progress goes to stderr), so `eval "$(npm run -s cluster:up)"`
// works. Running it again while the cluster is up prints the same line. Stop it with
// `npm run cluster:down`. Builds the binaries first when needed (see ensure.mjs).
//
// `npm run cluster:up -- --with-addon`: the whole local cluster of test/cluster/cluster.ts
// instead (control plane, kube-controller-manager, kube-scheduler, kube-proxy, the real node)
// with the add-on installed as a user installs it (test/cluster/addon-install.ts: the image
// imported into the node, certs/gen.sh, `kubectl apply -f crds/ deploy/`, the caBundle, both
// rollouts), all left running. Needs root and scripts/prereqs.sh, like the node.
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ensure, moduleDir } from './binaries.mjs';
import { clusterDir, isOurs, readState } from './state.mjs';

const HELP = `Usage: npm run cluster:up [-- --with-addon]

Start a local control plane (etcd + kube-apiserver) that keeps running, and print
\`export KUBECONFIG=...\` on stdout (progress on stderr): eval "$(npm run -s cluster:up)".

Options:
  --with-addon   the whole local cluster instead (kube-controller-manager, kube-scheduler,
                 kube-proxy and a real kubelet+containerd+Multus node, as root) with the
                 add-on installed from crds/ and deploy/ (image, certs/gen.sh, Secrets,
                 caBundle) and both rollouts done; certs/gen.sh's files are in
                 <folder>/addon/certs. Kubernetes tools: kubectl and helm in the printed PATH
  -h, --help     this text

The folder is $OVNKUBE_ROUTE_CLUSTER_DIR or <tmpdir>/ovnkube-route-cluster. Running it
again while the cluster is up prints the same lines. \`npm run cluster:down\` removes
everything (the node, its pods, the host changes, the folder).`;

const log = (m) => process.stderr.write(`[cluster:up] ${m}\n`);
const args = process.argv.slice(2);
if (args.includes('-h') || args.includes('--help')) {
  console.log(HELP);
  process.exit(0);
}
const unknown = args.filter((a) => a !== '--with-addon');
if (unknown.length) {
  log(`unknown argument ${JSON.stringify(unknown[0])}; expected --with-addon or --help`);
  process.exit(2);
}
const withAddon = args.includes('--with-addon');
const dir = clusterDir(process.env);
const state = readState(dir);
const exportLines = (s) => {
  console.log(`export KUBECONFIG=${s.kubeconfig}`);
  if (s.binDirs?.cluster) console.log(`export PATH=${s.binDirs.cluster}:$PATH`);
};
if (state && isOurs(state.pids?.etcd, 'etcd') && isOurs(state.pids?.apiserver, 'kube-apiserver')) {
  if (withAddon && !state.addon) {
    log(`a control plane without the add-on is running (${state.server}): run \`npm run cluster:down\` first`);
    process.exit(1);
  }
  log(`already running: ${state.server} (etcd pid ${state.pids.etcd}, kube-apiserver pid ${state.pids.apiserver})`);
  exportLines(state);
  process.exit(0);
}
if (existsSync(dir)) {
  log(`removing the stale ${dir} (its processes are gone; run cluster:down first if unsure)`);
  rmSync(dir, { recursive: true, force: true });
}
const harness = join(moduleDir, '..', '..', 'dist', 'test', 'cluster', 'controlplane.js');
if (!existsSync(harness)) {
  log(`${harness} is missing: run \`npm run build\` first`);
  process.exit(1);
}
const bins = await ensure(process.env, { allowBuild: true, log }).catch((e) => ({ dir: null, reason: e.message }));
if (!bins.dir) {
  log(`no control plane binaries: ${bins.reason}`);
  process.exit(1);
}
if (withAddon) process.exit(await upWithAddon(bins.dir));
const { startControlPlane } = await import(pathToFileURL(harness).href);
try {
  const cp = await startControlPlane({ binDir: bins.dir, dir, keep: true, log });
  writeFileSync(
    join(dir, 'state.json'),
    JSON.stringify(
      {
        server: cp.server,
        kubeconfig: cp.kubeconfigPath,
        pids: cp.pids,
        binDir: bins.dir,
        startedAt: new Date().toISOString(),
      },
      null,
      2,
    ) + '\n',
  );
  log(`running: ${cp.server}; logs in ${dir}/*.log; stop with \`npm run cluster:down\``);
  console.log(`export KUBECONFIG=${cp.kubeconfigPath}`);
  process.exit(0);
} catch (e) {
  log(e.message);
  rmSync(dir, { recursive: true, force: true });
  process.exit(1);
}

/** The whole cluster and the add-on, kept running; returns the exit code. */
async function upWithAddon(cpBin) {
  const dist = join(moduleDir, '..', '..', 'dist', 'test', 'cluster');
  const node = await import(pathToFileURL(join(dist, 'node.js')).href);
  const why = node.nodeUnavailable();
  if (why) {
    log(why);
    return 1;
  }
  const sets = { cp: cpBin };
  for (const [key, set] of [
    ['node', 'node'],
    ['cluster', 'cluster'],
  ]) {
    const b = await ensure(process.env, { allowBuild: true, log, set }).catch((e) => ({ dir: null, reason: e.message }));
    if (!b.dir) {
      log(`no ${set} binaries: ${b.reason}`);
      return 1;
    }
    sets[key] = b.dir;
  }
  const { startCluster } = await import(pathToFileURL(join(dist, 'cluster.js')).href);
  const { cleanAgentHostDirs, installFromDeploy } = await import(pathToFileURL(join(dist, 'addon-install.js')).href);
  let c;
  try {
    c = await startCluster(sets, { keep: true, dir, log });
    cleanAgentHostDirs();
    const work = join(dir, 'addon');
    mkdirSync(work, { recursive: true });
    const installed = installFromDeploy(c, join(moduleDir, '..', '..'), work, log);
    const s = {
      server: c.cp.server,
      kubeconfig: c.cp.kubeconfigPath,
      pids: c.cp.pids,
      binDir: cpBin,
      binDirs: sets,
      node: c.node.name,
      addon: installed,
      startedAt: new Date().toISOString(),
    };
    writeFileSync(join(dir, 'state.json'), JSON.stringify(s, null, 2) + '\n');
    log(`running: ${c.cp.server}, node ${c.node.name}, the add-on from deploy/ (certs/gen.sh's files in ${installed.certs})`);
    log(`logs in ${dir}/*.log and ${c.node.dir}; stop everything with \`npm run cluster:down\``);
    exportLines(s);
    return 0;
  } catch (e) {
    log(e.message);
    if (c) await c.stop();
    else node.reapNode(log);
    rmSync(dir, { recursive: true, force: true });
    return 1;
  }
}
