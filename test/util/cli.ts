import { spawnSync } from 'node:child_process';
import { cliPath, repoRoot } from './fixtures.js';

export interface CliResult { code: number; stdout: string; stderr: string }

/** Run the real built CLI (dist/bin/ovnkube-route.js) as a child process. */
export function runCli(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): CliResult {
  const r = spawnSync(process.execPath, [cliPath, ...args], {
    cwd: repoRoot, input: opts.input ?? '', env: { ...process.env, ...opts.env }, encoding: 'utf8', timeout: 120_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
