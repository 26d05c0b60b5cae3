/**
 * Creating the `netlink` package's rtnetlink sockets, for netlink.ts and netlink-events.ts.
 *
 * Why not plain createRtNetlink(): when a netlink socket's receive buffer overflows, the
 * kernel flags the socket with ENOBUFS, epoll reports an error, and the package's poll
 * handler builds its error object from a NULL string, which throws inside native code and
 * aborts the whole process (measured: ~300 unanswered requests, or an event storm, on the
 * default 208 KiB buffer). We cannot reach the package's fd directly, so the socket is
 * created inside withNetns, found as the one new socket fd, and given NETLINK_NO_ENOBUFS plus a
 * larger buffer: an overflow then only drops messages (requests time out, events are
 * repaired by the caller's resync) instead of killing the agent.
 */
import { readdirSync, readlinkSync } from 'node:fs';
import netlink from 'netlink';
import { hardenNetlinkFd, withNetns, type NetnsPolicy } from './netns.js';

const { createRtNetlink } = netlink;

/** The process's socket fds as "fd socket:[inode]" (the listing's own dir fd is no socket). */
function socketFds(): Map<string, number> {
  const out = new Map<string, number>();
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${name}`);
      if (target.startsWith('socket:')) out.set(`${name} ${target}`, Number(name));
    } catch {
      // the listing's own fd is already closed
    }
  }
  return out;
}

export interface SocketOptions {
  policy?: NetnsPolicy;
  /** Receive buffer in bytes (default 1 MiB). */
  rcvbuf?: number;
  /** Keep the event loop alive while the socket is open (event subscriptions). */
  ref?: boolean;
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
    // Synchronous from here to the end: no other code can open an fd in between.
    const before = socketFds();
    const sock = createRtNetlink(sockOpts);
    const fresh = [...socketFds()].filter(([key]) => !before.has(key)).map(([, fd]) => fd);
    try {
      if (fresh.length !== 1) throw new Error(`expected the netlink socket to be the one new fd, found ${fresh.length}`);
      hardenNetlinkFd(fresh[0]!, opts.rcvbuf ?? 1 << 20);
    } catch (e) {
      sock.socket.close();
      throw new Error(`cannot harden the netlink socket: ${(e as Error).message}`);
    }
    return sock;
  };
  return path === null ? create() : withNetns(path, create, opts.policy ? { policy: opts.policy } : {});
}
