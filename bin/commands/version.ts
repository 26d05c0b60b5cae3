/**
 * `ovnkube-route version`: what is running (the package's version, the Node.js runtime, the
 * Route API and plan annotation versions it speaks), for bug reports and support.
 */
import { readFileSync } from 'node:fs';
import { parseFlags, UsageError, type Command } from '../cli.js';

const help = `Usage: ovnkube-route version [-o text|json]

Print the version of ovnkube-route, the Node.js runtime it runs on, and the versions of the
Route API (k8s.ovn.org/v1) and of the plan annotation (v1) it reads and writes.

Flags:
  -o, --output FORMAT   text (default) or json
  -h, --help            show this help
`;

/** package.json of the install (dist/bin/commands/ -> the package root). */
function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

export const versionCommand: Command = {
  name: 'version',
  summary: 'print the version of ovnkube-route, its Node.js runtime and the API versions it speaks',
  help,
  async run(argv, io) {
    const values = parseFlags(argv, { output: { type: 'string', short: 'o', default: 'text' } });
    const output = String(values.output);
    if (output !== 'text' && output !== 'json') throw new UsageError(`-o/--output: expected text or json, got "${output}"`);
    const v = {
      version: packageVersion(),
      node: process.version,
      platform: `${process.platform}/${process.arch}`,
      routeAPI: 'k8s.ovn.org/v1',
      planAnnotation: 'v1',
    };
    io.stdout.write(
      output === 'json'
        ? JSON.stringify(v) + '\n'
        : `ovnkube-route ${v.version} (node ${v.node}, ${v.platform}; Route API ${v.routeAPI}, plan annotation ${v.planAnnotation})\n`,
    );
    return 0;
  },
};
