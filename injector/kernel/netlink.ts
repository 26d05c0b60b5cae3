/**
 * The one netlink wrapper (model: containernetworking's `netlinksafe`). Every rtnetlink
 * request of the injector goes through RtnlClient, so these rules live in one place:
 *
 * - The socket is created inside `withNetns`, so it is bound to the pod's namespace; all
 *   I/O happens afterwards, on the host thread, outside withNetns.
 * - It is a socket of our own (the native addon's rtnlOpen), and each exchange with the
 *   kernel is synchronous (rtnlTalk): rtnetlink handles a request inside sendmsg, so its
 *   replies are queued when sendmsg returns, and a dump's next part is made as the previous
 *   one is read. A batch of requests made together goes out in one sendmsg, at most
 *   `maxInFlight` (MAX_IN_FLIGHT_CAP) of them, so their replies always fit the receive
 *   buffer; should they not, the read fails with ENOBUFS at once (the socket is not told to
 *   ignore overflows) instead of waiting.
 * - A dump (list links/routes/rules/addresses) is an exchange of its own.
 * - Kernel errors become NetlinkError with the errno name as `code` (EEXIST, ESRCH,
 *   ENETUNREACH, ENODEV, ...) and the kernel's own explanation when it gives one (extended
 *   ACK). A request never hangs: a reply the kernel has not queued is waited for at most
 *   `timeoutMs` (ETIMEDOUT), and close() rejects the requests not sent yet.
 * - Event subscriptions have a socket of their own too (netlink-events.ts, nlSubscribe),
 *   watched on the event loop.
 */
import { closeSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import type * as netlink from 'netlink';
import { AttrStream, FlagsNew, rt } from './netlink-lite.js';
import { rtnlOpen, rtnlTalk, withNetns, type NetnsPolicy } from './netns.js';
import {
  addrFromMessage,
  afOf,
  encodeRouteMessage,
  NLMSG_HEADER,
  walkAttrs,
  walkMessages,
  ipToBytes,
  linkFromIfinfo,
  RTM_GETLINK,
  RTM_GETROUTE,
  RTM_NEWLINK,
  RTM_NEWROUTE,
  routeFromRtmsg,
  routeFromMessage,
  routeKeyToMessage,
  routeWriteToMessage,
  ruleFromMessage,
  ruleWriteToMessage,
  RT_TABLE_MAIN,
  type Family,
  type KernelAddr,
  type KernelRoute,
  type KernelRule,
  type LinkInfo,
  type RouteKey,
  type RouteWrite,
  type RuleWrite,
} from './netlink-codec.js';

/** errno names we map explicitly; any other errno keeps its name as the code. */
export type NetlinkErrorCode =
  'EEXIST' | 'ESRCH' | 'ENETUNREACH' | 'ENODEV' | 'EINVAL' | 'EPERM' | 'EBUSY' | 'ENOBUFS' | 'ETIMEDOUT' | 'ECLOSED' | (string & {});

const MEANING: Record<string, string> = {
  EEXIST: 'a route with this destination and metric already exists',
  ESRCH: 'no such route',
  ENETUNREACH: 'the gateway is not reachable from that device',
  ENODEV: 'no such device',
  ENETDOWN: 'the device is down',
  EINVAL: 'the kernel rejected the request as invalid',
  EPERM: 'not permitted (needs CAP_NET_ADMIN in the netns)',
  ENOBUFS: 'the netlink socket buffer overflowed',
  ETIMEDOUT: 'no answer from the kernel in time',
  ECLOSED: 'the netlink client was closed',
};

/** A failed netlink request: `code` is the errno name, `op` what was attempted. */
export class NetlinkError extends Error {
  override name = 'NetlinkError';
  constructor(
    readonly code: NetlinkErrorCode,
    readonly op: string,
    readonly netns: string,
    /** The kernel's own explanation (its extended ACK), when it gave one. */
    readonly kernel?: string,
  ) {
    super(`${op} in netns ${netns}: ${code}${MEANING[code] ? ` (${MEANING[code]})` : ''}${kernel ? `; the kernel says: ${kernel}` : ''}`);
  }
}

/** True when `e` is a NetlinkError (optionally with the given code). */
export function isNetlinkError(e: unknown, code?: NetlinkErrorCode): e is NetlinkError {
  return e instanceof NetlinkError && (code === undefined || e.code === code);
}

/** Netlink header flags and message types (linux/netlink.h, linux/rtnetlink.h). */
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
/** NLM_F_DUMP (NLM_F_ROOT | NLM_F_MATCH): every object of the kind asked. */
const NLM_F_DUMP = 0x300;
/** In an NLMSG_ERROR: the request was not copied back (NETLINK_CAP_ACK) / extended-ACK attributes follow. */
const NLM_F_CAPPED = 0x100;
const NLM_F_ACK_TLVS = 0x200;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLMSGERR_ATTR_MSG = 1;
const RTM_NEWRULE = 32;
const RTM_DELRULE = 33;
const RTM_GETRULE = 34;
const RTM_GETADDR = 22;
const RTM_DELROUTE = 25;

/** Default bound of requests sent in one batch (their ACKs fit the receive buffer many times over). */
export const DEFAULT_MAX_IN_FLIGHT = 64;
/** Hard cap of maxInFlight. */
export const MAX_IN_FLIGHT_CAP = 128;
/** Default bound of a wait for a late reply (rtnetlink answers inside sendmsg: never reached in practice). */
export const DEFAULT_TIMEOUT_MS = 10_000;
/** The socket's receive buffer: a batch's replies, or one part of a dump, fit it with room to spare. */
const RCVBUF = 1 << 20;

export interface RtnlClientOptions {
  /** Checked on the opened netns fd before entering (dir + host refusal). */
  policy?: NetnsPolicy;
  /** Requests sent together in one batch at most. */
  maxInFlight?: number;
  /** How long an exchange waits for a reply the kernel has not queued yet. */
  timeoutMs?: number;
}

/** Counters of a client, for tests and metrics. */
export interface RtnlStats {
  requests: number;
  dumps: number;
  /** Exchanges with the kernel (a batch of writes, or a dump). */
  exchanges: number;
  /** The largest batch sent. */
  maxInFlightSeen: number;
  /** Requests queued for the next batch. */
  inFlight: number;
}

/** One message of a reply: its type and payload (after the netlink header). */
interface NlMessage {
  type: number;
  data: Buffer;
}

/** A request waiting for its batch (see RtnlClient.send). */
interface Pending {
  seq: number;
  msg: Buffer;
  dump: boolean;
  op: string;
  replies: NlMessage[];
  resolve: (msgs: NlMessage[]) => void;
  reject: (e: NetlinkError) => void;
}

/** errno number -> name (EEXIST, ...), from Node's table. */
const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));

