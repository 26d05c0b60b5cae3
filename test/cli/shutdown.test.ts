// Bounded shutdown (issue #16, defect 7: the agent logged "stopping" on SIGTERM and had not
// exited 20 s later): runUntilSignal ends the process when shutdown overruns its grace
// period, whether run() hangs or something it left open keeps the event loop alive.
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import t from 'tap';
import { repoRoot } from '../util/fixtures.js';

const cli = resolve(repoRoot, 'dist', 'bin', 'cli.js');

/** A child running runUntilSignal with `body` as run(); SIGTERM once it says "running". */
async function sigterm(body: string, graceMs: number, signals = 1): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const src = `import { runUntilSignal } from ${JSON.stringify(cli)};
await runUntilSignal(async (signal) => { console.log('running'); ${body} }, { graceMs: ${graceMs} });
console.log('run finished');`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', src], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  let sent = 0;
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    // One signal at a time: the kernel merges a second one sent before the first is handled.
    if (stdout.includes('running') && sent === 0) {
      sent++;
      child.kill('SIGTERM');
    }
    if (stdout.includes('aborted') && sent === 1 && signals > 1) {
      sent++;
      child.kill('SIGTERM');
    }
  });
  const code = await new Promise<number | null>((r) => child.once('close', (c) => r(c)));
  return { code, stderr, stdout };
}

/** The JSON log lines of `stderr` (pino: level label, ISO time, fields, msg). */
const logLines = (stderr: string): Record<string, unknown>[] =>
  stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

t.test('run() that never finishes after the signal: the process exits with 1 and says why', async (t) => {
  const r = await sigterm('await new Promise(() => setInterval(() => {}, 1000));', 300);
  t.equal(r.code, 1);
  t.match(logLines(r.stderr), [
    { level: 'error', msg: 'shutdown did not finish within 0.3 s; exiting', runFinished: false, time: /^\d{4}-\d\d-\d\dT/ },
  ]);
  t.notMatch(r.stdout, /run finished/);
});

t.test('run() finished but left a handle open: the process still exits, with code 0', async (t) => {
  // The first interval stands for the service's server, the second for what it forgets to close.
  const r = await sigterm(
    'const s = setInterval(() => {}, 1000); await new Promise((res) => signal.addEventListener("abort", res)); clearInterval(s); setInterval(() => {}, 1000);',
    300,
  );
  t.equal(r.code, 0);
  t.match(r.stdout, /run finished/);
  t.match(logLines(r.stderr), [{ level: 'error', msg: 'shutdown did not finish within 0.3 s; exiting', runFinished: true }]);
});

t.test('a clean shutdown exits by itself, with nothing logged', async (t) => {
  const r = await sigterm(
    'const s = setInterval(() => {}, 1000); await new Promise((res) => signal.addEventListener("abort", res)); clearInterval(s);',
    60_000,
  );
  t.equal(r.code, 0);
  t.equal(r.stderr, '');
  t.match(r.stdout, /run finished/);
});

t.test('a second signal during a slow shutdown exits at once', async (t) => {
  const r = await sigterm(
    'signal.addEventListener("abort", () => console.log("aborted")); await new Promise(() => setInterval(() => {}, 1000));',
    600_000,
    2,
  );
  t.equal(r.code, 1);
  t.match(r.stderr, /second signal during shutdown; exiting/);
});
