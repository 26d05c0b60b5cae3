/**
 * Link, address, route and rule events of one network namespace (multicast groups LINK,
 * IPV4_IFADDR, IPV6_IFADDR, IPV4_ROUTE, IPV6_ROUTE, IPV4_RULE, IPV6_RULE), for three jobs of
 * the agent: applying a route as soon as its missing dev appears, noticing drift (someone
 * deleted or changed an owned route), and knowing when its own view of the table may be
 * stale (an address going takes the routes using it as their source with it, and the kernel
 * announces no route event for those).
 *
 * Events come on a socket of their own, created inside withNetns like every socket of
 * ours: on the request socket they would be mistaken for parts of a dump. The socket is
 * hardened (netlink-socket.ts): if a storm overflows its buffer, events are dropped
 * silently rather than aborting the process, so a subscriber must also resync periodically
 * (RouteKeeper does); `queue()` tells whether that happened (the kernel counts every
 * message it dropped for the socket) and whether events are still waiting to be read.
 * 'overflow' reports any other socket error or an unparsable event.
 */
import type * as netlink from 'netlink';
import { rt } from './netlink-lite.js';
import { socketQueue, type NetnsPolicy, type SocketQueue } from './netns.js';
import { createRtnlSocket, socketFd } from './netlink-socket.js';
import {
  addrIndexFromIfaddr,
  linkFromIfinfo,
  routeFromRtmsg,
  ruleFromMessage,
  type KernelRoute,
  type KernelRule,
  type LinkInfo,
} from './netlink-codec.js';

/** One event of a netns. `route` events carry the route as the kernel reported it. */
export type NetnsEvent =
  | { kind: 'link'; action: 'new' | 'del'; link: LinkInfo }
  | { kind: 'route'; action: 'new' | 'del'; route: KernelRoute }
  | { kind: 'rule'; action: 'new' | 'del'; rule: KernelRule }
  /** An address of `index` came or went (only its link: what a subscriber needs to know is that one changed). */
  | { kind: 'addr'; action: 'new' | 'del'; family: number; index: number }
  | { kind: 'overflow'; error: string };

/** A live subscription; close() it when the pod or its netns goes away (it keeps the netns alive). */
export interface NetnsSubscription {
  close(): void;
  readonly closed: boolean;
  /**
   * The socket's receive queue now: bytes of events not delivered yet, and how many events
   * the kernel dropped for it since it was opened (an overflow). One getsockopt.
   */
  queue(): SocketQueue;
}

export interface SubscribeOptions {
  policy?: NetnsPolicy;
  /** Receive buffer size in bytes (default 4 MiB) so bursts of route events are not dropped. */
  recvBufferSize?: number;
}

/**
 * Subscribe to the link and route events of the netns at `path`. The socket is created
 * synchronously (inside withNetns) so no event after this call returns is missed. It keeps
 * the event loop alive until closed. Throws NetnsError when the path is gone or refused.
 */
export function subscribeNetns(path: string, onEvent: (ev: NetnsEvent) => void, opts: SubscribeOptions = {}): NetnsSubscription {
  const sock = createRtnlSocket(path, {
    ref: true,
    rcvbuf: opts.recvBufferSize ?? 4 << 20,
    ...(opts.policy ? { policy: opts.policy } : {}),
  });
  let closed = false;
  const raw = sock.socket;
  // Must always have an 'error' listener: otherwise the package throws from native code and aborts.
  raw.socket.on('error', (e: NodeJS.ErrnoException) => {
    if (!closed) onEvent({ kind: 'overflow', error: e.code ?? e.message });
  });
  try {
    sock.addMembership(rt.MulticastGroups.LINK);
    sock.addMembership(rt.MulticastGroups.IPV4_IFADDR);
    sock.addMembership(rt.MulticastGroups.IPV6_IFADDR);
    sock.addMembership(rt.MulticastGroups.IPV4_ROUTE);
    sock.addMembership(rt.MulticastGroups.IPV6_ROUTE);
    // Policy rules too: the symmetric return paths' `ip rule`s are kept like our routes.
    sock.addMembership(rt.MulticastGroups.IPV4_RULE);
    sock.addMembership(rt.MulticastGroups.IPV6_RULE);
  } catch (e) {
    raw.close();
    throw e;
  }
  // Raw messages keep their type (NEW vs DEL), which the parsed 'message' event drops.
  raw.on('message', (msgs) => {
    if (closed) return;
    for (const m of msgs) {
      let ev: NetnsEvent | null = null;
      try {
        // Links and routes are read from the raw payload (the fields we use), as in dumps.
        if (m.type === rt.MessageType.NEWLINK || m.type === rt.MessageType.DELLINK) {
          const link = linkFromIfinfo(m.data);
          if (!link) throw new Error(`short link message (${m.data.length} bytes)`);
          ev = { kind: 'link', action: m.type === rt.MessageType.NEWLINK ? 'new' : 'del', link };
        } else if (m.type === rt.MessageType.NEWROUTE || m.type === rt.MessageType.DELROUTE) {
          const route = routeFromRtmsg(m.data);
          if (route) ev = { kind: 'route', action: m.type === rt.MessageType.NEWROUTE ? 'new' : 'del', route };
        } else if (m.type === rt.MessageType.NEWADDR || m.type === rt.MessageType.DELADDR) {
          const index = addrIndexFromIfaddr(m.data);
          if (index === null) throw new Error(`short address message (${m.data.length} bytes)`);
          ev = { kind: 'addr', action: m.type === rt.MessageType.NEWADDR ? 'new' : 'del', family: m.data[0]!, index };
        } else if (m.type === rt.MessageType.NEWRULE || m.type === rt.MessageType.DELRULE) {
          const rule = ruleFromMessage(rt.parseMessage(m.type, m.data) as netlink.rt.RuleMessage);
          if (rule) ev = { kind: 'rule', action: m.type === rt.MessageType.NEWRULE ? 'new' : 'del', rule };
        }
      } catch (e) {
        ev = { kind: 'overflow', error: `unparsable event: ${(e as Error).message}` };
      }
      if (ev) onEvent(ev);
    }
  });
  return {
    close() {
      if (closed) return;
      closed = true;
      raw.close();
    },
    get closed() {
      return closed;
    },
    queue() {
      return socketQueue(socketFd(sock)!);
    },
  };
}
