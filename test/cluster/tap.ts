import tap, { type Test } from 'tap';
import { tierGate } from '../util/tier.js';
import { findBinaries } from './binaries.js';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from './controlplane.js';

/** The tier name e2e tests report under when the control plane cannot be had. */
export const E2E_TIER = 'e2e (real kube-apiserver)';

// Upper bound for a first build that a test file has to do itself (normally
// scripts/controlplane/ensure.mjs has built before tap starts).
const BUILD_TIMEOUT_MS = 60 * 60_000;

/**
 * Give the test a running control plane and stop it in t.teardown. Resolves null when the
 * binaries are absent and cannot be built (no Go): the e2e tier is then gated through
 * tierGate (a failure under CI, a loud skip elsewhere). When the binaries are absent but Go
 * is here, they are built first, with tap's per-file timeout raised for the build's length.
 * A control plane that has binaries but fails to start rejects: that is a test failure.
 */
export async function withControlPlane(t: Test, opts: Omit<ControlPlaneOptions, 'keep'> = {}): Promise<ControlPlane | null> {
  const log = (line: string) => t.comment(line);
  let binDir = opts.binDir;
  if (!binDir) {
    let found = await findBinaries({ allowBuild: false });
    if (found.dir === null && !found.fatal) {
      // Raise the whole file's time limit (the runner is told through tap's IPC) for the
      // build, then hand the usual limit back.
      const usual = Number(process.env.TAP_TIMEOUT ?? '30') * 1000;
      tap.setTimeout(BUILD_TIMEOUT_MS);
      t.comment('control plane binaries missing: building them now (run `node scripts/controlplane/ensure.mjs` before tap to avoid this)');
      try {
        found = await findBinaries({ allowBuild: true, log });
      } finally {
        tap.setTimeout(usual);
      }
    }
    if (found.dir === null) {
      if (found.fatal) throw new Error(`control plane binaries: ${found.reason}`);
      tierGate(t, E2E_TIER, found.reason);
      return null;
    }
    binDir = found.dir;
  }
  const cp = await startControlPlane({ ...opts, binDir, log: opts.log ?? log });
  t.teardown(() => cp.stop());
  return cp;
}
