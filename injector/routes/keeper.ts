/**
 * RouteKeeper: keeps one netns's routes equal to its plan. It applies the plan, then
 * re-applies (debounced) when the netns's link or route events say something relevant
 * changed: a missing dev appeared, someone deleted/changed a route of the plan (drift), or
 * a foreign route appeared or went at one of its destinations or inside one (a route that
 * may take precedence over ours: the apply's effective-route check reports it as a
 * 'collision' at once, and the traffic is in our routes again once it goes).
 * A periodic full resync catches whatever events were missed.
 *
 * It holds one RtnlClient for its life (a socket per apply cost as much as the writes) and a
 * mirror of the netns's table: the last apply's reads, updated by the kernel's announcements
 * (echoes) of that apply's writes. A plan change is written from the mirror, reading nothing,
 * only when every echo came and nothing else did: any other event, a drop the kernel counted
 * on the event socket, or an event still unread ends it, and the apply reads the netns. Starts,
 * event-triggered applies and resyncs always read it.
 *
 * It must not fight forever: an apply triggered by events or resync that had to repair
 * something of ours (isDrift) counts as a restore; more than `maxRestores` restores within `windowMs` puts
 * the keeper in back-off (reported): event-triggered applies wait `backoffInitialMs`,
 * doubling on each further restore up to `backoffMaxMs`, until a window passes without one.
 *
 * The agent owns one keeper per pod netns, feeds plan changes with setPlan(), persists
 * default routes through the saveDefault/forgetDefault callbacks, and close()s the keeper
 * when the pod or netns goes away (its event socket keeps the netns alive until then).
 * close() is final at once: an apply in flight is aborted (its socket closed in close()
 * itself, nothing more written, no callback, no report), so a released pod leaves no fd
 * behind and nothing of its keeper runs after it was let go.
 */
import { GATEWAY_VIA, type Plan } from '../../core/types.js';
import { isNetnsError, netnsInode, type NetnsError, type NetnsId } from '../kernel/netns.js';
import { subscribeNetns, type NetnsEvent, type NetnsSubscription } from '../kernel/netlink-events.js';
import { RtnlClient } from '../kernel/netlink.js';
import { RT_TABLE_MAIN, type KernelRoute, type KernelRule, type LinkInfo } from '../kernel/netlink-codec.js';
import { applyPlan, RTPROT_OVNKUBE_ROUTE, type ApplyPlanOptions, type ApplyResult, type KernelView, type SavedDefault } from './engine.js';
import { defaultDst, mayOverride } from './diff.js';
import type { SymmetricItem } from './symmetric.js';
import { backoffMs } from '../../platform/backoff.js';

/** Why an apply ran. */
export type ApplyTrigger = 'start' | 'plan' | 'event' | 'resync';

/** What the keeper reports. `restored` counts drift repairs (changes on event/resync applies). */
export type KeeperReport =
  | { kind: 'applied'; trigger: ApplyTrigger; result: ApplyResult; drift: boolean; plan: Plan }
  | { kind: 'backoff'; delayMs: number; restoresInWindow: number }
  | { kind: 'error'; trigger: ApplyTrigger; error: Error }
  | { kind: 'gone'; error: NetnsError };

export interface KeeperOptions extends Omit<ApplyPlanOptions, 'savedDefault' | 'reclaim'> {
  /** Saved original default routes known at start (from the agent's state dir). */
  savedDefault?: SavedDefault[];
  onReport: (r: KeeperReport) => void;
  /** Coalesce bursts of events (default 50 ms). */
  debounceMs?: number;
  /** Full resync period (default 60 s; 0 disables). */
  resyncMs?: number;
  /** Restores allowed per window before backing off (default 5). */
  maxRestores?: number;
  windowMs?: number; // default 60 s
  backoffInitialMs?: number; // default 1 s
  backoffMaxMs?: number; // default 5 min
}

