#!/usr/bin/env node
// Make sure kube-apiserver and etcd (or, with --set node, kubelet and multus; with --set
// cluster, kube-controller-manager, kube-scheduler, kube-proxy, kubectl and helm) are available
// for the e2e tiers, building them from the Go module proxy when needed
// (scripts/controlplane/binaries.mjs has the lookup order). Run it before tap so that the
// long first build never runs inside a test's time limit:
//   node scripts/controlplane/ensure.mjs            find or build; prints the folder
//   node scripts/controlplane/ensure.mjs --set node the node's binaries instead
//   node scripts/controlplane/ensure.mjs --set cluster  the rest of the cluster's (and helm)
//   node scripts/controlplane/ensure.mjs --json     same, as JSON ({dir, source} or {dir: null, reason})
//   node scripts/controlplane/ensure.mjs --no-build only look; exit 3 when absent
// Exit codes: 0 found/built, 1 build failed, 2 bad usage, 3 absent (--no-build, or no Go).
// Without Go and outside CI, a missing control plane is not an error of this script (exit 3):
// the e2e tier then reports itself skipped with the reason. Under CI=true it exits 1.
import { parseArgs } from 'node:util';
import { ensure } from './binaries.mjs';

const usage = 'usage: ensure.mjs [--set controlplane|node|cluster] [--json] [--no-build] [--quiet]';
let values;
try {
  ({ values } = parseArgs({
    options: {
      set: { type: 'string', default: 'controlplane' },
      json: { type: 'boolean' },
      'no-build': { type: 'boolean' },
      quiet: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  }));
} catch (e) {
  console.error(`${e.message}\n${usage}`);
  process.exit(2);
}
if (values.help) {
  console.log(usage);
  process.exit(0);
}
const what = {
  controlplane: 'kube-apiserver and etcd',
  node: 'kubelet and multus',
  cluster: 'kube-controller-manager, kube-scheduler, kube-proxy, kubectl and helm',
}[values.set];
if (!what) {
  console.error(`--set ${values.set}: expected controlplane, node or cluster\n${usage}`);
  process.exit(2);
}
const log = (m) => {
  if (!values.quiet) process.stderr.write(`[controlplane] ${m}\n`);
};
const ci = process.env.CI === 'true' || process.env.CI === '1';
let res;
try {
  res = await ensure(process.env, { allowBuild: !values['no-build'], log, set: values.set });
} catch (e) {
  if (values.json) console.log(JSON.stringify({ dir: null, reason: e.message, fatal: true }));
  console.error(`[controlplane] ${e.message}`);
  process.exit(1);
}
if (values.json) console.log(JSON.stringify(res));
else if (res.dir) console.log(res.dir);
if (res.dir) {
  log(`${what}: ${res.dir} (${res.source})`);
  process.exit(0);
}
log(`${what} unavailable: ${res.reason}`);
process.exit(res.fatal || (ci && !values['no-build']) ? 1 : 3);