/** A message with NLMSG_HEADER bytes free at its start for the netlink header (send writes it), then `payload`. */
function framed(payload: readonly Uint8Array[]): Buffer {
  let len = NLMSG_HEADER;
  for (const b of payload) len += b.length;
  const m = Buffer.alloc(len);
  let off = NLMSG_HEADER;
  for (const b of payload) {
    m.set(b, off);
    off += b.length;
  }
  return m;
}

/** A route message for the package's formatter (what encodeRouteMessage does not encode: rtm_flags). */
function routeFramed(data: netlink.rt.Route, attrs: netlink.rt.RouteAttrs): Buffer {
  const out = new AttrStream();
  rt.formatRouteMessage({ kind: 'route', data, attrs }, out);
  return framed(out.bufs);
}

/**
 * The kernel's own words for an error (the extended ACK's message attribute), if it gave any:
 * `payload` is the NLMSG_ERROR's or NLMSG_DONE's, its attributes starting at `at`.
 */
function extAckMessage(payload: Buffer, flags: number, at: number): string | undefined {
  if (!(flags & NLM_F_ACK_TLVS)) return undefined;
  let text: string | undefined;
  walkAttrs(payload, at, payload.length, (type, value, len) => {
    if (type !== NLMSGERR_ATTR_MSG) return false;
    text = payload.toString('utf8', value, value + len).replace(/\0+$/, '');
    return true;
  });
  return text;
}

/**
 * An rtnetlink socket bound to one network namespace. Create with RtnlClient.open().
 *
 * Its socket is its own (injector/native/setns.c: rtnlOpen), not the `netlink` package's:
 * rtnetlink answers a request inside sendmsg, so a batch of requests and every reply is one
 * synchronous exchange (rtnlTalk), without the event loop. The package's socket cost several
 * times more per request: it asks the kernel for its own address on every send, completes each
 * send through the event loop, and reads every reply twice (a peek for its size, then the read).
 *
 * The requests a caller makes in one go (before it awaits) are sent together: each call queues
 * its message and the batch goes out in a microtask, up to `maxInFlight` messages per sendmsg
 * (each still gets its own answer; the kernel handles them in order, and one failing does not
 * stop the others). A dump goes alone. The methods stay asynchronous: their promises settle
 * once their batch was answered.
 */