/**
 * Whether an event- or resync-triggered apply repaired drift: it rewrote a route that was
 * ours and in place before (deleted or changed by someone), or removed a stray route of
 * ours. Writing a route whose device has only now appeared (skipped before, as while a
 * pod's interfaces are being set up) is the plan taking effect, not a repair.
 */
export function isDrift(result: ApplyResult, ownedBefore: ReadonlySet<string>, symmetricBefore: ReadonlySet<string> = new Set()): boolean {
  return (
    result.removed.length > 0 ||
    result.restored.length > 0 ||
    result.added.some((r) => ownedBefore.has(r.dst)) ||
    result.replaced.some((r) => ownedBefore.has(r.dst)) ||
    (result.symmetric?.removed.length ?? 0) > 0 ||
    (result.symmetric?.added.some((i) => symmetricBefore.has(symKey(i))) ?? false)
  );
}

/** Identity of a symmetric item (a rule or a route of a device's table). */
function symKey(i: SymmetricItem): string {
  return `${i.kind} ${i.family} ${i.dst} ${i.table}`;
}

/** The symmetric items in place after an apply. */
function symmetricInPlace(r: ApplyResult): Set<string> {
  return new Set([...(r.symmetric?.added ?? []), ...(r.symmetric?.unchanged ?? [])].map(symKey));
}

/** How long after an apply the echoes of its writes are expected (events arrive within ms). */
const ECHO_WINDOW_MS = 2000;

/** The key an event of ours would have: action, family, destination (and table, outside main; rules by their from and table). */
function echoKey(ev: NetnsEvent): string | null {
  if (ev.kind === 'rule') return ev.rule.src === undefined ? null : `${ev.action} rule ${ev.rule.family} ${ev.rule.src} ${ev.rule.table}`;
  if (ev.kind !== 'route') return null;
  if (ev.route.table !== RT_TABLE_MAIN) return `${ev.action} route ${ev.route.family} ${ev.route.dst} ${ev.route.table}`;
  return `${ev.action} ${ev.route.family} ${ev.route.dst}`;
}

/**
 * Where a route sits in its table: what an exclusive add refuses to share and a replace
 * replaces. Several routes may share it (IPv6 routes of one prefix and metric on several
 * devices, as every link's fe80::/64; IPv4 routes added with append).
 */
function routeKey(r: KernelRoute): string {
  return `${r.family} ${r.table} ${r.dst} ${r.tos} ${r.priority}`;
}

/** The same route (its slot and its nexthop). */
function sameRoute(a: KernelRoute, b: KernelRoute): boolean {
  return routeKey(a) === routeKey(b) && a.oif === b.oif && a.via === b.via && a.type === b.type;
}

/** Two rules are the same rule. */
function sameRule(a: KernelRule, b: KernelRule): boolean {
  return (
    a.family === b.family &&
    a.priority === b.priority &&
    a.table === b.table &&
    a.protocol === b.protocol &&
    a.action === b.action &&
    a.src === b.src &&
    a.dst === b.dst &&
    a.extra === b.extra
  );
}

/**
 * What the keeper knows the netns holds: an apply's reads, then the kernel's announcements
 * of that apply's own writes. Valid only while every event since was such an echo, none was
 * dropped (`drops`: the event socket's drop count when it was read) and none is unread.
 */
interface TableMirror {
  links: readonly LinkInfo[];
  /** By routeKey, in the order read (a dump lists the routes of one slot in the kernel's order). */
  routes: Map<string, KernelRoute[]>;
  rules: KernelRule[];
  drops: number;
}

