/**
 * Entering network namespaces. This is the only module that calls setns(2): everything else
 * goes through `withNetns(path, fn)`, which opens the target, switches the calling thread
 * into it, runs `fn` synchronously, and always switches back and closes every fd.
 *
 * Why synchronous: setns(2) moves the *thread*, and JavaScript has one. While `fn` runs,
 * nothing else can run on the thread, so a netlink socket created inside `fn` is bound to
 * the target namespace and every other socket of the process is untouched. Awaiting inside
 * `fn` would let unrelated code run in the pod's namespace, so a thenable result is refused.
 *
 * Safety (model: istio's cni node agent): a path is accepted only if its realpath lies in
 * the configured netns dir and the opened namespace is not the host's (inode compare with
 * <procRoot>/self/ns/net and <procRoot>/1/ns/net). The check is made on the opened fd, so
 * the namespace that is checked is the one that is entered.
 */
import { closeSync, fstatSync, lstatSync, openSync, realpathSync, statSync, type Stats } from 'node:fs';
import { createRequire } from 'node:module';
import { sep } from 'node:path';
import { withCause } from '../../platform/errors.js';

/** Why a netns could not be used. */
export type NetnsErrorCode =
  | 'gone' // the path does not exist (any more): the pod or its sandbox went away
  | 'not-netns' // the path exists but is not a network namespace
  | 'host-netns' // the path is the host's own network namespace
  | 'outside-dir' // the path's realpath is not inside the configured netns dir
  | 'enter-failed'; // setns(2) refused (EPERM without CAP_SYS_ADMIN, ...)

/** Typed error for everything that can go wrong opening or entering a netns. */
export class NetnsError extends Error {
  override name = 'NetnsError';
  constructor(
    readonly code: NetnsErrorCode,
    readonly path: string,
    message: string,
    readonly errno?: string,
    cause?: unknown,
  ) {
    super(message, cause === undefined ? {} : { cause });
  }
}

/** True when `e` is a NetnsError (optionally of the given code). */
export function isNetnsError(e: unknown, code?: NetnsErrorCode): e is NetnsError {
  return e instanceof NetnsError && (code === undefined || e.code === code);
}

/** Where the safety checks look. Injectable so tests can use temp dirs. */
export interface NetnsPolicy {
  /** Only namespaces whose realpath is inside this dir are accepted (default /var/run/netns). */
  netnsDir: string;
  /** Root of procfs, for the host-netns comparison (default /proc). */
  procRoot?: string;
}

/** Identity of a namespace: device and inode of its nsfs file. Stable for its lifetime. */
export interface NetnsId {
  dev: number;
  ino: number;
}

/** Default netns dir of CNI runtimes (containerd, CRI-O). */
export const DEFAULT_NETNS_DIR = '/var/run/netns';

interface SetnsAddon {
  setns(fd: number, nstype: number): void;
  gettid(): number;
  socketInfo(fd: number): SocketInfo;
  socketQueue(fd: number): SocketQueue;
  rtnlOpen(rcvbuf: number): number;
  rtnlTalk(fd: number, request: Buffer, count: number, firstSeq: number, timeoutMs: number): Buffer;
  nlSubscribe(groups: number[], rcvbuf: number, onMessages: (buf: Buffer | null, error?: string) => void): object;
  inotifySubscribe(dir: string, content: boolean, onEvents: (buf: Buffer | null, error?: string) => void): object;
  subscriptionFd(sub: object): number;
  unsubscribe(sub: object): void;
  CLONE_NEWNET: number;
  AF_NETLINK: number;
  NETLINK_ROUTE: number;
}

/** What the kernel says about a socket fd (socketInfo). */
export interface SocketInfo {
  domain: number;
  protocol: number;
  sndbuf: number;
  rcvbuf: number;
  /** NETLINK_NO_ENOBUFS (0/1) on a netlink socket, -1 on any other. */
  noEnobufs: number;
}
let addon: SetnsAddon | undefined;

