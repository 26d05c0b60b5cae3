/**
 * The one netlink wrapper (model: containernetworking's `netlinksafe`). Every rtnetlink call
 * of the injector goes through RtnlClient, so these rules live in one place:
 *
 * - The socket is created inside `withNetns`, so it is bound to the pod's namespace; all
 *   I/O happens afterwards, on the host thread, outside withNetns.
 * - Requests in flight are bounded (`maxInFlight`, at most MAX_IN_FLIGHT_CAP). Unanswered
 *   requests pile up ACKs in the receive buffer; past it the kernel drops them and, on an
 *   unhardened socket, the `netlink` package aborts the process (measured here: fine at 256
 *   in flight, abort at 300 with the default buffer). Sockets are hardened too
 *   (netlink-socket.ts), and an 'error' listener is always attached.
 * - A dump (list links/routes) runs alone on the socket: the package cannot tell a dump's
 *   parts from other replies, so interleaving breaks it ("Multipart message not terminated").
 * - Kernel errors become NetlinkError with the errno name as `code` (EEXIST, ESRCH,
 *   ENETUNREACH, ENODEV, ...). A request never hangs: it times out, and close() rejects
 *   whatever is pending (the package would drop those promises silently). The timeout is
 *   our own timer, not the package's `timeout` option: after close() the package never
 *   settles a pending request, so its timer would stay armed (keeping the process alive
 *   and the closed socket in memory) for the whole timeout.
 */
import type * as netlink from 'netlink';
import { FlagsNew } from './netlink-lite.js';
import type { NetnsPolicy } from './netns.js';
import { createRtnlSocket } from './netlink-socket.js';
import {
  addrFromMessage,
  afOf,
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
  ) {
    super(`${op} in netns ${netns}: ${code}${MEANING[code] ? ` (${MEANING[code]})` : ''}`);
  }
}

/** True when `e` is a NetlinkError (optionally with the given code). */
export function isNetlinkError(e: unknown, code?: NetlinkErrorCode): e is NetlinkError {
  return e instanceof NetlinkError && (code === undefined || e.code === code);
}

/** NLM_F_DUMP (NLM_F_ROOT | NLM_F_MATCH): every object of the kind asked. */
const NLM_F_DUMP = 0x300;

/** Default bound of requests in flight per socket; ACKs of that many fit the receive buffer easily. */
export const DEFAULT_MAX_IN_FLIGHT = 64;
/** Hard cap of maxInFlight: well under the ~300 where the default buffer overflows. */
export const MAX_IN_FLIGHT_CAP = 128;
/** Default timeout of one request. */
export const DEFAULT_TIMEOUT_MS = 10_000;

export interface RtnlClientOptions {
  /** Checked on the opened netns fd before entering (dir + host refusal). */
  policy?: NetnsPolicy;
  maxInFlight?: number;
  timeoutMs?: number;
}

type Waiter = { dump: boolean; start: () => void };

/** Counters of a client, for tests and metrics. */
export interface RtnlStats {
  requests: number;
  dumps: number;
  maxInFlightSeen: number;
  inFlight: number;
}

/** An rtnetlink socket bound to one network namespace. Create with RtnlClient.open(). */
export class RtnlClient {
  private inFlight = 0;
  private dumping = false;
  private readonly queue: Waiter[] = [];
  /** Rejecters of the requests in flight, so close() and socket errors can fail them. */
  private readonly pending = new Set<(code: string) => void>();
  private closed = false;
  private readonly maxInFlight: number;
  private readonly timeoutMs: number;
  readonly stats: RtnlStats = { requests: 0, dumps: 0, maxInFlightSeen: 0, inFlight: 0 };

  private constructor(
    private readonly sock: netlink.RtNetlinkSocket,
    readonly netns: string,
    opts: RtnlClientOptions,
  ) {
    this.maxInFlight = Math.min(MAX_IN_FLIGHT_CAP, Math.max(1, opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT));
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    // Without a listener an 'error' event throws inside the native callback and aborts the process.
    sock.socket.socket.on('error', (e: NodeJS.ErrnoException) => this.failAll(e.code ?? 'EIO'));
  }