/** Keeps one netns's routes equal to a plan. Create, then start(). */
export class RouteKeeper {
  private plan: Plan;
  private sub: NetnsSubscription | null = null;
  private timer: NodeJS.Timeout | null = null;
  private resyncTimer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  /** Aborts the apply in flight (see close()). */
  private inFlight: AbortController | null = null;
  private pendingTrigger: ApplyTrigger | null = null;
  private saved: SavedDefault[];
  private owned: string[] = [];
  /** Symmetric rules and table routes in place after the last apply (symKey). */
  private symmetricOwned = new Set<string>();
  private restores: number[] = [];
  private backoffMs = 0;
  /** Back-offs in a row (reset once a window passes without restores). */
  private backoffs = 0;
  private closed = false;
  private last: ApplyResult | null = null;
  /** The plan of the last apply (`last`): a mirrored plan change may be written as its difference. */
  private lastPlan: Plan | null = null;
  /** Plan changes written as their difference from the last apply (tests, diagnostics). */
  deltaApplies = 0;
  private planDsts: string[] | null = null;
  /** Does the plan have a `via: gateway` (null: not looked yet)? */
  private gatewayVia: boolean | null = null;
  /** Relevant events seen while an apply runs: judged against its writes when it ends. */
  private during: NetnsEvent[] | null = null;
  /** Echoes of the last apply's writes still to come (key -> count), until `expectUntil`. */
  private expected = new Map<string, number>();
  private expectUntil = 0;
  /** Events recognised as echoes of our own writes (not re-applied; tests, diagnostics). */
  echoesIgnored = 0;
  /** Applies that read nothing before writing, trusting the mirror (tests, diagnostics). */
  mirroredApplies = 0;
  /** The client every apply of this keeper uses (opened at the first, closed with the keeper), and the netns's identity then. */
  private client: { client: RtnlClient; netns: NetnsId } | null = null;
  /** The table as the last apply left it, kept current by its echoes; null once anything else happened. Routes of one destination are given in the kernel's order (by metric), as a dump lists them. */
  private mirror: TableMirror | null = null;

  constructor(
    readonly path: string,
    plan: Plan,
    private readonly opts: KeeperOptions,
  ) {
    this.plan = plan;
    this.saved = [...(opts.savedDefault ?? [])];
  }

  /**
   * Subscribe to the netns's events, then apply. Throws NetnsError if the netns is gone/refused.
   * Resolves to null when the keeper was closed before or during the first apply.
   */
  async start(): Promise<ApplyResult | null> {
    if (this.closed) return null; // a socket opened now would never be closed
    this.sub = subscribeNetns(this.path, (ev) => this.onEvent(ev), this.opts.policy ? { policy: this.opts.policy } : {});
    const every = this.opts.resyncMs ?? 60_000;
    if (every > 0) {
      this.resyncTimer = setInterval(() => this.trigger('resync', 0), every);
      this.resyncTimer.unref();
    }
    return this.applyNow('start');
  }

  /** Replace the plan and apply it at once (not counted as drift). */
  async setPlan(plan: Plan): Promise<ApplyResult | null> {
    this.plan = plan;
    this.planDsts = null;
    this.gatewayVia = null;
    return this.applyNow('plan');
  }

  /** Apply the current plan now, as a resync would (a repair found here counts as drift). */
  async resync(): Promise<ApplyResult | null> {
    return this.applyNow('resync');
  }

  /**
   * The mirror as a plan change would be given it now (routes in the kernel's order), or null
   * when the next plan change will read the netns. Tests and diagnostics; does not end it.
   */
  get mirrorView(): KernelView | null {
    const m = this.mirror;
    if (!m || this.expected.size > 0) return null;
    return { links: m.links, routes: [...m.routes.values()].flat().sort((a, b) => a.priority - b.priority), rules: [...m.rules] };
  }

  /** True while an apply runs (tests: an apply seen in flight). */
  get applying(): boolean {
    // From the apply's first step on (`running` is set once its first request is queued).
    return this.inFlight !== null;
  }

  /** The last apply's result. */
  get lastResult(): ApplyResult | null {
    return this.last;
  }

  /** Saved default routes as the keeper knows them now. */
  get savedDefaults(): SavedDefault[] {
    return [...this.saved];
  }