/** Load the native addon once, on first use (no module-level side effects). */
function native(): SetnsAddon {
  if (!addon) {
    const req = createRequire(import.meta.url);
    // dist/injector/kernel/netns.js -> <repo>/injector/native/build/Release/setns.node
    const file = new URL('../../../injector/native/build/Release/setns.node', import.meta.url);
    try {
      addon = req(file.pathname) as SetnsAddon;
    } catch (e) {
      throw new Error(withCause(`cannot load the setns addon at ${file.pathname} (run \`npm run build\`)`, e), { cause: e });
    }
  }
  return addon;
}

/** Kernel thread id of the caller (diagnostics: shows which thread setns moved). */
export function gettid(): number {
  return native().gettid();
}

/** inotify's event bits (linux/inotify.h), as inotifySubscribe's events carry them. */
export const IN = {
  MODIFY: 0x2,
  ATTRIB: 0x4,
  MOVED_FROM: 0x40,
  MOVED_TO: 0x80,
  CREATE: 0x100,
  DELETE: 0x200,
  DELETE_SELF: 0x400,
  MOVE_SELF: 0x800,
  UNMOUNT: 0x2000,
  Q_OVERFLOW: 0x4000,
  IGNORED: 0x8000,
} as const;

/** One inotify event: its mask, and the name in the directory (null: the directory itself, or an overflow). */
export interface DirEvent {
  mask: number;
  name: string | null;
}

/** The events of a buffer of concatenated struct inotify_event (wd, mask, cookie, len, then len bytes of NUL-padded name). */
export function parseInotifyEvents(buf: Buffer): DirEvent[] {
  const out: DirEvent[] = [];
  for (let o = 0; o + 16 <= buf.length;) {
    const mask = buf.readUInt32LE(o + 4);
    const len = buf.readUInt32LE(o + 12);
    const end = Math.min(o + 16 + len, buf.length);
    const nul = buf.indexOf(0, o + 16);
    out.push({ mask, name: len === 0 ? null : buf.toString('utf8', o + 16, nul < 0 || nul > end ? end : nul) });
    o = end;
  }
  return out;
}

/**
 * An inotify queue of the directory `dir`, watched on the event loop (not keeping it alive):
 * `onEvents` gets every event queued when it was readable, IN_Q_OVERFLOW included (fs.watch
 * drops it), or (null, errno name) after a read error. Names created, deleted and moved, and
 * the directory itself deleted or moved; with `content`, files written and attributes changed
 * too (what fs.watch asks for), which makes the watch's setup walk every dentry of the
 * directory, negative ones included: see setns.c. Throws (with .code) when `dir` cannot be
 * watched (ENOENT, ENOTDIR, ...).
 */
export function inotifySubscribe(
  dir: string,
  content: boolean,
  onEvents: (events: DirEvent[] | null, error?: string) => void,
): { close(): void } {
  const a = native();
  const sub = a.inotifySubscribe(dir, content, (buf, error) => onEvents(buf ? parseInotifyEvents(buf) : null, error));
  return { close: () => a.unsubscribe(sub) };
}

/** SO_DOMAIN, SO_PROTOCOL, buffer sizes and NETLINK_NO_ENOBUFS of a socket fd (throws ENOTSOCK/EBADF otherwise). */
export function socketInfo(fd: number): SocketInfo {
  return native().socketInfo(fd);
}

/** A socket's receive queue (SO_MEMINFO): bytes not read yet, and messages the kernel dropped. */
export interface SocketQueue {
  rmem: number;
  drops: number;
}

/** The receive queue of socket `fd` (one getsockopt): see SocketQueue. Throws EBADF/ENOTSOCK. */
export function socketQueue(fd: number): SocketQueue {
  return native().socketQueue(fd);
}

/**
 * A NETLINK_ROUTE socket of the calling thread's netns, for RtnlClient: its fd (close it with
 * fs.closeSync). NETLINK_CAP_ACK and NETLINK_EXT_ACK are set, and a receive buffer of `rcvbuf`
 * bytes when > 0. Call it inside withNetns to get one of a pod's netns.
 */