export class RtnlClient {
  private readonly queue: Pending[] = [];
  private closed = false;
  private seq = 1;
  private readonly maxInFlight: number;
  private readonly timeoutMs: number;
  readonly stats: RtnlStats = { requests: 0, dumps: 0, exchanges: 0, maxInFlightSeen: 0, inFlight: 0 };

  private constructor(
    private readonly fd: number,
    readonly netns: string,
    opts: RtnlClientOptions,
  ) {
    this.maxInFlight = Math.min(MAX_IN_FLIGHT_CAP, Math.max(1, opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT));
    this.timeoutMs = Math.max(1, Math.min(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, 2 ** 31 - 1));
  }

  /**
   * Open a client in the netns at `path` (null: the caller's current netns). Synchronous:
   * the socket is created inside withNetns. Throws NetnsError when the path is gone,
   * refused by the policy, or not a netns.
   */
  static open(path: string | null, opts: RtnlClientOptions = {}): RtnlClient {
    const open = (): number => rtnlOpen(RCVBUF);
    const fd = path === null ? open() : withNetns(path, open, opts.policy ? { policy: opts.policy } : {});
    return new RtnlClient(fd, path ?? '(current)', opts);
  }

  /** Close the socket; requests not sent yet reject with NetlinkError('ECLOSED'). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(new NetlinkError('ECLOSED', p.op, this.netns));
    this.stats.inFlight = 0;
    closeSync(this.fd);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** The socket's fd (diagnostics and tests; -1 once closed). */
  get socketFd(): number {
    return this.closed ? -1 : this.fd;
  }

  /** List the links of the netns. */
  async listLinks(): Promise<LinkInfo[]> {
    // A raw dump read with linkFromIfinfo: index, name and IFF_UP, not every attribute.
    const ifinfomsg = Buffer.alloc(16); // AF_UNSPEC, no filter: every link
    const msgs = await this.send(RTM_GETLINK, true, framed([ifinfomsg]), 'list links');
    const out: LinkInfo[] = [];
    for (const m of msgs) {
      const l = m.type === RTM_NEWLINK ? linkFromIfinfo(m.data) : null;
      if (l) out.push(l);
    }
    return out;
  }

  /**
   * List the routes of one table (default main) of both families or one, with `dev`
   * names filled in. Only unicast-table entries of that table are returned. Both families
   * come in one dump. `links`: the netns's links when the caller has just read them (saves
   * a dump).
   */
  async listRoutes(opts: { family?: Family; table?: number | 'any'; links?: readonly LinkInfo[] } = {}): Promise<KernelRoute[]> {
    const table = opts.table ?? RT_TABLE_MAIN;
    const links = new Map((opts.links ?? (await this.listLinks())).map((l) => [l.index, l.name]));
    const what = opts.family ? `IPv${opts.family} routes` : 'routes';
    // A raw dump read with routeFromRtmsg (what we use of each route, not every attribute).
    const rtmsg = Buffer.alloc(12); // struct rtmsg: the family, nothing else filtered
    rtmsg[0] = opts.family ? afOf(opts.family) : 0;
    const msgs = await this.send(RTM_GETROUTE, true, framed([rtmsg]), `list ${what}`);
    const out: KernelRoute[] = [];
    for (const m of msgs) {
      const r = m.type === RTM_NEWROUTE ? routeFromRtmsg(m.data) : null;
      if (!r || (table !== 'any' && r.table !== table)) continue;
      if (r.oif !== undefined && links.has(r.oif)) r.dev = links.get(r.oif);
      out.push(r);
    }
    return out;
  }

