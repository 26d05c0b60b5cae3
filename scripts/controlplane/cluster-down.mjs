#!/usr/bin/env node
// `npm run cluster:down`: stop the control plane that `npm run cluster:up` left running
// (SIGTERM to each process group, SIGKILL after 10 s) and remove its folder; a node of
// `npm run node:up` is stopped first (node-down.mjs). After `cluster:up -- --with-addon`,
// kube-controller-manager, kube-scheduler and kube-proxy go first (their pid files are in the
// folder; without them nothing re-creates the pods the node's drain deletes), then the node
// with the add-on's pods and every host change the cluster recorded with it (kube-proxy's
// rules, the CNI bind mounts, the API address link, the agent's host folders and its
// rt_protos file), then the control plane.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clusterDir, isOurs, readState } from './state.mjs';

const log = (m) => process.stderr.write(`[cluster:down] ${m}\n`);
const dir = clusterDir(process.env);
const state = readState(dir);
if (!state && !existsSync(dir)) {
  log(`no cluster to stop (${dir} does not exist)`);
  process.exit(0);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const signal = (pid, sig) => {
  try {
    process.kill(-pid, sig);
  } catch {
    /* already gone */
  }
};
// Processes started beside the servers go first: those of `npm run demo -- --keep` (the
// add-on's webhook and agent: the agent takes its CNI plugin out of the node's chain when it
// stops) and the controllers, scheduler and kube-proxy of `cluster:up -- --with-addon`.
const alive = (pid) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('ovnkube-route');
  } catch {
    return false;
  }
};
for (const f of existsSync(dir)
  ? readdirSync(dir).filter((x) => x.endsWith('.pid') && !['etcd.pid', 'kube-apiserver.pid'].includes(x))
  : []) {
  const pid = Number.parseInt(readFileSync(join(dir, f), 'utf8'), 10);
  if (!Number.isInteger(pid) || !alive(pid)) continue;
  signal(pid, 'SIGTERM');
  const deadline = Date.now() + 15_000;
  while (alive(pid) && Date.now() < deadline) await sleep(100);
  if (alive(pid)) signal(pid, 'SIGKILL');
  log(`stopped ${f.replace(/\.pid$/, '')} (pid ${pid})`);
}
// A node of `npm run node:up` goes next, while the API server can still drain its pods; only
// this cluster's node: the machine's one node may belong to another checkout's cluster
// (`npm run node:down` stops whichever node runs).
const nodeServer = (() => {
  try {
    return JSON.parse(readFileSync('/run/ovnkube-route-node/state.json', 'utf8')).server;
  } catch {
    return undefined;
  }
})();
if (nodeServer && state?.server && nodeServer !== state.server) {
  log(`leaving the node of another cluster (${nodeServer}) alone: this cluster is ${state.server}`);
} else if (existsSync('/run/ovnkube-route-node/state.json')) {
  const r = spawnSync(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), 'node-down.mjs')], { stdio: 'inherit' });
  if (r.status !== 0) log('node:down failed; stopping the control plane anyway');
}
// kube-apiserver first, so it never sees etcd vanish under it.
for (const [name, pid] of [
  ['kube-apiserver', state?.pids?.apiserver],
  ['etcd', state?.pids?.etcd],
]) {
  if (!isOurs(pid, name)) continue;
  signal(pid, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  while (isOurs(pid, name) && Date.now() < deadline) await sleep(100);
  if (isOurs(pid, name)) {
    log(`${name} (pid ${pid}) ignored SIGTERM: killing it`);
    signal(pid, 'SIGKILL');
  }
  while (isOurs(pid, name)) await sleep(100);
  log(`stopped ${name} (pid ${pid})`);
}
rmSync(dir, { recursive: true, force: true });
log(`removed ${dir}`);
