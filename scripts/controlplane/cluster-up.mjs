#!/usr/bin/env node
// `npm run cluster:up`: start a control plane (etcd + kube-apiserver on 127.0.0.1) that keeps
// running after this command returns, for the demo and for poking at by hand. Prints
// `export KUBECONFIG=...` on stdout (progress goes to stderr), so `eval "$(npm run -s cluster:up)"`
// works. Running it again while the cluster is up prints the same line. Stop it with
// `npm run cluster:down`. Builds the binaries first when needed (see ensure.mjs).
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ensure, moduleDir } from './binaries.mjs';
import { clusterDir, isOurs, readState } from './state.mjs';

const log = (m) => process.stderr.write(`[cluster:up] ${m}\n`);
const dir = clusterDir(process.env);
const state = readState(dir);
if (state && isOurs(state.pids?.etcd, 'etcd') && isOurs(state.pids?.apiserver, 'kube-apiserver')) {
  log(`already running: ${state.server} (etcd pid ${state.pids.etcd}, kube-apiserver pid ${state.pids.apiserver})`);
  console.log(`export KUBECONFIG=${state.kubeconfig}`);
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
