/**
 * The iproute2 name of our rtnetlink protocol: a file `ovnkube-route.conf` in the host's
 * /etc/iproute2/rt_protos.d/ holding "111 ovnkube-route", so that `ip route` on the node (in
 * a pod's netns, entered with `ip netns exec` or nsenter) prints `proto ovnkube-route`
 * instead of `proto 111`. This is a file of the host's /etc, not network state: writing it
 * is allowed (the agent never writes into the host netns). The DaemonSet mounts the host's
 * /etc/iproute2/rt_protos.d and passes --rt-protos-dir; the agent writes the file at start
 * (atomically, and only when its content differs) and leaves it in place at exit.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RTPROT_OVNKUBE_ROUTE } from './routes/engine.js';

export const RT_PROTOS_FILE = 'ovnkube-route.conf';
export const RT_PROTOS_NAME = 'ovnkube-route';

/** The file's content. */
export function rtProtosContent(): string {
  return `# Written by the ovnkube-route node agent: the rtnetlink protocol of the routes it owns.\n${RTPROT_OVNKUBE_ROUTE}\t${RT_PROTOS_NAME}\n`;
}

/** Write DIR/ovnkube-route.conf (DIR is created when missing); returns whether it was (re)written. */
export function installRtProtos(dir: string): { file: string; written: boolean } {
  const file = join(dir, RT_PROTOS_FILE);
  const want = rtProtosContent();
  let have: string | undefined;
  try {
    have = readFileSync(file, 'utf8');
  } catch {
    /* absent */
  }
  if (have === want) return { file, written: false };
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const tmp = join(dir, `.${RT_PROTOS_FILE}.${process.pid}.tmp`);
  writeFileSync(tmp, want, { mode: 0o644 });
  renameSync(tmp, file);
  return { file, written: true };
}
