import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A server process of the control plane, started in its own process group. */
export interface ServerProcess {
  name: string;
  pid: number;
  logPath: string;
  child: ChildProcess | null;
  /** Resolves with how the process ended (exit code or signal name). */
  exited: Promise<string>;
}

/**
 * Start `bin args` in a new process group (so stopping it also stops anything it forked),
 * with stdout and stderr in `<dir>/<name>.log` and its pid in `<dir>/<name>.pid`, where the
 * reaper and `cluster:down` find it. `keep` detaches it from this process entirely (cluster:up).
 */
export function startServer(dir: string, name: string, bin: string, args: string[], keep: boolean): ServerProcess {
  const logPath = join(dir, `${name}.log`);
  const fd = openSync(logPath, 'w');
  let child: ChildProcess;
  try {
    child = spawn(bin, args, { detached: true, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  // spawn reports ENOENT/EACCES asynchronously; fold that into `exited`.
  const exited = new Promise<string>((resolve) => {
    child.once('error', (e) => resolve(`failed to start: ${e.message}`));
    child.once('exit', (code, sig) => resolve(sig ? `killed by ${sig}` : `exited with code ${code}`));
  });
  if (child.pid === undefined) return { name, pid: -1, logPath, child, exited };
  writeFileSync(join(dir, `${name}.pid`), `${child.pid}\n`);
  if (keep) child.unref();
  return { name, pid: child.pid, logPath, child, exited };
}

/** The last `lines` lines of a log, for error messages. */
export function logTail(path: string, lines = 25): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function signalGroup(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Whether a process still runs (a zombie, dead but not yet reaped by its new parent, does not). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ..."; comm may hold spaces or parentheses, so split at the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

/**
 * Stop a process group: SIGTERM, then SIGKILL after `graceMs`. Works for a child of this
 * process (waits for its exit event) and for a pid only (cluster:down polls until it is gone).
 */
export async function stopGroup(pid: number, child: ChildProcess | null, graceMs = 10_000): Promise<void> {
  if (pid <= 0) return;
  const gone = child
    ? new Promise<void>((r) => {
        if (child.exitCode !== null || child.signalCode !== null) r();
        else child.once('exit', () => r());
      })
    : (async () => {
        while (alive(pid)) await new Promise((r) => setTimeout(r, 100));
      })();
  if (!signalGroup(pid, 'SIGTERM')) return;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((r) => {
    timer = setTimeout(() => r(true), graceMs);
  });
  if (await Promise.race([gone.then(() => false), timedOut])) {
    signalGroup(pid, 'SIGKILL');
    await gone;
  }
  clearTimeout(timer);
  // Anything else left in the group (nothing is expected) goes too.
  signalGroup(pid, 'SIGKILL');
}

// The reaper is a tiny shell loop outside our process group: when this process dies in a
// way no exit handler sees (SIGKILL, a tap timeout), it stops the servers whose pid files
// are in `dir` and removes `dir`. On a normal stop() we kill the reaper ourselves.
const REAPER = `
parent=$1; dir=$2
# A dead parent its own parent has not reaped yet is a zombie (state Z): count it as gone.
while kill -0 "$parent" 2>/dev/null && [ "$(sed 's/.*) //' /proc/"$parent"/stat 2>/dev/null | cut -c1)" != Z ]; do sleep 1; done
# dash's kill takes no "--": -SIG first, then the negative pid of the group.
for f in "$dir"/*.pid; do [ -f "$f" ] && kill -TERM -"$(cat "$f")" 2>/dev/null; done
sleep 5
for f in "$dir"/*.pid; do [ -f "$f" ] && kill -KILL -"$(cat "$f")" 2>/dev/null; done
rm -rf "$dir"
`;

/** Start the reaper for `dir` (see REAPER); returns its pid. */
export function startReaper(dir: string): number {
  const child = spawn('sh', ['-c', REAPER, 'ovnkube-route-reaper', String(process.pid), dir], { detached: true, stdio: 'ignore' });
  child.unref();
  return child.pid ?? -1;
}

/** Synchronous last-resort cleanup, for process.on('exit'): SIGKILL the groups, remove dir. */
export function killNow(pids: number[], reaper: number, dir: string): void {
  for (const pid of pids) if (pid > 0) signalGroup(pid, 'SIGKILL');
  if (reaper > 0) signalGroup(reaper, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
