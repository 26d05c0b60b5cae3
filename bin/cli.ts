import { parseArgs, type ParseArgsConfig } from 'node:util';

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
    throw new UsageError((e as Error).message);
  }
}

/**
 * Run a long-lived service until SIGTERM or SIGINT aborts the signal it is given; the
 * handlers are removed afterwards so tests can run several services in one process.
 */
export async function runUntilSignal(run: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  try {
    await run(ac.signal);
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
  }
}