  /**
   * Open a client in the netns at `path` (null: the caller's current netns). Synchronous:
   * the socket is created inside withNetns. Throws NetnsError when the path is gone,
   * refused by the policy, or not a netns.
   */
  static open(path: string | null, opts: RtnlClientOptions = {}): RtnlClient {
    const sock = createRtnlSocket(path, opts.policy ? { policy: opts.policy } : {});
    return new RtnlClient(sock, path ?? '(current)', opts);
  }

  /** Close the socket; pending requests reject with NetlinkError('ECLOSED'). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.failAll('ECLOSED');
    for (const w of this.queue.splice(0)) w.start();
    this.sock.socket.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** List the links of the netns. */
  async listLinks(): Promise<LinkInfo[]> {
    // A raw dump read with linkFromIfinfo: index, name and IFF_UP, not every attribute.
    const ifinfomsg = Buffer.alloc(16); // AF_UNSPEC, no filter: every link
    const [msgs] = await this.run(true, 'list links', () => this.sock.socket.request(RTM_GETLINK, ifinfomsg, { flags: NLM_F_DUMP }));
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
    const [msgs] = await this.run(true, `list ${what}`, () => this.sock.socket.request(RTM_GETROUTE, rtmsg, { flags: NLM_F_DUMP }));
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
    let msgs: netlink.rt.RouteMessage[];
    try {
      msgs = await this.run(false, `look up the route to ${addr}`, () => this.sock.getRoute(data, { dst: a.bytes }));
    } catch (e) {
      if (isNetlinkError(e, 'ENETUNREACH') || isNetlinkError(e, 'EHOSTUNREACH') || isNetlinkError(e, 'ESRCH')) return null;
      throw e;
    }
    const links = msgs.length ? new Map((known ?? (await this.listLinks())).map((l) => [l.index, l.name])) : new Map<number, string>();
    for (const m of msgs) {
      const r = routeFromMessage(m);
      if (!r) continue;
      if (r.oif !== undefined && links.has(r.oif)) r.dev = links.get(r.oif);
      return r;
    }
    return null;
  }

  /** List the addresses of every interface (both families). */
  async listAddresses(): Promise<KernelAddr[]> {
    const msgs = await this.run(true, 'list addresses', () => this.sock.getAddresses());
    return msgs.map(addrFromMessage).filter((a): a is KernelAddr => a !== null);
  }

  /** List the policy routing rules of one family, or of both in one dump (`ip rule show`). */
  async listRules(family?: Family): Promise<KernelRule[]> {
    const msgs = await this.run(true, `list ${family ? `IPv${family} ` : ''}rules`, () =>
      this.sock.getRules({ family: family ? afOf(family) : 0 }),
    );
    return msgs.map(ruleFromMessage).filter((r): r is KernelRule => r !== null);
  }

  /** Add `from src lookup table pref priority proto protocol`; EEXIST when exactly that rule exists. */
  async addRule(w: RuleWrite): Promise<void> {
    const { data, attrs } = ruleWriteToMessage(w);
    await this.run(false, `add rule ${describeRule(w)}`, () => this.sock.newRule(data, attrs, { flags: FlagsNew.CREATE | FlagsNew.EXCL }));
  }

  /** Delete the rule matching every field of `w`; ENOENT/ESRCH when none. */
  async deleteRule(w: RuleWrite): Promise<void> {
    const { data, attrs } = ruleWriteToMessage(w);
    await this.run(false, `delete rule ${describeRule(w)}`, () => this.sock.delRule(data, attrs));
  }

  /** Add a route; fails with EEXIST when one with the same dst/metric exists. */
  async addRoute(w: RouteWrite): Promise<void> {
    const { data, attrs } = routeWriteToMessage(w);
    await this.run(false, `add route ${describe(w)}`, () => this.sock.newRoute(data, attrs, { flags: FlagsNew.CREATE | FlagsNew.EXCL }));
  }

