// fdWriter (bin/main.ts): the short commands write stdout and stderr straight to the file descriptors;
// the bytes and their order must be those of the process streams, and any write the
// descriptor refuses goes to the process stream instead.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { fdWriter } from '../../bin/main.js';
import { repoRoot } from '../util/fixtures.js';

t.test('writes reach the descriptor in order with the process stream, text and bytes alike', async (t) => {
  const mod = pathToFileURL(join(repoRoot, 'dist', 'bin', 'main.js')).href;
  const script =
    `const { fdWriter } = await import(${JSON.stringify(mod)});\n` +
    'const out = fdWriter(1, () => process.stdout);\n' +
    'const err = fdWriter(2, () => process.stderr);\n' +
    "out.write('a'); process.stdout.write('b'); out.write('ü€\\n'); out.write(new Uint8Array([0x7a, 0x0a]));\n" +
    "err.write('e1 '); process.stderr.write('e2 '); err.write('e3\\n');\n" +
    "out.write('x'.repeat(300000) + '\\n');\n";
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, 'abü€\nz\n' + 'x'.repeat(300000) + '\n', 'stdout: every byte, in order (a pipe, past its buffer)');
  t.equal(r.stderr, 'e1 e2 e3\n', 'stderr: in order');

  // To a file as well.
  const dir = mkdtempSync(join(tmpdir(), 'ovr-stdio-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const fd = openSync(join(dir, 'out'), 'w');
  const f = spawnSync(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', fd, 'pipe'], timeout: 60_000 });
  closeSync(fd);
  t.equal(f.status, 0);
  t.equal(readFileSync(join(dir, 'out'), 'utf8'), 'abü€\nz\n' + 'x'.repeat(300000) + '\n', 'stdout to a file: the same bytes');
});

t.test('a write the descriptor refuses, and every later one, goes to the process stream', async (t) => {
  const got: string[] = [];
  let built = 0;
  const stream = {
    write(c: string | Uint8Array) {
      got.push(Buffer.from(c).toString());
      return true;
    },
    fd: 'the stream',
  } as unknown as NodeJS.WritableStream;
  // Descriptor 1023 is not open in this process: EBADF.
  const w = fdWriter(1023 as 1, () => {
    built++;
    return stream;
  });
  t.equal(built, 0, 'the process stream is not built before it is needed');
  t.ok(w.write('one\n'));
  t.ok(w.write('two\n'));
  t.same(got, ['one\n', 'two\n'], 'both writes went to the stream');
  t.equal(built, 1, 'built once');
  t.equal((w as unknown as { fd: string }).fd, 'the stream', 'other properties are those of the stream');
});

t.test('a write with an encoding or a callback is the process stream’s', async (t) => {
  const calls: unknown[][] = [];
  const stream = {
    write(...a: unknown[]) {
      calls.push(a);
      return true;
    },
  } as unknown as NodeJS.WritableStream;
  const w = fdWriter(1, () => stream);
  const cb = () => {};
  w.write('x', cb);
  t.same(calls, [['x', cb]], 'handed over with its arguments');
});
