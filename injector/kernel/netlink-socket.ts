/**
 * Creating the `netlink` package's rtnetlink sockets, for netlink.ts and netlink-events.ts.
 *
 * Why not plain createRtNetlink(): when a netlink socket's receive buffer overflows, the
 * kernel flags the socket with ENOBUFS, epoll reports an error, and the package's poll
 * handler builds its error object from a NULL string, which throws inside native code and
 * aborts the whole process (measured: ~300 unanswered requests, or an event storm, on the
 * default 208 KiB buffer). The package does not tell us its fd, so we find it and give it
 * NETLINK_NO_ENOBUFS plus a larger buffer: an overflow then only drops messages (requests time
 * out, events are repaired by the caller's resync) instead of killing the agent.
 *
 * How the fd is found, in O(1) whatever the number of open fds (the old way listed
 * /proc/self/fd twice per socket: ~35 ms with 500 fds open, most of the agent's CPU):
 *  1. guess: the kernel gives a new socket the lowest free fd, so ask the addon for it
 *     (fcntl(F_DUPFD, 0) + close) just before createRtNetlink(), synchronously;
 *  2. verify that the guessed fd is an AF_NETLINK / NETLINK_ROUTE socket, and that it is *this*
 *     socket: set a marker send-buffer size through the package's own setter and read it back
 *     through the guessed fd (then restore the original size). A libuv worker thread opening
 *     or closing an fd between guess and creation makes the guess wrong; the check catches it;
 *  3. only then harden it. Any failure closes the socket and throws: never an unhardened socket.
 */
import type * as netlink from 'netlink';
import { createRtNetlink } from './netlink-lite.js';
import { withCause } from '../../platform/errors.js';
import { hardenNetlinkFd, lowestFreeFd, netlinkConstants, socketInfo, withNetns, type NetnsPolicy } from './netns.js';

export interface SocketOptions {
  policy?: NetnsPolicy;
  /** Receive buffer in bytes (default 1 MiB). */
  rcvbuf?: number;
  /** Keep the event loop alive while the socket is open (event subscriptions). */
  ref?: boolean;
  /** Tests only: replaces the lowest-free-fd guess (to show a wrong guess is refused). */
  guessFd?: () => number;
}

/** The fd of each socket made here (tests and diagnostics read it with socketFd). */
const fds = new WeakMap<netlink.RtNetlinkSocket, number>();

/** The kernel fd of a socket made by createRtnlSocket (undefined for any other). */
export function socketFd(sock: netlink.RtNetlinkSocket): number | undefined {
  return fds.get(sock);
}

let markerSeq = 0;

/** Throw unless `fd` is the package socket `sock` (an AF_NETLINK / NETLINK_ROUTE socket carrying our marker). */
function verifyIsSocket(fd: number, sock: netlink.RtNetlinkSocket): void {
  const { AF_NETLINK, NETLINK_ROUTE } = netlinkConstants();
  let info;
  try {
    info = socketInfo(fd);
  } catch (e) {
    throw new Error(withCause(`guessed fd ${fd} is not a socket`, e), { cause: e });
  }
  if (info.domain !== AF_NETLINK || info.protocol !== NETLINK_ROUTE) {
    throw new Error(`guessed fd ${fd} is not an rtnetlink socket (domain ${info.domain}, protocol ${info.protocol})`);
  }
  const raw = sock.socket;
  const orig = raw.getSendBufferSize();
  // A marker size no other socket is likely to hold (distinct per call, never the original).
  let marker = 4096 + 8 * (markerSeq++ % 2048) + 4;
  if (marker * 2 === orig) marker += 8;
  raw.setSendBufferSize(marker);
  try {
    const set = raw.getSendBufferSize();
    const seen = socketInfo(fd).sndbuf;
    if (set === orig || seen !== set) throw new Error(`guessed fd ${fd} is another rtnetlink socket (send buffer ${seen}, ours ${set})`);
  } finally {
    // Back to the size it had (the kernel doubles what is set; the default is below the max).
    raw.setSendBufferSize(Math.floor(orig / 2));
  }
}

/**
 * Create a hardened rtnetlink socket in the netns at `path` (null: the current netns).
 * Throws NetnsError for a bad path; if the new fd cannot be identified or hardened, the
 * socket is closed and an Error is thrown (never an unhardened socket).
 */
export function createRtnlSocket(path: string | null, opts: SocketOptions = {}): netlink.RtNetlinkSocket {
  // (The package's typings wrongly require the buffer sizes; they are optional at run time.)
  const sockOpts = (opts.ref ? { ref: true } : {}) as Parameters<typeof createRtNetlink>[0];
  const create = (): netlink.RtNetlinkSocket => {
    // Synchronous from here to the end: no other JavaScript can open an fd in between.
    const guess = opts.guessFd ? opts.guessFd() : lowestFreeFd();
    const sock = createRtNetlink(sockOpts);
    try {
      verifyIsSocket(guess, sock);
      hardenNetlinkFd(guess, opts.rcvbuf ?? 1 << 20);
    } catch (e) {
      sock.socket.close();
      throw new Error(withCause('cannot harden the netlink socket', e), { cause: e });
    }
    fds.set(sock, guess);
    return sock;
  };
  return path === null ? create() : withNetns(path, create, opts.policy ? { policy: opts.policy } : {});
}
