/** Small file helpers shared by CLI commands. */
import { readFile } from 'node:fs/promises';
import { InputError } from './cli.js';

/** Read a file (or stdin for "-"); a missing/unreadable file is an InputError naming it. */
export async function readInput(file: string, stdin: NodeJS.ReadableStream): Promise<string> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const c of stdin) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
    return Buffer.concat(chunks).toString('utf8');
  }
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new InputError(`${file}: cannot read: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  }
}