  /**
   * Stop watching and abort the apply in flight, if any; idempotent. Does not touch the
   * routes (those already written stay). Every fd of the keeper is closed when it returns.
   */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.inFlight?.abort();
    this.sub?.close();
    this.dropClient();
  }

  private dropClient(): void {
    this.client?.client.close();
    this.client = null;
    this.mirror = null;
  }

  /**
   * The mirror, when a plan change may trust it instead of reading the netns: the echoes of
   * the last apply's writes have all come (each applied to it), and the event socket has
   * nothing unread and dropped nothing since the mirror's reads. Else null (and forgotten).
   */
  private trustedView(drops: number, rmem: number): KernelView | null {
    const m = this.mirror;
    if (!m) return null;
    if (drops !== m.drops || rmem !== 0 || this.expected.size > 0) {
      this.mirror = null;
      return null;
    }
    return this.mirrorView;
  }

  /** Bring the mirror up to date with an echo of our own write (or forget it when that cannot be done exactly). */
  private mirrorEcho(ev: NetnsEvent): void {
    const m = this.mirror;
    if (!m) return;
    if (ev.kind === 'route') {
      const r = ev.route;
      const k = routeKey(r);
      const at = m.routes.get(k) ?? [];
      if (r.multipath) this.mirror = null;
      else if (ev.action === 'new') {
        // Our adds are exclusive (an empty slot) and our replaces take the one route of the
        // slot; a slot of several routes is not ours to guess at.
        if (at.length > 1) this.mirror = null;
        else {
          const dev = r.oif === undefined ? undefined : m.links.find((l) => l.index === r.oif)?.name;
          m.routes.set(k, [dev === undefined ? r : { ...r, dev }]);
        }
      } else {
        const left = at.filter((x) => !sameRoute(x, r));
        if (left.length !== at.length - 1) this.mirror = null;
        else if (left.length) m.routes.set(k, left);
        else m.routes.delete(k);
      }
    } else if (ev.kind === 'rule') {
      if (ev.action === 'new') m.rules.push(ev.rule);
      else {
        const i = m.rules.findIndex((x) => sameRule(x, ev.rule));
        if (i < 0) this.mirror = null;
        else m.rules.splice(i, 1);
      }
    } else this.mirror = null;
  }

  private onEvent(ev: NetnsEvent): void {
    if (this.closed) return;
    // The echo of a write of ours is no reason to look again: the apply that made it read
    // the table and left it as the plan says. Anything else (drift, a link, an overflow) is.
    // Any event but an echo also ends the mirror: the next apply reads the netns again.
    if (this.during) {
      this.during.push(ev);
      return;
    }
    if (this.consumeEcho(ev)) {
      this.mirrorEcho(ev);
      return;
    }
    this.mirror = null;
    if (this.relevant(ev)) this.trigger('event', this.opts.debounceMs ?? 50);
  }

  /** True (and counted) when `ev` is an expected echo of the last apply's writes. */
  private consumeEcho(ev: NetnsEvent): boolean {
    const k = echoKey(ev);
    if (k === null || Date.now() > this.expectUntil) return false;
    const n = this.expected.get(k) ?? 0;
    if (n <= 0) return false;
    if (n === 1) this.expected.delete(k);
    else this.expected.set(k, n - 1);
    this.echoesIgnored++;
    return true;
  }

  /** After an apply: its writes' echoes are expected; events seen meanwhile that are not echoes trigger a new look. */
  private settleEvents(result: ApplyResult | null): void {
    const seen = this.during ?? [];
    this.during = null;
    this.expected = new Map();
    if (result) {
      const add = (action: 'new' | 'del', items: { family: number; dst: string }[]): void => {
        for (const it of items) {
          const k = `${action} ${it.family} ${it.dst}`;
          this.expected.set(k, (this.expected.get(k) ?? 0) + 1);
        }
      };
      add('new', result.added);
      add('new', result.replaced);
      add('new', result.restored);
      add('del', result.removed);
      const sym = (action: 'new' | 'del', items: SymmetricItem[]): void => {
        for (const i of items) {
          const k = `${action} ${i.kind} ${i.family} ${i.dst} ${i.table}`;
          this.expected.set(k, (this.expected.get(k) ?? 0) + 1);
        }
      };
      sym('new', result.symmetric?.added ?? []);
      sym('del', result.symmetric?.removed ?? []);
    }
    this.expectUntil = Date.now() + ECHO_WINDOW_MS;
    let unexplained = false;
    for (const ev of seen) {
      if (this.consumeEcho(ev)) this.mirrorEcho(ev);
      else {
        this.mirror = null;
        if (this.relevant(ev)) unexplained = true;
      }
    }
    if (unexplained && !this.closed) this.trigger('event', this.opts.debounceMs ?? 50);
  }

  /** Does this event possibly make the table differ from the plan? */
  private relevant(ev: NetnsEvent): boolean {
    // Links come and go; overflow means we missed events; a rule event is rare, and may be
    // one of our symmetric return paths' rules going (or a foreign one in their way).
    // An address only ends the mirror (the routes using it as their source may go with it);
    // the plan does not depend on it.
    if (ev.kind === 'addr') return false;
    if (ev.kind !== 'route') return true;
    const r = ev.route;
    // Outside main, only the routes of our own tables (symmetric return paths) matter.
    if (r.table !== RT_TABLE_MAIN) return r.protocol === (this.opts.protocol ?? RTPROT_OVNKUBE_ROUTE);
    if (r.dst === defaultDst(r.family) || r.protocol === (this.opts.protocol ?? RTPROT_OVNKUBE_ROUTE)) return true;
    this.planDsts ??= this.plan.routes.map((p) => p.dst).filter((d) => d !== defaultDst(d.includes(':') ? 6 : 4));
    // A foreign route of one of our destinations, or a more specific one inside it, may
    // take its traffic (prepend, a lower metric, a longer prefix): look at once, so a
    // collision is reported now and not at the next resync.
    if (mayOverride(r.dst, this.planDsts)) return true;
    // A plan with `via: gateway` follows the gateways of the pod's devices: any route through a
    // gateway that comes or goes may be the one it is resolved from.
    // So does one with symmetric devices: each device's table has a default via its gateway.
    this.gatewayVia ??=
      this.plan.routes.some((p) => p.via === GATEWAY_VIA) || this.plan.default?.via === GATEWAY_VIA || !!this.plan.symmetric?.length;
    return this.gatewayVia && r.via !== undefined;
  }

  private trigger(t: ApplyTrigger, delay: number): void {
    if (this.closed) return;
    this.pendingTrigger = this.pendingTrigger === 'event' ? 'event' : t;
    if (this.timer) return;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        void this.drain();
      },
      Math.max(delay, this.backoffMs),
    );
  }

  private async drain(): Promise<void> {
    if (this.running) {
      await this.running;
      if (!this.timer && this.pendingTrigger) this.trigger(this.pendingTrigger, 0);
      return;
    }
    const t = this.pendingTrigger;
    this.pendingTrigger = null;
    if (t) await this.applyNow(t);
  }

  private async applyNow(trigger: ApplyTrigger): Promise<ApplyResult | null> {
    while (this.running) await this.running;
    if (this.closed) return null;
    let result: ApplyResult | null = null;
    // The plan this apply writes (setPlan may replace this.plan while it runs).
    const plan = this.plan;
    const abort = new AbortController();
    this.inFlight = abort;
    this.during = [];
    this.running = (async () => {
      try {
        // One client for the keeper's life (a socket per apply cost as much as the writes).
        if (!this.client) {
          const netns = netnsInode(this.path);
          this.client = { client: RtnlClient.open(this.path, this.opts), netns };
        }
        // A plan change trusts the mirror when nothing but our own echoes happened since it
        // was read; events, resyncs and starts read the netns.
        const q = this.sub?.queue();
        const view = q && trigger === 'plan' ? this.trustedView(q.drops, q.rmem) : null;
        // A mirrored apply keeps the mirror (its writes' echoes update it); one that reads
        // makes a new one from its reads (onRead).
        if (view) this.mirroredApplies++;
        else this.mirror = null;
        result = await applyPlan(this.path, plan, {
          ...this.opts,
          client: this.client,
          ...(view ? { view, ...(this.last && this.lastPlan ? { previous: { plan: this.lastPlan, result: this.last } } : {}) } : {}),
          onDelta: () => {
            this.deltaApplies++;
          },
          onRead: (v) => {
            if (!q) return;
            const routes = new Map<string, KernelRoute[]>();
            for (const r of v.routes) {
              const k = routeKey(r);
              const at = routes.get(k);
              if (at) at.push(r);
              else routes.set(k, [r]);
            }
            this.mirror = { links: v.links, routes, rules: [...v.rules], drops: q.drops };
          },
          signal: abort.signal,
          savedDefault: this.saved,
          reclaim: this.owned,
          saveDefault: async (s) => {
            await this.opts.saveDefault?.(s);
            this.saved = [...this.saved.filter((x) => x.family !== s.family), s];
          },
          forgetDefault: async (f) => {
            await this.opts.forgetDefault?.(f);
            this.saved = this.saved.filter((x) => x.family !== f);
          },
        });
        const ownedBefore = new Set(this.owned);
        const symmetricBefore = this.symmetricOwned;
        this.last = result;
        this.lastPlan = plan;
        this.owned = result.owned;
        this.symmetricOwned = symmetricInPlace(result);
        if (this.closed) return; // closed after the apply's last write: nothing to report to
        const drift = (trigger === 'event' || trigger === 'resync') && isDrift(result, ownedBefore, symmetricBefore);
        this.opts.onReport({ kind: 'applied', trigger, result, drift, plan });
        this.account(drift);
      } catch (e) {
        // Whatever failed, the next apply starts afresh: a new client, a fresh read.
        this.dropClient();
        if (this.closed) return; // aborted by close(), or failed after it: the owner let go
        if (isNetnsError(e, 'gone')) {
          this.close();
          this.opts.onReport({ kind: 'gone', error: e });
        } else {
          this.opts.onReport({ kind: 'error', trigger, error: e as Error });
          this.account(true); // failures back off too
          this.trigger('resync', 0);
        }
      }
    })();
    try {
      await this.running;
    } finally {
      this.running = null;
      this.inFlight = null;
      this.settleEvents(result);
    }
    return this.closed ? null : result;
  }

  /** Count a restore (or a quiet check) and enter/leave back-off. */
  private account(restored: boolean): void {
    const now = Date.now();
    const windowMs = this.opts.windowMs ?? 60_000;
    this.restores = this.restores.filter((x) => now - x < windowMs);
    if (!restored) {
      // Quiet only once a whole window passed without restores (our own writes' echo
      // events cause quiet applies right after every restore).
      if (!this.restores.length) {
        this.backoffMs = 0;
        this.backoffs = 0;
      }
      return;
    }
    this.restores.push(now);
    if (this.restores.length <= (this.opts.maxRestores ?? 5)) return;
    // A throttle whose delay is reported (and asserted): no jitter.
    this.backoffMs = backoffMs(this.backoffs++, {
      initialMs: this.opts.backoffInitialMs ?? 1000,
      maxMs: this.opts.backoffMaxMs ?? 300_000,
      jitter: 0,
    });
    this.opts.onReport({ kind: 'backoff', delayMs: this.backoffMs, restoresInWindow: this.restores.length });
  }
}