export function rtnlOpen(rcvbuf: number): number {
  return native().rtnlOpen(rcvbuf);
}

/**
 * One exchange on an rtnlOpen socket: `count` requests (sequence numbers firstSeq on) sent in
 * one sendmsg, and every reply until each has ended, concatenated (see setns.c). Synchronous:
 * rtnetlink answers inside sendmsg; it waits (poll) at most `timeoutMs` for anything late,
 * then throws ETIMEDOUT. Throws the errno (ENOBUFS, EBADF, ...) as `code`.
 */
export function rtnlTalk(fd: number, request: Buffer, count: number, firstSeq: number, timeoutMs: number): Buffer {
  return native().rtnlTalk(fd, request, count, firstSeq, timeoutMs);
}

/** An event socket made by nlSubscribe: its fd, and close() (idempotent, at once). */
export interface NetlinkSubscription {
  readonly fd: number;
  close(): void;
}

/**
 * A NETLINK_ROUTE event socket of the calling thread's netns (call inside withNetns) joined to
 * `groups`, with NETLINK_NO_ENOBUFS and a receive buffer of `rcvbuf` bytes set at creation,
 * watched on the event loop (keeping it alive until closed): `onMessages` gets every message
 * queued when the socket was readable, concatenated, in one call, or (null, errno name) after a
 * read error. See setns.c.
 */
export function nlSubscribe(
  groups: number[],
  rcvbuf: number,
  onMessages: (buf: Buffer | null, error?: string) => void,
): NetlinkSubscription {
  const a = native();
  const sub = a.nlSubscribe(groups, rcvbuf, onMessages);
  const fd = a.subscriptionFd(sub);
  return { fd, close: () => a.unsubscribe(sub) };
}

/** The kernel's AF_NETLINK and NETLINK_ROUTE numbers. */
export function netlinkConstants(): { AF_NETLINK: number; NETLINK_ROUTE: number } {
  const a = native();
  return { AF_NETLINK: a.AF_NETLINK, NETLINK_ROUTE: a.NETLINK_ROUTE };
}

function errCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

/** Open a netns path read-only (O_CLOEXEC is Node's default); ENOENT becomes a typed 'gone'. */
function openNetns(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (e) {
    const code = errCode(e);
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new NetnsError('gone', path, `netns ${path} does not exist (any more)`, code);
    throw new NetnsError('not-netns', path, withCause(`cannot open netns ${path}`, e), code, e);
  }
}

/** Identity of the namespace at `path`. Throws NetnsError('gone') when it does not exist. */
export function netnsInode(path: string): NetnsId {
  try {
    const st = statSync(path);
    return { dev: st.dev, ino: st.ino };
  } catch (e) {
    throw new NetnsError('gone', path, `netns ${path} does not exist (any more)`, errCode(e));
  }
}

/** Identities of the host's namespaces: <procRoot>/self/ns/net and <procRoot>/1/ns/net (those that can be read). */
export function hostNetnsInodes(procRoot = '/proc'): NetnsId[] {
  const out: NetnsId[] = [];
  for (const p of [`${procRoot}/self/ns/net`, `${procRoot}/1/ns/net`]) {
    try {
      const st = statSync(p);
      out.push({ dev: st.dev, ino: st.ino });
    } catch {
      // /proc/1 may be hidden (hidepid); self is always readable, so at least one is checked.
    }
  }
  return out;
}

/**
 * hostNetnsInodes, read once per proc root: the host's namespaces are the process's own
 * and PID 1's, which do not change while it runs (withNetns moves one thread for the span
 * of a call; /proc/self names the process). Every netns check of every pod sync and apply
 * asks, so two stats each time added up. Re-read while empty (an unreadable proc root).
 */
const hostIdsByRoot = new Map<string, NetnsId[]>();
function hostIds(procRoot = '/proc'): NetnsId[] {
  let ids = hostIdsByRoot.get(procRoot);
  if (!ids?.length) hostIdsByRoot.set(procRoot, (ids = hostNetnsInodes(procRoot)));
  return ids;
}

