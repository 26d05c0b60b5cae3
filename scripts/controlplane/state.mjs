// Where `npm run cluster:up` keeps its long-running control plane, and how to tell whether
// the processes recorded there are still ours (a pid can be reused after they die).
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The cluster:up work folder: $OVNKUBE_ROUTE_CLUSTER_DIR or <tmpdir>/ovnkube-route-cluster. */
export function clusterDir(env) {
  return env.OVNKUBE_ROUTE_CLUSTER_DIR || join(tmpdir(), 'ovnkube-route-cluster');
}

/** The recorded state ({server, kubeconfig, pids: {etcd, apiserver}}) or null. */
export function readState(dir) {
  try {
    return JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
  } catch {
    return null;
  }
}

/** Whether `pid` is alive and runs the binary named `name` (checked through /proc). */
export function isOurs(pid, name) {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    const argv0 = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '';
    return argv0.endsWith(`/${name}`) || argv0 === name;
  } catch {
    return false;
  }
}