  /**
   * The route of the main FIB that the kernel uses for traffic to `addr` (RTM_GETROUTE with
   * RTM_F_FIB_MATCH, as `ip route get fibmatch ADDR`): the table entry itself, with its dst,
   * protocol and metric. null when nothing routes `addr` (ENETUNREACH and the like).
   * `known`: the netns's links when the caller has just read them (names the route's dev
   * without another dump).
   */
  async effectiveRoute(addr: string, known?: readonly LinkInfo[]): Promise<KernelRoute | null> {
    const a = ipToBytes(addr);
    const data: netlink.rt.Route = { family: afOf(a.family), dstLen: a.family === 4 ? 32 : 128, flags: { fibMatch: true } };
    let msgs: NlMessage[];
    try {
      msgs = await this.send(RTM_GETROUTE, false, routeFramed(data, { dst: a.bytes }), `look up the route to ${addr}`);
    } catch (e) {
      if (isNetlinkError(e, 'ENETUNREACH') || isNetlinkError(e, 'EHOSTUNREACH') || isNetlinkError(e, 'ESRCH')) return null;
      throw e;
    }
    const routes = msgs.filter((m) => m.type === RTM_NEWROUTE);
    const links = routes.length ? new Map((known ?? (await this.listLinks())).map((l) => [l.index, l.name])) : new Map<number, string>();
    for (const m of routes) {
      const r = routeFromMessage(rt.parseMessage(m.type, m.data) as netlink.rt.RouteMessage);
      if (!r) continue;
      if (r.oif !== undefined && links.has(r.oif)) r.dev = links.get(r.oif);
      return r;
    }
    return null;
  }

  /** List the addresses of every interface (both families). */
  async listAddresses(): Promise<KernelAddr[]> {
    const ifaddrmsg = Buffer.alloc(8); // AF_UNSPEC: both families
    const msgs = await this.send(RTM_GETADDR, true, framed([ifaddrmsg]), 'list addresses');
    return msgs
      .map((m) => addrFromMessage(rt.parseMessage(m.type, m.data) as netlink.rt.AddressMessage))
      .filter((a): a is KernelAddr => a !== null);
  }

  /** List the policy routing rules of one family, or of both in one dump (`ip rule show`). */
  async listRules(family?: Family): Promise<KernelRule[]> {
    const hdr = Buffer.alloc(12); // struct fib_rule_hdr: the family, nothing else filtered
    hdr[0] = family ? afOf(family) : 0;
    const msgs = await this.send(RTM_GETRULE, true, framed([hdr]), `list ${family ? `IPv${family} ` : ''}rules`);
    return msgs
      .map((m) => ruleFromMessage(rt.parseMessage(m.type, m.data) as netlink.rt.RuleMessage))
      .filter((r): r is KernelRule => r !== null);
  }

  /** Add `from src lookup table pref priority proto protocol`; EEXIST when exactly that rule exists. */
  async addRule(w: RuleWrite): Promise<void> {
    await this.send(RTM_NEWRULE, false, ruleFramed(w), `add rule ${describeRule(w)}`, FlagsNew.CREATE | FlagsNew.EXCL);
  }

  /** Delete the rule matching every field of `w`; ENOENT/ESRCH when none. */
  async deleteRule(w: RuleWrite): Promise<void> {
    await this.send(RTM_DELRULE, false, ruleFramed(w), `delete rule ${describeRule(w)}`);
  }

  /** Add a route; fails with EEXIST when one with the same dst/metric exists. */
  async addRoute(w: RouteWrite): Promise<void> {
    await this.newRoute(w, 'add', FlagsNew.CREATE | FlagsNew.EXCL);
  }

  /** Add or replace (atomically) the route with the same dst/metric. */
  async replaceRoute(w: RouteWrite): Promise<void> {
    await this.newRoute(w, 'replace', FlagsNew.CREATE | FlagsNew.REPLACE);
  }

  /** One RTM_NEWROUTE of `w` with `flags` (add or replace). */
  private async newRoute(w: RouteWrite, verb: 'add' | 'replace', flags: number): Promise<void> {
    const { data, attrs } = routeWriteToMessage(w);
    await this.send(RTM_NEWROUTE, false, encodeRouteMessage(data, attrs, NLMSG_HEADER), `${verb} route ${describe(w)}`, flags);
  }

  /** Delete the route matching `k` (scope defaults to RT_SCOPE_NOWHERE = any); ESRCH when none. */
  async deleteRoute(k: RouteKey): Promise<void> {
    const { data, attrs } = routeKeyToMessage(k);
    await this.send(
      RTM_DELROUTE,
      false,
      encodeRouteMessage(data, attrs, NLMSG_HEADER),
      `delete route ${k.dst}${k.protocol !== undefined ? ` proto ${k.protocol}` : ''}`,
    );
  }

