#!/usr/bin/env node
// The kubectl plugin: kubectl finds executables named kubectl-<name> on PATH, and a "-" in
// the command maps to "_" in the file name, so `kubectl ovnkube-route explain --pod ns/web`
// runs this file with `explain --pod ns/web`. It is the same CLI (bin/main.ts); kubectl's
// own global flags are not passed to plugins, so give --kubeconfig/--context/-n after the
// command, or set KUBECONFIG.
import { enablePrivateCompileCache } from './compile-cache.js';

// V8's code cache on disk, in a folder only this user can write (bin/compile-cache.ts:
// ~/.cache/ovnkube-route, or $NODE_COMPILE_CACHE; off with NODE_DISABLE_COMPILE_CACHE=1): a
// run after the first skips compiling what it loads, the largest part of this CLI's start-up.
enablePrivateCompileCache();
// The built CLI is a bundle (scripts/bundle-cli.mjs): with OVNKUBE_ROUTE_DEBUG=1 its stack
// traces name the TypeScript sources, through the bundle's source maps.
if (process.env.OVNKUBE_ROUTE_DEBUG === '1') process.setSourceMapsEnabled(true);
const { main, fdWriter } = await import('./main.js');

const argv = process.argv.slice(2);
// As in bin/ovnkube-route.ts: the long-running commands log through the process streams.
const longRunning = argv[0] === 'agent' || argv[0] === 'webhook';
process.exitCode = await main(
  argv,
  {
    stdout: longRunning ? process.stdout : fdWriter(1, () => process.stdout),
    stderr: longRunning ? process.stderr : fdWriter(2, () => process.stderr),
    // A getter: process.stdin builds its stream on first use (only `-f -` and `--plan -`).
    get stdin() {
      return process.stdin;
    },
  },
  'kubectl ovnkube-route',
);
