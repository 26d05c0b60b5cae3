import { spawn, spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { cliPath, repoRoot } from './fixtures.js';
import { nodeCommand } from './node-child.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the real built CLI (dist/bin/ovnkube-route.js) as a child process (without the test runner's loader: node-child.ts). */
export function runCli(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): CliResult {
  const r = spawnSync(...nodeCommand([cliPath, ...args]), {
    cwd: repoRoot,
    input: opts.input ?? '',
    env: { ...process.env, ...opts.env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Run the real built CLI as a child process, asynchronously (so several can run at once). */
export function runCliAsync(args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(...nodeCommand([cliPath, ...args]), {
      cwd: repoRoot,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** Run `items` through `fn`, at most `n` at a time, results in input order. */
export async function pool<T, R>(items: T[], n: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

class Collect extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

/**
 * Run the CLI's main() in this process, for tests that run many commands against a server
 * (a spawn per command costs the client library's load each time). `env` is applied to
 * process.env for the duration of the call (calls must not overlap).
 */
export async function runCliInProcess(args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  const { main } = await import('../../bin/main.js');
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  const stdout = new Collect();
  const stderr = new Collect();
  try {
    const code = await main(args, { stdout, stderr, stdin: process.stdin });
    return { code, stdout: stdout.text, stderr: stderr.text };
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}
