#!/usr/bin/env node
// The kubectl plugin: kubectl finds executables named kubectl-<name> on PATH, and a "-" in
// the command maps to "_" in the file name, so `kubectl ovnkube-route explain --pod ns/web`
// runs this file with `explain --pod ns/web`. It is the same CLI (bin/main.ts); kubectl's
// own global flags are not passed to plugins, so give --kubeconfig/--context/-n after the
// command, or set KUBECONFIG.
import { main } from './main.js';

process.exitCode = await main(
  process.argv.slice(2),
  { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin },
  'kubectl ovnkube-route',
);
