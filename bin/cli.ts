import { parseArgs, type ParseArgsConfig } from 'node:util';
import { closest } from '../core/suggest.js';

export { closest } from '../core/suggest.js';
import type { Logger } from '../platform/log.js';

/**
 * Shared conventions for `ovnkube-route` commands: every command module exports a Command;
 * errors that are the user's fault are thrown as UsageError / InputError and printed on
 * stderr by the dispatcher (stdout stays empty on failure).
 */
export interface Command {
  name: string;
  /** One line for the top-level --help. */
  summary: string;
  /** Full --help text of the command. */
  help: string;
  /** Runs the command; resolves to the exit code. */
  run(argv: string[], io: CommandIO): Promise<number>;
}

export interface CommandIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
}

/** Bad flags or arguments: exit 2, print the message and a pointer to --help. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Bad input data (file contents, objects): exit 1, message names file/entry/field. */
export class InputError extends Error {
  override name = 'InputError';
}

/**
 * Parse a command's flags strictly (no positionals); a parse error — an unknown flag, a
 * missing value — becomes a UsageError naming it.
 */
export function parseFlags<const T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, strict: true as const, allowPositionals: false as const }).values;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const typed = /Unknown option '([^']+)'/.exec(err.message)?.[1] ?? '';
      const names = Object.entries(options).flatMap(([long, o]) => [`--${long}`, ...(o.short ? [`-${o.short}`] : [])]);
      const bare = typed.split('=')[0]!;
      const guess = closest(bare.replace(/^-+/, '').toLowerCase(), Object.keys(options));
      throw new UsageError(`Unknown option '${bare}'${guess ? `; did you mean '--${guess}'?` : ` (flags: ${names.join(', ')})`}`, {
        cause: e,
      });
    }
    if (err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      const arg = /Unexpected argument '([^']+)'/.exec(err.message)?.[1] ?? '';
      throw new UsageError(`unexpected argument '${arg}': this command takes only flags`, { cause: e });
    }
    throw new UsageError(err.message, { cause: e });
  }
}

/**
 * Run a long-lived service until SIGTERM or SIGINT aborts the signal it is given; the
 * handlers are removed afterwards so tests can run several services in one process.
 *
 * Shutdown is bounded: if the process is still alive `graceMs` after the signal (run() has
 * not finished, or something it left open keeps the event loop alive), `onOverrun` runs;
 * by default it logs that on stderr and exits (code 1 when run() had not finished). A
 * second signal exits the same way at once. The timer is unref'd: it never delays an exit.
 */
export async function runUntilSignal(
  run: (signal: AbortSignal) => Promise<void>,
  opts: { graceMs?: number; onOverrun?: (finished: boolean, graceMs: number) => void } = {},
): Promise<void> {
  const graceMs = opts.graceMs ?? 20_000;
  // pino is loaded here, not at the top: the offline commands never pay for it.
  const onOverrun = opts.onOverrun ?? defaultOverrun((await import('../platform/log.js')).createLogger(process.stderr));
  const ac = new AbortController();
  let finished = false;
  const stop = (): void => {
    if (ac.signal.aborted) {
      onOverrun(finished, 0);
      return;
    }
    ac.abort();
    setTimeout(() => onOverrun(finished, graceMs), graceMs).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  try {
    await run(ac.signal);
  } finally {
    finished = true;
    // Kept while run() shuts down, so a second signal still ends the process.
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
  }
}

const defaultOverrun =
  (log: Logger) =>
  (finished: boolean, graceMs: number): void => {
    const why = graceMs === 0 ? 'second signal during shutdown' : `shutdown did not finish within ${graceMs / 1000} s`;
    log.error({ runFinished: finished }, `${why}; exiting`);
    process.exit(finished ? (typeof process.exitCode === 'number' ? process.exitCode : 0) : 1);
  };
