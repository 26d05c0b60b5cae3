/**
 * stdout and stderr for the CLI's short commands, written straight to the file descriptor
 * (fs.writeSync). process.stdout and process.stderr are built on first use, and building one
 * loads Node's stream modules (and `net` for a pipe): a few ms of a command that prints a page.
 * Node writes to files and pipes synchronously on Linux too, so the bytes and their order are
 * the same. On any error (EAGAIN from a descriptor someone made non-blocking, EPIPE, EBADF...)
 * the rest of that write and every later one go through the process stream, which handles
 * them as it always did; anything else asked of the writer (on, once, fd, isTTY...) is the
 * process stream's too. The long-running commands (agent, webhook) get the process streams
 * themselves (bin/ovnkube-route.ts).
 */
import { writeSync } from 'node:fs';

export function fdWriter(fd: 1 | 2, stream: () => NodeJS.WritableStream): NodeJS.WritableStream {
  let fallback: NodeJS.WritableStream | undefined;
  const write = (chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
    if (!fallback) {
      if (rest.length === 0) {
        const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
        let off = 0;
        try {
          while (off < buf.length) off += writeSync(fd, buf, off);
          return true;
        } catch {
          chunk = buf.subarray(off);
        }
      }
      // An encoding or callback argument, or an error: the process stream from here on.
      fallback = stream();
    }
    return (fallback.write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
  };
  return new Proxy({} as NodeJS.WritableStream, {
    get: (_, key) => {
      if (key === 'write') return write;
      const s = fallback ?? stream();
      const v: unknown = Reflect.get(s, key);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(s) : v;
    },
  });
}
