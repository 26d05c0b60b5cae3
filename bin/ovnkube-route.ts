#!/usr/bin/env node
// Entry point of the `ovnkube-route` CLI; all logic is in bin/main.ts so tests can call it.
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin });
