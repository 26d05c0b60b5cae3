import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Where kube-apiserver and etcd were found, or why they are not available. */
export type BinariesResult =
  { dir: string; source: string; reason?: undefined; fatal?: undefined } | { dir: null; reason: string; fatal?: boolean };

/** The repository root, from dist/test/cluster/ (where this file runs compiled). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const ensureScript = fileURLToPath(new URL('../../../scripts/controlplane/ensure.mjs', import.meta.url));

/**
 * Ask scripts/controlplane/ensure.mjs (the one implementation of the lookup order:
 * KUBEBUILDER_ASSETS or OVNKUBE_ROUTE_NODE_ASSETS, the cache, a build) for one set of
 * binaries: the control plane's (etcd, kube-apiserver) or the node's (kubelet, multus). With `allowBuild` a missing
 * build is made here and now, which takes many minutes the first time; its progress goes
 * to `log`. Resolves with the reason instead of rejecting when they cannot be had.
 */
export function findBinaries(opts: {
  allowBuild: boolean;
  set?: 'controlplane' | 'node' | 'cluster';
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
}): Promise<BinariesResult> {
  const args = [ensureScript, '--json', '--set', opts.set ?? 'controlplane'];
  if (!opts.allowBuild) args.push('--no-build');
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (opts.log) for (const l of d.toString().split('\n')) if (l.trim()) opts.log(l);
    });
    child.on('error', (e) => resolve({ dir: null, reason: `cannot run ${ensureScript}: ${e.message}`, fatal: true }));
    child.on('close', (code) => {
      try {
        const res = JSON.parse(out.trim().split('\n').pop() ?? '') as BinariesResult;
        resolve(res);
      } catch {
        resolve({ dir: null, reason: `${ensureScript} exited with ${code} and no answer: ${err.trim().slice(-2000)}`, fatal: true });
      }
    });
  });
}