  /**
   * Queue one request for the next batch (sent in a microtask, so the requests a caller
   * makes together go in one exchange); resolves with its replies, rejects with a
   * NetlinkError. Synchronous up to the queueing: a caller's calls are queued in its order.
   */
  private send(type: number, dump: boolean, msg: Buffer, op: string, flags = 0): Promise<NlMessage[]> {
    if (this.closed) return Promise.reject(new NetlinkError('ECLOSED', op, this.netns));
    const seq = this.seq;
    this.seq = (this.seq + 1) >>> 0; // uint32, wrapping (the addon and exchange() compare modulo 2^32)
    // The netlink header, in the NLMSG_HEADER bytes the message was made with free.
    msg.writeUInt32LE(msg.length, 0);
    msg.writeUInt16LE(type, 4);
    msg.writeUInt16LE(flags | NLM_F_REQUEST | (dump ? NLM_F_DUMP : NLM_F_ACK), 6);
    msg.writeUInt32LE(seq, 8);
    msg.writeUInt32LE(0, 12);
    return new Promise((resolve, reject) => {
      this.queue.push({ seq, msg, dump, op, replies: [], resolve, reject });
      this.stats.inFlight = this.queue.length;
      if (this.queue.length === 1) queueMicrotask(() => this.flush());
    });
  }

  /**
   * Send the head of the queue: a dump alone, or writes and lookups, at most maxInFlight; the
   * rest in the next microtask. Not at the next turn of the event loop: that doubled the CPU
   * of a keeper's start (1.0 -> 2.0 ms per pod at N=300, measured), the loop's turn and the
   * event sockets' reads coming between every two exchanges. An apply so runs through promise
   * reactions alone (a few ms for hundreds of routes); events that come meanwhile are read
   * once it has ended.
   */
  private flush(): void {
    if (!this.queue.length || this.closed) return;
    const n = this.queue[0]!.dump ? 1 : Math.min(this.maxInFlight, this.queue.findIndex((p) => p.dump) >>> 0, this.queue.length);
    const batch = this.queue.splice(0, n);
    this.stats.inFlight = this.queue.length;
    this.stats.requests += batch.length;
    if (batch[0]!.dump) this.stats.dumps++;
    this.stats.exchanges++;
    this.stats.maxInFlightSeen = Math.max(this.stats.maxInFlightSeen, batch.length);
    this.exchange(batch);
    if (this.queue.length) queueMicrotask(() => this.flush());
  }

  /** One exchange with the kernel: the batch out, every reply in, each request settled. */
  private exchange(batch: Pending[]): void {
    let replies: Buffer;
    try {
      const out = batch.length === 1 ? batch[0]!.msg : Buffer.concat(batch.map((p) => p.msg));
      replies = rtnlTalk(this.fd, out, batch.length, batch[0]!.seq, this.timeoutMs);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
      for (const p of batch) p.reject(new NetlinkError(code, p.op, this.netns));
      return;
    }
    const first = batch[0]!.seq;
    const settled = new Set<Pending>();
    walkMessages(replies, (type, flags, seq, payload) => {
      const p = batch[(seq - first) >>> 0];
      if (!p || settled.has(p)) return;
      if (type !== NLMSG_ERROR && type !== NLMSG_DONE) {
        p.replies.push({ type, data: payload });
        return;
      }
      settled.add(p);
      const errno = payload.length >= 4 ? -payload.readInt32LE(0) : 0;
      if (errno <= 0) {
        p.resolve(p.replies);
        return;
      }
      // After the error: the request's header (the whole request without NETLINK_CAP_ACK), then the extended ACK.
      const at = type === NLMSG_ERROR ? 4 + (flags & NLM_F_CAPPED ? NLMSG_HEADER : payload.readUInt32LE(4)) : 4;
      p.reject(new NetlinkError(ERRNO_NAMES.get(errno) ?? `errno ${errno}`, p.op, this.netns, extAckMessage(payload, flags, at)));
    });
    for (const p of batch) if (!settled.has(p)) p.reject(new NetlinkError('EIO', `${p.op} (no answer in the kernel's reply)`, this.netns));
  }
}

/** A rule message (the package's formatter: rules are written rarely, symmetric return paths only). */
function ruleFramed(w: RuleWrite): Buffer {
  const { data, attrs } = ruleWriteToMessage(w);
  const out = new AttrStream();
  rt.formatRuleMessage({ kind: 'rule', data, attrs }, out);
  return framed(out.bufs);
}

function describeRule(w: RuleWrite): string {
  return `from ${w.src} lookup ${w.table} pref ${w.priority} proto ${w.protocol}`;
}

function describe(w: RouteWrite): string {
  return `${w.dst}${w.via ? ` via ${w.via}` : ''} oif ${w.oif} proto ${w.protocol}`;
}
