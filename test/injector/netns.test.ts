// withNetns and the netns safety checks, on real namespaces.
import { mkdirSync, mkdtempSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import t from 'tap';
import { checkNetnsPath, gettid, hostNetnsInodes, isNetnsError, netnsInode, withNetns } from '../../injector/kernel/netns.js';
import { makeNetns, openFds } from '../util/netns.js';
import { rootUnavailable, tierGate } from '../util/tier.js';

const threadNs = (): number => statSync('/proc/thread-self/ns/net').ino;

t.test('withNetns', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const ns = makeNetns(t, 'enter');
  const host = threadNs();
  const target = netnsInode(ns.path).ino;
  t.not(target, host, 'the test netns is not the host netns');

  t.test('enters the namespace on this thread and switches back', async (t) => {
    const fds = openFds();
    const tid = gettid();
    const inside = withNetns(ns.path, () => ({ ino: threadNs(), tid: gettid() }));
    t.equal(inside.ino, target, 'inside fn the thread is in the target netns');
    t.equal(inside.tid, tid, 'same thread');
    t.equal(threadNs(), host, 'back in the original netns afterwards');
    t.equal(openFds(), fds, 'no fd leaked');
  });

  t.test('switches back and closes fds when fn throws', async (t) => {
    const fds = openFds();
    t.throws(
      () =>
        withNetns(ns.path, () => {
          throw new Error('boom');
        }),
      /boom/,
    );
    t.equal(threadNs(), host);
    t.equal(openFds(), fds);
  });

  t.test('refuses an async fn, after switching back', async (t) => {
    const fds = openFds();
    t.throws(() => withNetns(ns.path, async () => 1), TypeError);
    t.equal(threadNs(), host);
    t.equal(openFds(), fds);
  });

  t.test('a vanished netns is a typed error, not a crash', async (t) => {
    const gone = makeNetns(t, 'gone');
    const path = gone.path;
    gone.del();
    const fds = openFds();
    let err: unknown;
    try {
      withNetns(path, () => 1);
    } catch (e) {
      err = e;
    }
    t.ok(isNetnsError(err, 'gone'), `NetnsError gone: ${String(err)}`);
    t.throws(() => netnsInode(path), { code: 'gone' });
    t.equal(openFds(), fds);
    t.equal(threadNs(), host);
  });

  t.test('a file that is not a netns is refused by setns', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ovr-netns-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'plain'), '');
    t.throws(() => withNetns(join(dir, 'plain'), () => 1), { code: 'not-netns' });
    t.equal(threadNs(), host);
  });
});

t.test('policy: netns dir and host refusal', async (t) => {
  if (!tierGate(t, 'netns', rootUnavailable())) return;
  const ns = makeNetns(t, 'policy');
  const policy = { netnsDir: '/var/run/netns' };

  t.test('a netns inside the dir is accepted, by realpath', async (t) => {
    const r = checkNetnsPath(ns.path, policy);
    t.equal(r.id.ino, netnsInode(ns.path).ino);
    t.equal(
      withNetns(ns.path, () => threadNs(), { policy }),
      r.id.ino,
    );
  });

  t.test('a path outside the dir is refused, also through a symlink', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ovr-netnsdir-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    symlinkSync(ns.path, join(dir, 'link'));
    t.throws(() => checkNetnsPath(ns.path, { netnsDir: dir }), { code: 'outside-dir' }, 'real netns, other dir');
    t.throws(
      () => withNetns(join(dir, 'link'), () => 1, { policy: { netnsDir: dir } }),
      { code: 'outside-dir' },
      'a symlink inside the dir pointing out of it is judged by its target',
    );
    t.equal(
      checkNetnsPath(join(dir, 'link'), policy).realPath,
      realpathSync(ns.path),
      'a symlink into the dir is judged by its target too',
    );
  });

  t.test('an entry of the dir itself (one lstat) is judged as through its realpath', async (t) => {
    const real = realpathSync(ns.path);
    const name = basename(ns.path);
    const viaReal = checkNetnsPath(join(realpathSync('/var/run/netns'), name), policy);
    const viaPolicy = checkNetnsPath(join('/var/run/netns', name), policy);
    t.same(viaPolicy, viaReal, 'the dir as the policy spells it, or its realpath');
    t.equal(viaPolicy.realPath, real);
    t.same(viaPolicy.id, netnsInode(ns.path));
    // Entries of the dir that are not namespace files, or are symlinks: the answers of the
    // general way (a symlink is judged by its target).
    const dir = mkdtempSync(join(tmpdir(), 'ovr-netnsdir-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'plain'), '');
    mkdirSync(join(dir, 'sub'));
    symlinkSync(ns.path, join(dir, 'out'));
    symlinkSync(join(dir, 'plain'), join(dir, 'in'));
    const own = { netnsDir: dir };
    t.throws(() => checkNetnsPath(join(dir, 'plain'), own), { code: 'not-netns' }, 'a regular file');
    t.throws(() => checkNetnsPath(join(dir, 'sub'), own), { code: 'not-netns' }, 'a directory');
    t.throws(() => checkNetnsPath(join(dir, 'missing'), own), { code: 'gone' }, 'nothing');
    t.throws(() => checkNetnsPath(join(dir, 'out'), own), { code: 'outside-dir' }, 'a symlink out of the dir');
    t.throws(() => checkNetnsPath(join(dir, 'in'), own), { code: 'not-netns' }, 'a symlink to a file of the dir');
    t.throws(() => checkNetnsPath(join(dir, '..'), own), { code: 'outside-dir' }, '..');
  });

  t.test('/proc ns links are refused', async (t) => {
    t.throws(() => checkNetnsPath('/proc/self/ns/net', policy), { code: 'outside-dir' });
    t.throws(() => checkNetnsPath('/proc/1/ns/net', { netnsDir: '/proc' }), { code: 'outside-dir' });
  });

  t.test('the host netns is refused by inode, with an injected /proc root', async (t) => {
    // A fake procfs whose "self" netns is our test netns: the inode compare must refuse it.
    const proc = mkdtempSync(join(tmpdir(), 'ovr-proc-'));
    t.teardown(() => rmSync(proc, { recursive: true, force: true }));
    mkdirSync(join(proc, 'self', 'ns'), { recursive: true });
    symlinkSync(ns.path, join(proc, 'self', 'ns', 'net'));
    t.same(
      hostNetnsInodes(proc).map((x) => x.ino),
      [netnsInode(ns.path).ino],
    );
    t.throws(() => checkNetnsPath(ns.path, { ...policy, procRoot: proc }), { code: 'host-netns' });
    t.throws(() => withNetns(ns.path, () => 1, { policy: { ...policy, procRoot: proc } }), { code: 'host-netns' });
    t.ok(
      hostNetnsInodes().some((x) => x.ino === threadNs()),
      'the real /proc gives the real host netns',
    );
  });
});
