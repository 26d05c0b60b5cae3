#!/usr/bin/env node
// Entry point of the `ovnkube-route` CLI; all logic is in bin/main.ts so tests can call it.
import { enableCompileCache } from 'node:module';

// V8's code cache on disk (Node's default dir, or $NODE_COMPILE_CACHE; off with
// NODE_DISABLE_COMPILE_CACHE=1): a run after the first skips compiling what it loads,
// the largest part of this CLI's start-up.
enableCompileCache();
const { main } = await import('./main.js');

process.exitCode = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin });
