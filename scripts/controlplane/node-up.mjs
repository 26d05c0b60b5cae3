#!/usr/bin/env node
// `npm run node:up`: a real node (containerd + kubelet + Multus, pods with eth0 and eth1) for
// the control plane of `npm run cluster:up`, started first when it is not running. Both stay
// up after this command returns; `npm run node:down` stops the node (and `cluster:down` the
// control plane). Prints `export KUBECONFIG=...` on stdout, progress on stderr. Running it
// again while the node runs prints the same line. Needs root and scripts/prereqs.sh.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ensure, moduleDir } from './binaries.mjs';
import { clusterDir, readState } from './state.mjs';

const log = (m) => process.stderr.write(`[node:up] ${m}\n`);
const dist = join(moduleDir, '..', '..', 'dist', 'test', 'cluster');
if (!existsSync(join(dist, 'node.js'))) {
  log(`${join(dist, 'node.js')} is missing: run \`npm run build\` first`);
  process.exit(1);
}
const up = spawnSync(process.execPath, [join(moduleDir, 'cluster-up.mjs')], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
if (up.status !== 0) process.exit(up.status ?? 1);
const dir = clusterDir(process.env);
const cluster = readState(dir);
const node = await import(pathToFileURL(join(dist, 'node.js')).href);
const { KubeConfig } = await import('@kubernetes/client-node');
const why = node.nodeUnavailable();
if (why) {
  log(why);
  process.exit(1);
}
const recorded = (() => {
  try {
    return JSON.parse(readFileSync(join(node.NODE_STATE_DIR, 'state.json'), 'utf8'));
  } catch {
    return null;
  }
})();
if (recorded && recorded.pids?.kubelet && existsSync(`/proc/${recorded.pids.kubelet}`)) {
  log(`already running: node ${recorded.name} (kubelet pid ${recorded.pids.kubelet}, ${recorded.dir})`);
  console.log(`export KUBECONFIG=${cluster.kubeconfig}`);
  process.exit(0);
}
const bins = await ensure(process.env, { allowBuild: true, log, set: 'node' }).catch((e) => ({ dir: null, reason: e.message }));
if (!bins.dir) {
  log(`no node binaries: ${bins.reason}`);
  process.exit(1);
}
const kc = new KubeConfig();
kc.loadFromFile(cluster.kubeconfig);
const cp = {
  server: cluster.server,
  kc,
  caPem: readFileSync(join(dir, 'ca.crt'), 'utf8'),
  pki: { caCert: join(dir, 'ca.crt'), caKey: join(dir, 'ca.key'), adminCert: join(dir, 'admin.crt'), adminKey: join(dir, 'admin.key') },
};
try {
  const n = await node.startNode(cp, { binDir: bins.dir, keep: true, log });
  log(`node ${n.name} is Ready; its files are in ${n.dir}; stop it with \`npm run node:down\``);
  console.log(`export KUBECONFIG=${cluster.kubeconfig}`);
  process.exit(0);
} catch (e) {
  log(e.message);
  process.exit(1);
}
