#!/usr/bin/env node
// `npm run node:down`: stop the node of `npm run node:up` and remove everything it made
// (processes, sandboxes' CNI cache files and netns, mounts, its folder, the eth1 bridge,
// the kubepods cgroups, the FORWARD guard), also after a crash. Its pods are first deleted
// through the API when the control plane still runs, so that kubelet tears them down with
// CNI DEL. The control plane stays up (`npm run cluster:down`).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { moduleDir } from './binaries.mjs';
import { clusterDir, isOurs, readState } from './state.mjs';

const log = (m) => process.stderr.write(`[node:down] ${m}\n`);
const dist = join(moduleDir, '..', '..', 'dist', 'test', 'cluster');
if (!existsSync(join(dist, 'node.js'))) {
  log(`${join(dist, 'node.js')} is missing: run \`npm run build\` first`);
  process.exit(1);
}
const node = await import(pathToFileURL(join(dist, 'node.js')).href);
const dir = clusterDir(process.env);
const cluster = readState(dir);
let cp = null;
if (cluster && isOurs(cluster.pids?.apiserver, 'kube-apiserver')) {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.kubeconfig);
  cp = { server: cluster.server, kc };
}
await node.stopNode(cp, log);
log('node removed');
