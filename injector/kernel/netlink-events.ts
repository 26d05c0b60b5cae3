/**
 * Link, address, route and rule events of one network namespace (multicast groups LINK,
 * IPV4_IFADDR, IPV6_IFADDR, IPV4_ROUTE, IPV6_ROUTE, IPV4_RULE, IPV6_RULE), for three jobs of
 * the agent: applying a route as soon as its missing dev appears, noticing drift (someone
 * deleted or changed an owned route), and knowing when its own view of the table may be
 * stale (an address going takes the routes using it as their source with it, and the kernel
 * announces no route event for those).
 *
 * Events come on a socket of their own, created inside withNetns like every socket of
 * ours: on the request socket they would be mistaken for answers. It is the native addon's
 * (nlSubscribe), made with its options set: NETLINK_NO_ENOBUFS, so a storm that overflows its
 * buffer drops events silently instead of failing the socket, and a subscriber must also
 * resync periodically (RouteKeeper does); `queue()` tells whether that happened (the kernel
 * counts every message it dropped for the socket) and whether events are still waiting to be
 * read. Whenever the socket is readable, everything queued is read at once and handed over in
 * one call (the `netlink` package's socket read each message twice, a peek for its size and
 * then the read, and delivered each by its own callback). 'overflow' reports any other socket
 * error or an unparsable event.
 */
import type * as netlink from 'netlink';
import { rt } from './netlink-lite.js';
import { nlSubscribe, socketQueue, withNetns, type NetnsPolicy, type SocketQueue } from './netns.js';
import {
  addrIndexFromIfaddr,
  linkFromIfinfo,
  routeFromRtmsg,
  ruleFromMessage,
  walkMessages,
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
  /** The event socket's fd (diagnostics and tests). */
  readonly fd: number;
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
  let closed = false;
  const G = rt.MulticastGroups;
  // Policy rules too: the symmetric return paths' `ip rule`s are kept like our routes.
  const groups = [G.LINK, G.IPV4_IFADDR, G.IPV6_IFADDR, G.IPV4_ROUTE, G.IPV6_ROUTE, G.IPV4_RULE, G.IPV6_RULE];
  const onMessages = (buf: Buffer | null, error?: string): void => {
    if (closed) return;
    if (!buf) {
      onEvent({ kind: 'overflow', error: error ?? 'EIO' });
      return;
    }
    const bad = walkMessages(buf, (type, _flags, _seq, data) => {
      const ev = eventOf(type, data);
      if (ev) onEvent(ev);
      return closed; // the subscriber may let go in its handler
    });
    if (bad >= 0 && !closed) {
      onEvent({ kind: 'overflow', error: `unparsable event: a message of ${buf.readUInt32LE(bad)} bytes at ${bad} of ${buf.length}` });
    }
  };
  const sub = withNetns(
    path,
    () => nlSubscribe(groups, opts.recvBufferSize ?? 4 << 20, onMessages),
    opts.policy ? { policy: opts.policy } : {},
  );
  return {
    close() {
      if (closed) return;
      closed = true;
      sub.close();
    },
    get closed() {
      return closed;
    },
    fd: sub.fd,
    queue() {
      return socketQueue(sub.fd);
    },
  };
}

/** One message of the event socket as an event (null: not one we follow); links and routes read from the raw payload, as in dumps. */
function eventOf(type: number, data: Buffer): NetnsEvent | null {
  const T = rt.MessageType;
  try {
    if (type === T.NEWLINK || type === T.DELLINK) {
      const link = linkFromIfinfo(data);
      if (!link) throw new Error(`short link message (${data.length} bytes)`);
      return { kind: 'link', action: type === T.NEWLINK ? 'new' : 'del', link };
    }
    if (type === T.NEWROUTE || type === T.DELROUTE) {
      const route = routeFromRtmsg(data);
      return route ? { kind: 'route', action: type === T.NEWROUTE ? 'new' : 'del', route } : null;
    }
    if (type === T.NEWADDR || type === T.DELADDR) {
      const index = addrIndexFromIfaddr(data);
      if (index === null) throw new Error(`short address message (${data.length} bytes)`);
      return { kind: 'addr', action: type === T.NEWADDR ? 'new' : 'del', family: data[0]!, index };
    }
    if (type === T.NEWRULE || type === T.DELRULE) {
      const rule = ruleFromMessage(rt.parseMessage(type, data) as netlink.rt.RuleMessage);
      return rule ? { kind: 'rule', action: type === T.NEWRULE ? 'new' : 'del', rule } : null;
    }
  } catch (e) {
    return { kind: 'overflow', error: `unparsable event: ${(e as Error).message}` };
  }
  return null;
}