/**
 * Check a path against the policy without entering it: realpath inside netnsDir, a
 * namespace file (nsfs), not the host netns. Returns the realpath and identity. Throws
 * NetnsError ('gone', 'outside-dir', 'not-netns', 'host-netns').
 */
export function checkNetnsPath(path: string, policy: NetnsPolicy): { realPath: string; id: NetnsId } {
  const resolved = realInDir(path, policy);
  const real = resolved.real;
  // Nothing is entered, so a stat of the resolved path tells what an open and fstat would.
  let st;
  try {
    st = resolved.st ?? statSync(real);
  } catch (e) {
    const code = errCode(e);
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new NetnsError('gone', path, `netns ${path} does not exist (any more)`, code);
    throw new NetnsError('not-netns', path, withCause(`cannot stat netns ${path}`, e), code, e);
  }
  verifyNamespace(st, path, policy);
  return { realPath: real, id: { dev: st.dev, ino: st.ino } };
}

function realpathOf(path: string): string {
  try {
    return realpathSync.native(path);
  } catch (e) {
    try {
      lstatSync(path);
    } catch {
      throw new NetnsError('gone', path, `netns ${path} does not exist (any more)`, errCode(e));
    }
    // It exists but resolves to no file path: a magic link such as /proc/<pid>/ns/net.
    throw new NetnsError(
      'outside-dir',
      path,
      `netns ${path} does not resolve to a file (a /proc ns link?); only paths in the netns dir are accepted`,
      errCode(e),
    );
  }
}

/** The device of nsfs, the pseudo-filesystem every namespace file lives on. */
let nsfsDev: number | undefined;
function nsfsDevice(): number | undefined {
  if (nsfsDev === undefined) {
    try {
      nsfsDev = statSync('/proc/self/ns/net').dev;
    } catch {
      return undefined;
    }
  }
  return nsfsDev;
}

/**
 * The netns dir's realpath, resolved once per dir: it is the node's /run/netns, a hostPath
 * mount of the agent's pod, and does not move while the agent runs. Every check of every
 * pod sync resolves a path against it.
 */
const dirReal = new Map<string, string>();
function netnsDirReal(netnsDir: string): string {
  let dir = dirReal.get(netnsDir);
  if (dir === undefined) {
    dir = realpathOf(netnsDir);
    dirReal.set(netnsDir, dir);
  }
  return dir;
}

/**
 * The realpath and lstat of `path` when it names an entry of the netns dir itself (the dir as
 * the policy spells it, or its realpath, then one name) that is not a symlink: the realpath is
 * then the dir's (resolved once) and that name, and the lstat says what a stat would (a
 * bind-mounted namespace file is the mount's root either way). This is every path a runtime
 * gives, and one lstat (1.6 µs here) instead of a realpath, which resolves every component of
 * the path, and a stat (7 µs). Undefined for anything else, which the general way judges.
 */
function directEntry(path: string, policy: NetnsPolicy): { real: string; st: Stats } | undefined {
  const slash = path.lastIndexOf('/');
  if (slash <= 0) return undefined;
  const name = path.slice(slash + 1);
  if (name === '' || name === '.' || name === '..') return undefined;
  const parent = path.slice(0, slash);
  const dir = netnsDirReal(policy.netnsDir);
  if (parent !== policy.netnsDir && parent !== dir) return undefined;
  // Looked up by the dir's realpath: the same file, without walking /var/run's symlink again.
  const real = (dir.endsWith(sep) ? dir : dir + sep) + name;
  let st: Stats;
  try {
    st = lstatSync(real);
  } catch {
    return undefined; // gone, or not to be read: the general way says which
  }
  if (st.isSymbolicLink()) return undefined;
  return { real, st };
}

/**
 * The realpath of `path`, which must be inside the netns dir (else NetnsError 'outside-dir'),
 * and its lstat when an entry of the dir itself was recognised by it (directEntry).
 */
