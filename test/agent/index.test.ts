// The CNI cache index without privileges (a temp dir, inotify): entries appear, change and
// go with their files; half-written files are read again; non-pod files are ignored; a
// cache dir created after the start is picked up; lookups pin the pod UID and prefer the
// newest sandbox.
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { memoryLogger, silentLogger } from '../../platform/log.js';
import { CniCacheIndex, type PodRef } from '../../injector/discovery/discovery.js';
import { cacheFileText, makePodObject, until, writeCacheFile } from './rig.js';

function setup(t: Test, dir?: string) {
  const root = mkdtempSync(join(tmpdir(), 'ovrt-idx-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const cache = dir ?? root;
  const changes: PodRef[][] = [];
  const errors: string[] = [];
  const index = new CniCacheIndex(cache === root ? root : join(root, cache), {
    log: silentLogger,
    rescanMs: 0,
    onChange: (r) => changes.push(r),
    onParseError: (f) => errors.push(f),
  });
  t.teardown(() => index.close());
  return { root, dir: cache === root ? root : join(root, cache), index, changes, errors };
}

t.test('files appear, change and go', async (t) => {
  const { dir, index, changes } = setup(t);
  const pod = makePodObject({ name: 'p' });
  writeCacheFile(dir, pod, '/var/run/netns/early'); // before start: found by the initial scan
  await index.start();
  t.equal(index.lookup('default', 'p', pod.metadata!.uid)?.sandbox, '/var/run/netns/early');
  const file = writeCacheFile(dir, pod, '/var/run/netns/one', { network: 'k8s-pod-network', ifName: 'eth0' });
  utimesSync(file, new Date(), new Date(Date.now() + 5000));
  await until('newest sandbox wins', () => index.lookup('default', 'p')?.sandbox === '/var/run/netns/one');
  t.ok(
    changes.flat().some((r) => r.name === 'p' && r.uid === pod.metadata!.uid),
    'the change names the pod',
  );
  t.equal(index.lookup('default', 'p', 'another-uid'), null, 'another pod of the same name does not match');
  t.equal(index.lookup('other', 'p'), null);
  unlinkSync(file);
  await until('back to the remaining file', () => index.lookup('default', 'p')?.sandbox === '/var/run/netns/early');
  const seenAt = index.lookup('default', 'p')!.seenAt;
  // The clock must have moved on, or a reset seenAt would look the same.
  await until('the clock is past seenAt', () => Date.now() > seenAt + 5);
  writeCacheFile(dir, pod, '/var/run/netns/early'); // rewritten, same sandbox
  // Events are read in order: once a file written after the rewrite is indexed, the rewrite was read.
  writeCacheFile(dir, makePodObject({ name: 'marker' }), '/var/run/netns/marker');
  await until('a later file was read', () => index.lookup('default', 'marker') !== null);
  await index.settled();
  t.equal(index.lookup('default', 'p')!.seenAt, seenAt, 'a rewrite of the same sandbox keeps when it was first seen');
});

t.test('half-written files, foreign files, a dir created later', async (t) => {
  const { root, dir, index, errors } = setup(t, 'results');
  await index.start();
  t.notOk(index.watching, 'no dir yet: not watching');
  mkdirSync(dir);
  await until('watching once the dir exists', () => index.watching, 10_000);
  const pod = makePodObject({ name: 'late' });
  const text = cacheFileText(pod, '/var/run/netns/late');
  const file = join(dir, 'cni-loopback-x-lo');
  writeFileSync(file, text.slice(0, 50));
  await until('the half file was tried', () => errors.length === 1);
  t.equal(index.lookup('default', 'late'), null, 'nothing from half a file');
  writeFileSync(file, text);
  await until('read again when complete', () => index.lookup('default', 'late')?.sandbox === '/var/run/netns/late');
  writeFileSync(join(dir, 'cni-cache-runtime-net'), JSON.stringify({ kind: 'cniCacheV1', cniArgs: [], result: {} }));
  writeFileSync(join(dir, 'garbage'), 'not json');
  await until('garbage counted', () => errors.length === 2);
  t.equal(index.size, 1, 'only the pod sandbox is indexed');
  rmSync(dir, { recursive: true });
  await until(
    'dir gone: entries dropped once it is back and rescanned',
    async () => {
      if (!index.watching) mkdirSync(dir, { recursive: true });
      await index.rescan();
      return index.size === 0;
    },
    10_000,
  );
  t.ok(root, 'done');
});

// Issue #16, defect 4: a 50 MB cache file doubled the agent's RSS and was re-read at every start.
t.test('a cache file over the size cap is refused unread, reported once per content, and taken once it shrinks', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'ovrt-idx-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const warnings: string[] = [];
  const tooLarge: [string, number][] = [];
  const log = memoryLogger('debug', (l) => {
    if (l.level === 'warn') warnings.push(`${l.msg} ${JSON.stringify(l)}`);
  });
  const index = new CniCacheIndex(root, { log, rescanMs: 0, onChange: () => {}, onTooLarge: (f, n) => tooLarge.push([f, n]) });
  t.teardown(() => index.close());
  await index.start();
  const pod = makePodObject({ name: 'big' });
  const text = cacheFileText(pod, '/var/run/netns/big');
  const file = join(root, 'cni-big');
  writeFileSync(file, text + ' '.repeat(2 * 1024 * 1024)); // valid JSON, padded past 1 MiB
  await until('the big file was refused', () => tooLarge.length === 1, 10_000);
  t.same(tooLarge[0], ['cni-big', text.length + 2 * 1024 * 1024]);
  t.equal(index.lookup('default', 'big'), null, 'not indexed');
  await index.rescan();
  await index.rescan();
  t.equal(tooLarge.length, 1, 'the same content is reported once, however often it is seen');
  t.equal(warnings.filter((w) => w.includes('larger than the cap')).length, 1);
  t.match(warnings[0], /"maxBytes":1048576/);
  writeFileSync(file, text);
  await until('indexed once it is a normal size', () => index.lookup('default', 'big')?.sandbox === '/var/run/netns/big', 10_000);
});

// Issue #16, defect 3: libuv drops IN_Q_OVERFLOW, so a burst past the inotify queue lost
// events silently until the 5-minute backstop rescan.
t.test('an inotify queue overflow is detected, logged, counted, and rescanned at once', async (t) => {
  const { DirWatcher } = await import('../../injector/discovery/watch.js');
  const { readFileSync } = await import('node:fs');
  const root = mkdtempSync(join(tmpdir(), 'ovrt-overflow-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const warnings: string[] = [];
  let overflows = 0;
  let rescans = 0;
  const names = new Set<string>();
  const log = memoryLogger('debug', (l) => {
    if (l.level === 'warn') warnings.push(l.msg);
  });
  const w = new DirWatcher(root, {
    log,
    onNames: (n) => n.forEach((x) => names.add(x)),
    onOverflow: () => {
      overflows++;
    },
    onRewatch: () => {
      rescans++;
    },
  });
  t.ok(w.start(), 'watching');
  t.teardown(() => w.close());
  writeFileSync(join(root, 'first'), 'x');
  await until('a normal event arrives', () => names.has('first'), 10_000);
  t.equal(overflows, 0, 'no overflow for a normal event');
  // Block the event loop while creating more files than the queue holds: libuv cannot read.
  const max = Number(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8'));
  for (let i = 0; i < max + 1000; i++) writeFileSync(join(root, `f${i}`), '');
  await until('the overflow is detected', () => overflows >= 1, 30_000);
  t.ok(rescans >= 1, 'a rescan was asked for');
  t.ok(warnings.includes('inotify queue overflowed: events were lost; rescanning the directory now'), 'logged');
  t.comment(`max_queued_events ${max}; events seen ${names.size} of ${max + 1001}`);
});
