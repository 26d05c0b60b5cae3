// The CNI cache index without privileges (a temp dir, inotify): entries appear, change and
// go with their files; half-written files are read again; non-pod files are ignored; a
// cache dir created after the start is picked up; lookups pin the pod UID and prefer the
// newest sandbox.
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { silentLogger } from '../../injector/agent-log.js';
import { CniCacheIndex, type PodRef } from '../../injector/discovery.js';
import { cacheFileText, makePodObject, until, writeCacheFile } from './rig.js';

function setup(t: Test, dir?: string) {
  const root = mkdtempSync(join(tmpdir(), 'ovrt-idx-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const cache = dir ?? root;
  const changes: PodRef[][] = [];
  const errors: string[] = [];
  const index = new CniCacheIndex(cache === root ? root : join(root, cache), {
    log: silentLogger, rescanMs: 0, onChange: (r) => changes.push(r), onParseError: (f) => errors.push(f),
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
  t.ok(changes.flat().some((r) => r.name === 'p' && r.uid === pod.metadata!.uid), 'the change names the pod');
  t.equal(index.lookup('default', 'p', 'another-uid'), null, 'another pod of the same name does not match');
  t.equal(index.lookup('other', 'p'), null);
  unlinkSync(file);
  await until('back to the remaining file', () => index.lookup('default', 'p')?.sandbox === '/var/run/netns/early');
  const seenAt = index.lookup('default', 'p')!.seenAt;
  writeCacheFile(dir, pod, '/var/run/netns/early'); // rewritten, same sandbox
  await index.settled();
  await new Promise((r) => setTimeout(r, 60));
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
  await until('dir gone: entries dropped once it is back and rescanned', async () => {
    if (!index.watching) mkdirSync(dir, { recursive: true });
    await index.rescan();
    return index.size === 0;
  }, 10_000);
  t.ok(root, 'done');
});