  /** Add or replace (atomically) the route with the same dst/metric. */
  async replaceRoute(w: RouteWrite): Promise<void> {
    const { data, attrs } = routeWriteToMessage(w);
    await this.run(false, `replace route ${describe(w)}`, () =>
      this.sock.newRoute(data, attrs, { flags: FlagsNew.CREATE | FlagsNew.REPLACE }),
    );
  }

  /** Delete the route matching `k` (scope defaults to RT_SCOPE_NOWHERE = any); ESRCH when none. */
  async deleteRoute(k: RouteKey): Promise<void> {
    const { data, attrs } = routeKeyToMessage(k);
    await this.run(false, `delete route ${k.dst}${k.protocol !== undefined ? ` proto ${k.protocol}` : ''}`, () =>
      this.sock.delRoute(data, attrs),
    );
  }

  /** Run one request under the in-flight bound (a dump runs alone); map its errors. */
  private async run<T>(dump: boolean, op: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new NetlinkError('ECLOSED', op, this.netns);
    await this.acquire(dump);
    if (this.closed) throw new NetlinkError('ECLOSED', op, this.netns);
    this.stats.requests++;
    if (dump) this.stats.dumps++;
    try {
      return await new Promise<T>((resolve, reject) => {
        const done = (): void => {
          clearTimeout(timer);
          this.pending.delete(fail);
        };
        const fail = (code: string): void => {
          done();
          reject(new NetlinkError(code, op, this.netns));
        };
        const timer = setTimeout(() => fail('ETIMEDOUT'), this.timeoutMs);
        this.pending.add(fail);
        fn().then(
          (v) => {
            done();
            resolve(v);
          },
          (e: unknown) => {
            done();
            reject(mapError(e, op, this.netns));
          },
        );
      });
    } finally {
      this.release(dump);
    }
  }

  private acquire(dump: boolean): Promise<void> {
    return new Promise((resolve) => {
      this.queue.push({ dump, start: resolve });
      this.pump();
    });
  }

  private release(dump: boolean): void {
    if (dump) this.dumping = false;
    else this.inFlight--;
    this.stats.inFlight = this.inFlight;
    this.pump();
  }

  /** Start queued requests in FIFO order while the head may start (no overtaking a waiting dump). */
  private pump(): void {
    while (this.queue.length) {
      const head = this.queue[0]!;
      if (this.closed) {
        this.queue.shift();
        head.start();
        continue;
      }
      if (this.dumping) return;
      if (head.dump ? this.inFlight > 0 : this.inFlight >= this.maxInFlight) return;
      this.queue.shift();
      if (head.dump) this.dumping = true;
      else {
        this.inFlight++;
        this.stats.inFlight = this.inFlight;
        this.stats.maxInFlightSeen = Math.max(this.stats.maxInFlightSeen, this.inFlight);
      }
      head.start();
    }
  }

  private failAll(code: string): void {
    for (const fail of [...this.pending]) fail(code);
    this.pending.clear();
  }
}

function describeRule(w: RuleWrite): string {
  return `from ${w.src} lookup ${w.table} pref ${w.priority} proto ${w.protocol}`;
}

function describe(w: RouteWrite): string {
  return `${w.dst}${w.via ? ` via ${w.via}` : ''} oif ${w.oif} proto ${w.protocol}`;
}

/** Map the package's errors ("Request rejected: EEXIST", "Timeout has been reached") to NetlinkError. */
function mapError(e: unknown, op: string, netns: string): Error {
  if (e instanceof NetlinkError) return e;
  const msg = (e as Error)?.message ?? String(e);
  const m = /Request rejected: (\w+)/.exec(msg);
  if (m) return new NetlinkError(m[1]!, op, netns);
  if (/Timeout has been reached/.test(msg)) return new NetlinkError('ETIMEDOUT', op, netns);
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code) return new NetlinkError(code, op, netns);
  return new NetlinkError('EIO', `${op} (${msg})`, netns);
}
