// DirWatcher on the native inotify queue, without privileges (temp dirs): names created,
// renamed and removed are batched; with `content: false` a write to a file is not an event,
// with the default it is; a directory removed and made again is watched again and a rescan
// is asked for; a directory that does not exist yet is waited for. And parseInotifyEvents
// against hand-made struct inotify_event buffers.
import { mkdirSync, mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { DirWatcher } from '../../injector/discovery/watch.js';
import { IN, parseInotifyEvents } from '../../injector/kernel/netns.js';
import { memoryLogger } from '../../platform/log.js';
import { until } from './rig.js';

function watched(t: Test, content: boolean, dir?: string) {
  const root = mkdtempSync(join(tmpdir(), 'ovrt-dirwatch-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const at = dir ? join(root, dir) : root;
  const batches: string[][] = [];
  const warnings: string[] = [];
  let rescans = 0;
  const w = new DirWatcher(at, {
    log: memoryLogger('debug', (l) => {
      if (l.level === 'warn') warnings.push(l.msg);
    }),
    content,
    retryMs: 50,
    debounceMs: 5,
    onNames: (n) => batches.push([...n].sort()),
    onRewatch: () => {
      rescans++;
    },
  });
  t.teardown(() => w.close());
  const seen = (name: string) => batches.some((b) => b.includes(name));
  return { root, at, w, batches, warnings, seen, rescans: () => rescans };
}

for (const content of [false, true]) {
  t.test(`content: ${content}: names created, renamed and removed; writes ${content ? 'too' : 'not'}`, async (t) => {
    const { at, w, batches, seen } = watched(t, content);
    writeFileSync(join(at, 'old'), 'x');
    t.ok(w.start(), 'watching');
    writeFileSync(join(at, 'new'), 'x');
    await until('a created name', () => seen('new'), 10_000);
    renameSync(join(at, 'new'), join(at, 'moved'));
    await until('both names of a rename', () => seen('moved') && seen('new'), 10_000);
    const renamed = batches.length;
    unlinkSync(join(at, 'moved'));
    await until('a removed name', () => batches.slice(renamed).flat().includes('moved'), 10_000);
    // A write to a file that already existed, then a name made after it: once that name is
    // seen, the write's event (queued before it) has been read, if there was one.
    const before = batches.length;
    writeFileSync(join(at, 'old'), 'y');
    writeFileSync(join(at, 'marker'), '');
    await until('the marker', () => seen('marker'), 10_000);
    const after = batches.slice(before).flat();
    t.equal(after.includes('old'), content, content ? 'the write was an event' : 'the write was no event');
  });
}

t.test('a directory removed and made again is watched again, with a rescan', async (t) => {
  const { at, w, seen, warnings, rescans } = watched(t, false, 'd');
  mkdirSync(at);
  t.ok(w.start());
  t.equal(rescans(), 0, 'no rescan at the first watch');
  rmSync(at, { recursive: true });
  await until('the end of the watch is seen', () => warnings.includes('directory was removed or moved; watching for it again'), 10_000);
  mkdirSync(at);
  await until('watched again', () => w.watching, 10_000);
  t.equal(rescans(), 1, 'a rescan was asked for');
  writeFileSync(join(at, 'after'), '');
  await until('events of the new directory', () => seen('after'), 10_000);
});

t.test('a directory that does not exist yet is waited for', async (t) => {
  const { at, w, seen, warnings, rescans } = watched(t, false, 'later');
  t.notOk(w.start(), 'not watching yet');
  t.ok(warnings.includes('directory does not exist yet; waiting for it'));
  mkdirSync(at);
  await until('watching once it exists', () => w.watching, 10_000);
  t.equal(rescans(), 1, 'a rescan was asked for (files may have come with it)');
  writeFileSync(join(at, 'x'), '');
  await until('its events', () => seen('x'), 10_000);
});

t.test('parseInotifyEvents', async (t) => {
  // struct inotify_event: i32 wd, u32 mask, u32 cookie, u32 len, then len bytes (NUL-padded name).
  const ev = (mask: number, name: string, pad = 0): Buffer => {
    const n = name ? Buffer.from(name + '\0'.repeat(1 + pad)) : Buffer.alloc(0);
    const h = Buffer.alloc(16);
    h.writeInt32LE(1, 0);
    h.writeUInt32LE(mask, 4);
    h.writeUInt32LE(0, 8);
    h.writeUInt32LE(n.length, 12);
    return Buffer.concat([h, n]);
  };
  const cases: { name: string; buf: Buffer; want: { mask: number; name: string | null }[] }[] = [
    { name: 'empty', buf: Buffer.alloc(0), want: [] },
    { name: 'one name', buf: ev(IN.CREATE, 'cni-1'), want: [{ mask: IN.CREATE, name: 'cni-1' }] },
    { name: 'padded name', buf: ev(IN.DELETE, 'a', 14), want: [{ mask: IN.DELETE, name: 'a' }] },
    { name: 'no name (the directory itself)', buf: ev(IN.DELETE_SELF, ''), want: [{ mask: IN.DELETE_SELF, name: null }] },
    {
      name: 'several, overflow among them',
      buf: Buffer.concat([ev(IN.MOVED_FROM, 'x.tmp', 3), ev(IN.Q_OVERFLOW, ''), ev(IN.MOVED_TO, 'x')]),
      want: [
        { mask: IN.MOVED_FROM, name: 'x.tmp' },
        { mask: IN.Q_OVERFLOW, name: null },
        { mask: IN.MOVED_TO, name: 'x' },
      ],
    },
    { name: 'UTF-8 name', buf: ev(IN.CREATE, 'né'), want: [{ mask: IN.CREATE, name: 'né' }] },
    { name: 'a truncated header is not read', buf: ev(IN.CREATE, 'a').subarray(0, 10), want: [] },
  ];
  for (const c of cases) t.same(parseInotifyEvents(c.buf), c.want, c.name);
});
