#!/usr/bin/env node
// Entry point of the `ovnkube-route` CLI; all logic is in bin/main.ts so tests can call it.
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
// The long-running commands log through the process streams; the others write to the file
// descriptors (fdWriter in bin/main.ts: building process.stdout or .stderr costs a few ms of start-up).
const longRunning = argv[0] === 'agent' || argv[0] === 'webhook';
// stdin is a getter: process.stdin builds its stream (and loads some 25 internal modules) on first
// use, which only `-f -` and `--plan -` make.
process.exitCode = await main(argv, {
  stdout: longRunning ? process.stdout : fdWriter(1, () => process.stdout),
  stderr: longRunning ? process.stderr : fdWriter(2, () => process.stderr),
  get stdin() {
    return process.stdin;
  },
});