function realInDir(path: string, policy: NetnsPolicy): { real: string; st?: Stats } {
  const direct = directEntry(path, policy);
  if (direct) return direct;
  const dir = netnsDirReal(policy.netnsDir);
  const real = realpathOf(path);
  if (!real.startsWith(dir.endsWith(sep) ? dir : dir + sep)) {
    throw new NetnsError('outside-dir', path, `netns ${path} (realpath ${real}) is outside the netns dir ${dir}; refusing it`);
  }
  return { real };
}

/** Refuse a file that is not a namespace (not on nsfs), or that is the host's netns. */
function verifyNamespace(st: { dev: number; ino: number; isFile(): boolean }, path: string, policy: NetnsPolicy): void {
  const nsfs = nsfsDevice();
  if (nsfs !== undefined && st.dev !== nsfs) {
    throw new NetnsError(
      'not-netns',
      path,
      `netns ${path} is not a network namespace (a ${st.isFile() ? 'regular file' : 'file'} not on nsfs); refusing it`,
    );
  }
  for (const host of hostIds(policy.procRoot)) {
    if (host.dev === st.dev && host.ino === st.ino) {
      throw new NetnsError('host-netns', path, `netns ${path} is the host network namespace (inode ${st.ino}); refusing it`);
    }
  }
}

/**
 * Open `path` after the dir check, then check the opened fd is a namespace (on nsfs: a
 * regular file left in the netns dir is refused here, before anything tries to enter it,
 * so it is refused once like every other bad path) and not the host netns.
 */
function openChecked(path: string, policy: NetnsPolicy): { fd: number; realPath: string } {
  const { real } = realInDir(path, policy);
  const fd = openNetns(real);
  try {
    verifyNamespace(fstatSync(fd), path, policy);
    return { fd, realPath: real };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** Options of withNetns. */
export interface WithNetnsOptions {
  /** When given, the path is checked (dir + host refusal) on the fd that is entered. */
  policy?: NetnsPolicy;
}

/**
 * Run `fn` with the calling thread inside the network namespace at `path`, then switch back.
 *
 * `fn` must be synchronous: create netlink sockets in it, do the I/O after it returns (a
 * socket stays bound to the namespace it was created in). A thenable result is refused
 * with a TypeError, after the thread has been switched back.
 *
 * Guarantees: the thread is switched back and both fds are closed on every path, including
 * when `fn` throws. If switching back ever failed the process would be running in a pod's
 * namespace, so it aborts instead (the same fail-stop as a Go plugin discarding its thread).
 *
 * Errors: NetnsError with code 'gone' (vanished), 'not-netns', 'enter-failed', and with a
 * policy 'outside-dir' / 'host-netns'. Whatever `fn` throws is rethrown as is.
 */
export function withNetns<T>(path: string, fn: () => T, opts: WithNetnsOptions = {}): T {
  const addon = native();
  // The current thread's own namespace (not the process leader's: correct in worker threads too).
  const origFd = openNetns('/proc/thread-self/ns/net');
  let targetFd: number | undefined;
  try {
    targetFd = opts.policy ? openChecked(path, opts.policy).fd : openNetns(path);
    try {
      addon.setns(targetFd, addon.CLONE_NEWNET);
    } catch (e) {
      const code = errCode(e);
      const kind: NetnsErrorCode = code === 'EINVAL' ? 'not-netns' : 'enter-failed';
      throw new NetnsError(kind, path, withCause(`cannot enter netns ${path}`, e), code, e);
    }
    let result: T;
    try {
      result = fn();
    } finally {
      restore(addon, origFd, path);
    }
    if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
      throw new TypeError('withNetns: fn returned a promise; it must be synchronous (await outside withNetns)');
    }
    return result;
  } finally {
    if (targetFd !== undefined) closeSync(targetFd);
    closeSync(origFd);
  }
}

function restore(addon: SetnsAddon, origFd: number, path: string): void {
  try {
    addon.setns(origFd, addon.CLONE_NEWNET);
  } catch (e) {
    process.stderr.write(`FATAL: cannot switch the thread back from netns ${path}: ${(e as Error).message}; aborting\n`);
    process.abort();
  }
}
