/** Small file helpers shared by CLI commands. */
import { readFileSync } from 'node:fs';
import { InputError, type CommandIO } from './cli.js';

/**
 * Read a file (or stdin for "-"); a missing/unreadable file is an InputError naming it.
 * Takes the CommandIO, not its stdin: io.stdin is read only for "-" (the entry points make it a
 * getter, since building process.stdin loads some 25 internal modules).
 */
export async function readInput(file: string, io: Pick<CommandIO, 'stdin'>): Promise<string> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const c of io.stdin) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
    return Buffer.concat(chunks).toString('utf8');
  }
  try {
    // Sync: node:fs/promises would load some 15 more internal modules at every start.
    return readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new InputError(`${file}: cannot read: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  }
}
