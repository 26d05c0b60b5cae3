// Hostile entries in the CNI cache dir (issue #16), beyond those of test/agent/discover and
// index tests (host netns, bind mounts, paths outside the netns dir, another pod's netns,
// half-written and oversized files): a FIFO (whose blocking open would hang a read thread
// for good), symlinks (to a valid cache file elsewhere, and to /dev/zero), garbage,
// truncated JSON, an empty file, a directory. None is indexed, the refusals are logged once
// each, and a good file written after all of them is indexed: the index carried on.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { memoryLogger } from '../../platform/log.js';
import { CniCacheIndex } from '../../injector/discovery/discovery.js';
import { cacheFileText, makePodObject, until } from '../agent/rig.js';

t.test('FIFOs, symlinks, garbage, truncated and empty files, a directory: refused; a good file after them is indexed', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'ovrt-hostile-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, 'results');
  mkdirSync(dir);
  const warnings: string[] = [];
  const unparsable: string[] = [];
  const log = memoryLogger('warn', ({ msg, level, time, ...f }) => {
    if (level === 'warn') warnings.push(`${msg} ${JSON.stringify(f)}`);
  });
  const index = new CniCacheIndex(dir, { log, rescanMs: 0, onChange: () => {}, onParseError: (e: string) => unparsable.push(e) });
  t.teardown(() => index.close());
  await index.start();

  const pod = (name: string) => makePodObject({ name });
  execFileSync('mkfifo', [join(dir, 'cni-loopback-fifo-lo')]);
  const elsewhere = join(root, 'elsewhere');
  writeFileSync(elsewhere, cacheFileText(pod('via-symlink'), '/var/run/netns/via-symlink'));
  symlinkSync(elsewhere, join(dir, 'cni-loopback-symlink-lo'));
  symlinkSync('/dev/zero', join(dir, 'cni-loopback-zero-lo'));
  writeFileSync(join(dir, 'cni-loopback-garbage-lo'), Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0x22, 0x01, 0x80]));
  writeFileSync(join(dir, 'cni-loopback-truncated-lo'), cacheFileText(pod('truncated'), '/var/run/netns/truncated').slice(0, 120));
  writeFileSync(join(dir, 'cni-loopback-empty-lo'), '');
  mkdirSync(join(dir, 'cni-loopback-dir-lo'));
  writeFileSync(join(dir, 'cni-loopback-good-lo'), cacheFileText(pod('good'), '/var/run/netns/good'));

  await until('the good file, written last, is indexed', () => index.lookup('default', 'good')?.sandbox === '/var/run/netns/good', 10_000);
  await until(
    'the FIFO and the symlinks are refused, with a log line',
    () =>
      warnings.some((w) => w.includes('not a regular file') && w.includes('fifo')) &&
      warnings.some((w) => w.includes('a symlink') && w.includes('cni-loopback-symlink-lo')) &&
      warnings.some((w) => w.includes('a symlink') && w.includes('cni-loopback-zero-lo')),
    10_000,
  );
  await index.rescan();
  await index.rescan();
  t.equal(index.lookup('default', 'via-symlink'), null, 'a symlink is never followed');
  t.equal(index.lookup('default', 'truncated'), null, 'a truncated file is not indexed');
  t.ok(
    warnings.some((w) => w.includes('not a regular file') && w.includes('cni-loopback-dir-lo')),
    'the directory too',
  );
  t.equal(
    warnings.filter((w) => w.includes('not a regular file') || w.includes('a symlink')).length,
    4,
    'each refusal logged once, however often it is seen',
  );
  t.ok(unparsable.length >= 1, 'unparsable files reported');
  t.equal(index.lookup('default', 'good')?.sandbox, '/var/run/netns/good', 'the good file is still indexed');
});
