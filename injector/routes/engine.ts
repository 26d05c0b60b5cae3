/**
 * The route engine: bring a netns's main table to a plan with the exact diff (never a
 * flush), and put the original default route back when no plan asks for ours any more.
 *
 * Order of writes: stale owned routes are deleted first, then link routes are added or
 * replaced, then gateway routes (their gateway may need a link route of the same plan),
 * then the default route. Writes of one phase run concurrently, bounded by RtnlClient.
 * One failing route never stops the others: it is reported in `skipped` with its reason.
 */
import type { Plan, PlanRoute } from '../../core/types.js';
import { isNetlinkError, RtnlClient, type RtnlClientOptions } from '../kernel/netlink.js';
import { netnsInode, NetnsError, type NetnsId } from '../kernel/netns.js';
import {
  RT_SCOPE_NOWHERE,
  RT_TABLE_MAIN,
  type Family,
  type KernelRoute,
  type KernelRule,
  type LinkInfo,
  type RouteWrite,
} from '../kernel/netlink-codec.js';
import { applySymmetric, type SymmetricResult } from './symmetric.js';
import {
  defaultDst,
  describeRoute,
  diffRoutes,
  itemOf,
  itemOfDesired,
  lookupProof,
  moreSpecificOverrides,
  planDelta,
  rulesLeaveMainFirst,
  resolveGateways,
  type DefaultAction,
  type DesiredRoute,
  type PlanDelta,
  type PreviousApply,
  type ReplacedItem,
  type RouteItem,
  type SavedDefault,
  type SkippedItem,
  type SkipReason,
} from './diff.js';

export type { SavedDefault, SkippedItem, SkipReason, RouteItem, ReplacedItem } from './diff.js';

/**
 * rtnetlink protocol number (rtm_protocol, RTPROT_*) that marks the routes ovnkube-route
 * owns: 111 (0x6f). Unused by linux/rtnetlink.h and iproute2's rt_protos (which reserve
 * 0-4, 8-18, 42, 99, 186-189, 192). `ip route` shows it as "proto 111"; an
 * /etc/iproute2/rt_protos.d/ovnkube-route.conf line "111 ovnkube-route" names it.
 */
export const RTPROT_OVNKUBE_ROUTE = 111;

/** What an apply did, for reports and metrics. `changed` is false on an idempotent re-apply. */
export interface ApplyResult {
  netns: string;
  added: RouteItem[];
  removed: RouteItem[];
  replaced: ReplacedItem[];
  /** Default routes put back from their saved original. */
  restored: RouteItem[];
  unchanged: RouteItem[];
  skipped: SkippedItem[];
  /** Destinations held by routes of ours after the apply (feed them back as `reclaim`). */
  owned: string[];
  /**
   * The symmetric return paths (symmetric.ts): tables and rules added, removed, in place.
   * Its skipped items are in `skipped` too. Absent only in results made by hand.
   */
  symmetric?: SymmetricResult;
  changed: boolean;
}

export interface ApplyOptions {
  /** Ownership mark (default RTPROT_OVNKUBE_ROUTE). */
  protocol?: number;
  /** Original default routes saved by earlier applies (at most one per family). */
  savedDefault?: SavedDefault[];
  /**
   * Called with the original default route BEFORE ours replaces it; awaited, and if it
   * throws the default route is not touched (skipped 'error'). Persist it durably here.
   * Not called when a saved original for that family is already known.
   */
  saveDefault?: (saved: SavedDefault) => void | Promise<void>;
  /** Called after the original default of `family` was restored (or is moot): drop it from storage. */
  forgetDefault?: (family: Family) => void | Promise<void>;
  /**
   * Destinations that were ours at the last apply (ApplyResult.owned). A foreign route found
   * at one of them is an owned route someone changed (`ip route change` rewrites the
   * protocol), so it is replaced instead of being reported as a collision.
   */
  reclaim?: Iterable<string>;
  /**
   * What the netns holds now, when the caller knows it for certain (RouteKeeper: the last
   * apply's reads plus the kernel's own announcements of its writes since, and nothing else
   * announced, dropped or unread): the apply reads nothing before writing. Absent: links,
   * routes and rules are dumped.
   */
  view?: KernelView;
  /**
   * With `view`: the apply that left the netns as `view` says (its plan and result). A change
   * that only adds or removes plain routes is then written as that difference (planDelta).
   */
  previous?: PreviousApply;
  /** Called when the apply is written as such a difference (tests, diagnostics). */
  onDelta?: () => void;
  /** Called with what the apply read before its writes (not when it was given a view). */
  onRead?: (view: KernelView) => void;
}

/** A netns's links, routes of every table, and rules, as one apply reads them. */
export interface KernelView {
  links: readonly LinkInfo[];
  routes: readonly KernelRoute[];
  rules: readonly KernelRule[];
}

/** The write for `d`: its own metric when the plan gives one, else `priority` (an existing route's). */
function writeOf(d: DesiredRoute, protocol: number, priority?: number): RouteWrite {
  const w: RouteWrite = { dst: d.dst, oif: d.oif, scope: d.scope, protocol };
  if (d.via !== undefined) w.via = d.via;
  const metric = d.metric ?? priority;
  if (metric !== undefined) w.priority = metric;
  if (d.src !== undefined) w.prefsrc = d.src;
  if (d.mtu !== undefined) w.mtu = d.mtu;
  if (d.advmss !== undefined) w.advmss = d.advmss;
  return w;
}

/**
 * Put `want` in place of `have`. Same metric (or none asked): one atomic replace. Another
 * metric: the kernel keys routes by (dst, metric), so replace cannot move a route to another
 * metric; add ours at the new metric (exclusively: what is there is not ours to overwrite),
 * then delete `have`. Traffic is routed all along (by `have`, then by both, then by ours).
 */
async function swap(client: RtnlClient, want: DesiredRoute, have: KernelRoute, protocol: number): Promise<void> {
  if (want.metric === undefined || want.metric === have.priority) {
    await client.replaceRoute(writeOf(want, protocol, have.priority));
    return;
  }
  await client.addRoute(writeOf(want, protocol));
  try {
    await client.deleteRoute(keyOf(have));
  } catch (e) {
    if (!isNetlinkError(e, 'ESRCH')) throw e;
  }
}

function skipReasonOf(e: unknown): SkipReason {
  if (isNetlinkError(e, 'ENETUNREACH') || isNetlinkError(e, 'EHOSTUNREACH')) return 'gateway-unreachable';
  if (isNetlinkError(e, 'ENODEV')) return 'dev-missing';
  if (isNetlinkError(e, 'ENETDOWN')) return 'dev-down';
  if (isNetlinkError(e, 'EEXIST')) return 'collision';
  return 'error';
}

/** Errors that mean the whole client is unusable: abort the apply instead of skipping. */
function fatal(e: unknown): boolean {
  return isNetlinkError(e, 'ECLOSED') || !isNetlinkError(e);
}

/**
 * Apply `plan` through an open client. Reads links and the main table, computes the diff
 * (routes-diff.ts), executes it, and returns what changed. Idempotent. Throws only when
 * the client itself fails (closed, not a NetlinkError); per-route failures are `skipped`.
 */
/** Delete our routes `ks`, all at once, each recorded as removed once gone. */
function removeRoutes(client: RtnlClient, ks: readonly KernelRoute[], attempt: Attempt, res: ApplyResult): Promise<void[]> {
  return Promise.all(
    ks.map((k) =>
      attempt(
        itemOf(k),
        () => client.deleteRoute(keyOf(k)),
        () => {
          res.removed.push(itemOf(k));
        },
      ),
    ),
  );
}

/**
 * Add `adds` and swap `replaces` in, recording each: the routes without a gateway first, then
 * those through one (a gateway may be reachable only through a route of the first group).
 */
async function writeRoutes(
  client: RtnlClient,
  adds: readonly DesiredRoute[],
  replaces: readonly { want: DesiredRoute; have: KernelRoute }[],
  protocol: number,
  attempt: Attempt,
  res: ApplyResult,
): Promise<void> {
  for (const gateway of [false, true]) {
    const writes: Promise<void>[] = [];
    for (const d of adds) {
      if ((d.via !== undefined) !== gateway) continue;
      writes.push(
        attempt(
          itemOfDesired(d),
          () => client.addRoute(writeOf(d, protocol)),
          () => {
            res.added.push(itemOfDesired(d));
          },
        ),
      );
    }
    for (const { want, have } of replaces) {
      if ((want.via !== undefined) !== gateway) continue;
      const item = itemOfDesired(want);
      writes.push(
        attempt(
          item,
          () => swap(client, want, have, protocol),
          () => {
            res.replaced.push({ ...item, from: { ...itemOf(have), protocol: have.protocol } });
          },
        ),
      );
    }
    await Promise.all(writes);
  }
}

/** Run one write of an apply: done (`ok`), already gone (ESRCH), or skipped with its reason; fatal errors throw. */
function attemptFor(res: ApplyResult): Attempt {
  return async (item, op, ok) => {
    try {
      await op();
      ok();
    } catch (e) {
      if (isNetlinkError(e, 'ESRCH')) return; // already gone: the goal is reached without us
      if (fatal(e)) throw e;
      res.skipped.push({ ...item, reason: skipReasonOf(e), detail: (e as Error).message });
    }
  };
}

export async function applyPlanWith(client: RtnlClient, plan: Plan, opts: ApplyOptions = {}): Promise<ApplyResult> {
  const protocol = opts.protocol ?? RTPROT_OVNKUBE_ROUTE;
  if (opts.view && opts.previous) {
    const delta = planDelta(opts.previous, plan, opts.view.routes, opts.view.links, protocol);
    if (delta) {
      opts.onDelta?.();
      return applyDelta(client, plan, delta, opts.view, protocol);
    }
  }
  // One dump each: links; the routes of every table (main for the plan, the others for the
  // symmetric return paths and the effective-route check); the rules of both families.
  // Or none, when the caller knows them (opts.view).
  let links: readonly LinkInfo[], all: readonly KernelRoute[], rules: readonly KernelRule[];
  if (opts.view) ({ links, routes: all, rules } = opts.view);
  else {
    links = await client.listLinks();
    all = await client.listRoutes({ table: 'any', links });
    rules = await client.listRules();
    opts.onRead?.({ links, routes: all, rules });
  }
  const table = all.filter((k) => k.table === RT_TABLE_MAIN);
  const symmetric = plan.symmetric ?? [];
  // `via: gateway` becomes this pod's gateway of that dev, read from the same dump.
  const saved = opts.savedDefault ?? [];
  const gw = resolveGateways(plan, table, links, protocol, saved);
  plan = gw.plan;
  const diff = diffRoutes({ plan, table, links, protocol, saved, reclaim: new Set(opts.reclaim ?? []) });
  const res = newResult(client.netns, diff.unchanged.map(itemOfDesired), [...gw.skipped, ...diff.skipped], [...diff.ownedKept]);
  const attempt = attemptFor(res);
  await removeRoutes(client, diff.remove, attempt, res);
  await writeRoutes(client, diff.add, diff.replace, protocol, attempt, res);
  const ctx: DefaultContext = { client, protocol, links, opts, res, attempt };
  for (const action of diff.defaults) await applyDefault(action, ctx);
  await checkEffective(client, plan, res, { all, table, rules, links }, protocol);
  // Symmetric return paths (a table per device + `ip rule from` its addresses): written, or
  // removed when the plan no longer lists the device. The device's gateway is found in the
  // main table read above, as for `via: gateway`.
  const sym = await applySymmetric(client, symmetric, { links, main: table, others: all, rules, saved }, protocol);
  res.symmetric = sym;
  res.skipped.push(...sym.skipped);
  return settled(res);
}

/** The result of an apply that has written nothing yet: what is in place, skipped and ours so far. */
function newResult(netns: string, unchanged: RouteItem[], skipped: SkippedItem[], owned: string[]): ApplyResult {
  return { netns, added: [], removed: [], replaced: [], restored: [], unchanged, skipped, owned, changed: false };
}

/** Once every write is done: the destinations written become ours (sorted), and whether anything changed. */
function settled(res: ApplyResult): ApplyResult {
  res.owned.push(...res.added.map((x) => x.dst), ...res.replaced.map((x) => x.dst));
  res.owned.sort();
  const sym = res.symmetric;
  res.changed =
    res.added.length + res.removed.length + res.replaced.length + res.restored.length + (sym ? sym.added.length + sym.removed.length : 0) >
    0;
  return res;
}

/**
 * A plan change written as its difference (planDelta): our routes of the dropped destinations
 * deleted, the new ones added and checked as a whole apply checks them; the rest reported in
 * place as the last apply found them. The same writes in the same order, and the same result,
 * as applyPlanWith's whole comparison (test/injector/plan-delta.test.ts).
 */
async function applyDelta(client: RtnlClient, plan: Plan, delta: PlanDelta, view: KernelView, protocol: number): Promise<ApplyResult> {
  const res = newResult(client.netns, delta.unchanged, [], delta.ownedKept);
  res.symmetric = { added: [], removed: [], unchanged: [], skipped: [], tables: [] };
  const attempt = attemptFor(res);
  await removeRoutes(client, delta.remove, attempt, res);
  await writeRoutes(client, delta.add, [], protocol, attempt, res);
  if (res.added.length) {
    const added = new Set(res.added.map((x) => x.dst));
    const table = view.routes.filter((k) => k.table === RT_TABLE_MAIN);
    const routes = plan.routes.filter((r) => added.has(r.dst));
    await checkEffective(client, { v: plan.v, routes }, res, { all: view.routes, table, rules: view.rules, links: view.links }, protocol);
  }
  return settled(res); // (nothing replaced, restored or symmetric: added and removed decide)
}

/**
 * Where the kernel really sends the traffic: for each plan route in place (added, replaced
 * or unchanged; not the default route), look up the route the FIB uses for its destination
 * (RTM_GETROUTE, fibmatch). A foreign route that takes precedence over ours (an IPv4 `ip
 * route prepend`, an IPv6 route with a lower metric, a more specific route to another
 * device anywhere inside its destination) leaves ours in
 * the table but not in effect: that route is reported as skipped, reason 'collision', and
 * left alone (ours stays, so it is in effect again once the foreign route goes).
 * The lookup is skipped where the dumps read before the writes prove its answer is ours
 * (rulesLeaveMainFirst and lookupProof: only the kernel's rules and ours, nothing else
 * at or inside the destination):
 * a pod with nothing foreign in the way costs no request per route.
 */
async function checkEffective(
  client: RtnlClient,
  plan: Plan,
  res: ApplyResult,
  read: { all: readonly KernelRoute[]; table: readonly KernelRoute[]; rules: readonly KernelRule[]; links: readonly LinkInfo[] },
  protocol: number,
): Promise<void> {
  const inPlace = new Set([...res.added, ...res.replaced, ...res.unchanged].map((x) => x.dst));
  const skipped = new Set(res.skipped.map((x) => x.dst));
  const check = plan.routes.filter((r) => inPlace.has(r.dst) && !skipped.has(r.dst) && !r.dst.endsWith('/0'));
  if (!check.length) return;
  const collision = (r: PlanRoute, detail: string): void => {
    res.skipped.push({
      family: r.dst.includes(':') ? 6 : 4,
      dst: r.dst,
      dev: r.dev,
      ...(r.via ? { via: r.via } : {}),
      reason: 'collision',
      detail,
    });
  };
  const overrides = moreSpecificOverrides(read.table, protocol);
  let provablyOurs: ((want: PlanRoute) => boolean) | undefined;
  // Decided from the table read before the writes where it can be (in plan order); the rest
  // ask the kernel, all at once.
  const ask: PlanRoute[] = [];
  for (const r of check) {
    // Part of the destination taken by a more specific foreign route to another device
    // (our writes never touch foreign routes, so the table read before them still holds).
    const inside = overrides(r);
    if (inside.length) {
      collision(
        r,
        `our route is in the table but part of its traffic takes a more specific route: ${inside.slice(0, 4).map(describeRoute).join('; ')}${inside.length > 4 ? `; and ${inside.length - 4} more` : ''}`,
      );
      continue;
    }
    provablyOurs ??= rulesLeaveMainFirst(read.rules, protocol) ? lookupProof(read.all, protocol) : () => false;
    if (!provablyOurs(r)) ask.push(r);
  }
  if (!ask.length) return;
  await Promise.all(
    ask.map(async (r) => {
      const addr = r.dst.slice(0, r.dst.indexOf('/'));
      let eff;
      try {
        eff = await client.effectiveRoute(addr, read.links);
      } catch (e) {
        if (fatal(e)) throw e;
        return; // a failed lookup says nothing either way
      }
      if (eff && eff.dst === r.dst && eff.dev === r.dev && eff.via === r.via) return;
      const what = eff
        ? `${eff.dst}${eff.via ? ` via ${eff.via}` : ''}${eff.dev ? ` dev ${eff.dev}` : ''} proto ${eff.protocol} metric ${eff.priority}`
        : 'no route';
      collision(r, `our route is in the table but traffic to ${addr} takes ${what}`);
    }),
  );
}

/** Identify an existing route exactly (dst, metric, protocol, table; any scope). */
function keyOf(k: KernelRoute) {
  return {
    dst: k.dst,
    table: k.table,
    protocol: k.protocol,
    priority: k.priority,
    tos: k.tos,
    scope: RT_SCOPE_NOWHERE,
    ...(k.oif !== undefined ? { oif: k.oif } : {}),
  };
}

type Attempt = (item: RouteItem, op: () => Promise<void>, ok: () => void) => Promise<void>;

/** What applying a default-route action needs. */
interface DefaultContext {
  client: RtnlClient;
  protocol: number;
  links: readonly { name: string; index: number }[];
  opts: ApplyOptions;
  /** The result being built. */
  res: ApplyResult;
  attempt: Attempt;
}

async function applyDefault(a: DefaultAction, ctx: DefaultContext): Promise<void> {
  const { client, protocol, opts, res, attempt } = ctx;
  switch (a.kind) {
    case 'unchanged':
      res.unchanged.push(itemOfDesired(a.want));
      if (a.owned) res.owned.push(a.want.dst);
      return;
    case 'skip':
      res.skipped.push(a.item);
      return;
    case 'forget':
      await opts.forgetDefault?.(a.family);
      return;
    case 'replace-owned': {
      const item = itemOfDesired(a.want);
      await attempt(
        item,
        () => swap(client, a.want, a.have, protocol),
        () => {
          res.replaced.push({ ...item, from: { ...itemOf(a.have), protocol: a.have.protocol } });
        },
      );
      return;
    }
    case 'take-over':
      return takeOverDefault(a, ctx);
    case 'restore':
      return restoreSavedDefault(a, ctx);
  }
}

/** Put our default route in place of the original, saving the original first (once). */
async function takeOverDefault(
  a: Extract<DefaultAction, { kind: 'take-over' }>,
  { client, protocol, opts, res, attempt }: DefaultContext,
): Promise<void> {
  const item = itemOfDesired(a.want);
  if (!opts.savedDefault?.some((s) => s.family === a.want.family)) {
    const r = a.replacing;
    const saved: SavedDefault = {
      family: a.want.family,
      route: r
        ? {
            dev: r.dev ?? `if${r.oif}`,
            ...(r.via ? { via: r.via } : {}),
            protocol: r.protocol,
            scope: r.scope,
            priority: r.priority,
            ...(r.prefsrc !== undefined ? { prefsrc: r.prefsrc } : {}),
            ...(r.mtu !== undefined ? { mtu: r.mtu } : {}),
            ...(r.advmss !== undefined ? { advmss: r.advmss } : {}),
          }
        : null,
    };
    try {
      await opts.saveDefault?.(saved);
    } catch (e) {
      res.skipped.push({
        ...item,
        reason: 'error',
        detail: `the original default route could not be saved, so it was not replaced: ${(e as Error).message}`,
      });
      return;
    }
  }
  const replacing = a.replacing;
  await attempt(
    item,
    () => (replacing ? swap(client, a.want, replacing, protocol) : client.replaceRoute(writeOf(a.want, protocol))),
    () => {
      if (a.replacing) res.replaced.push({ ...item, from: { ...itemOf(a.replacing), protocol: a.replacing.protocol } });
      else res.added.push(item);
    },
  );
}

/** Put the saved original default route back in place of ours (or remove ours when there was none). */
async function restoreSavedDefault(
  a: Extract<DefaultAction, { kind: 'restore' }>,
  { client, links, opts, res, attempt }: DefaultContext,
): Promise<void> {
  const s = a.saved.route;
  const before = res.skipped.length;
  if (!s) {
    // There was no default route before ours: restoring means removing ours.
    await attempt(
      itemOf(a.have),
      () => client.deleteRoute(keyOf(a.have)),
      () => {
        res.removed.push(itemOf(a.have));
      },
    );
  } else {
    const item: RouteItem = { family: a.family, dst: defaultDst(a.family), dev: s.dev, ...(s.via ? { via: s.via } : {}) };
    const oif = links.find((l) => l.name === s.dev)?.index;
    if (oif === undefined) {
      res.skipped.push({
        ...item,
        reason: 'default-not-restorable',
        detail: `the saved default route's device ${s.dev} is not in the netns; leaving ours in place`,
      });
      return;
    }
    // At the original's metric: when ours has the same one (no metric was asked), the
    // replace swaps ours for the original atomically; else the original is added back
    // and ours deleted.
    const w: RouteWrite = { dst: item.dst, oif, scope: s.scope, protocol: s.protocol, priority: s.priority };
    if (s.via !== undefined) w.via = s.via;
    if (s.prefsrc !== undefined) w.prefsrc = s.prefsrc;
    if (s.mtu !== undefined) w.mtu = s.mtu;
    if (s.advmss !== undefined) w.advmss = s.advmss;
    const have = a.have;
    await attempt(
      item,
      async () => {
        if (s.priority === have.priority) return client.replaceRoute(w);
        await client.addRoute(w);
        try {
          await client.deleteRoute(keyOf(have));
        } catch (e) {
          if (!isNetlinkError(e, 'ESRCH')) throw e;
        }
      },
      () => {
        res.restored.push(item);
      },
    );
  }
  if (res.skipped.length === before) await opts.forgetDefault?.(a.family);
}

/** Options of applyPlan: the client's (policy, bounds) plus the engine's. */
export interface ApplyPlanOptions extends ApplyOptions, RtnlClientOptions {
  /**
   * Aborting stops the apply at once: its socket is closed synchronously (in the abort
   * itself), so nothing more is written and saveDefault/forgetDefault are not called any
   * more; the apply rejects (NetlinkError ECLOSED or the signal's reason). Routes already
   * written stay. RouteKeeper.close() uses it.
   */
  signal?: AbortSignal;
  /**
   * A client the caller keeps open across applies (RouteKeeper), with the identity the
   * netns path had when it was opened: used instead of opening one, and not closed at the
   * end (an abort still closes it). The netns check compares the path with that identity.
   */
  client?: { client: RtnlClient; netns: NetnsId };
}

/**
 * Apply `plan` to the netns at `path`: open a client (checked against `policy` when given),
 * apply, close. If the netns vanished during the apply (the path is gone or now names
 * another namespace), throws NetnsError('gone'): whatever was written went to a dying
 * namespace. Other errors: NetnsError from opening, NetlinkError when the client fails,
 * the signal's reason when aborted.
 */
export async function applyPlan(path: string, plan: Plan, opts: ApplyPlanOptions = {}): Promise<ApplyResult> {
  const { signal } = opts;
  signal?.throwIfAborted();
  const before = opts.client?.netns ?? netnsInode(path);
  const client = opts.client?.client ?? RtnlClient.open(path, opts);
  const abort = (): void => client.close();
  signal?.addEventListener('abort', abort, { once: true });
  // The engine awaits these between writes: once aborted they must not run (state written
  // after the owner let the netns go would outlive it).
  const guarded: ApplyOptions = {
    ...opts,
    saveDefault:
      opts.saveDefault &&
      ((s) => {
        signal?.throwIfAborted();
        return opts.saveDefault!(s);
      }),
    forgetDefault:
      opts.forgetDefault &&
      ((f) => {
        signal?.throwIfAborted();
        return opts.forgetDefault!(f);
      }),
  };
  try {
    const res = await applyPlanWith(client, plan, guarded);
    signal?.throwIfAborted();
    res.netns = path;
    const after = (() => {
      try {
        return netnsInode(path);
      } catch {
        return null;
      }
    })();
    if (!after || after.ino !== before.ino || after.dev !== before.dev) {
      throw new NetnsError(
        'gone',
        path,
        `netns ${path} vanished during the apply (${res.added.length} added, ${res.removed.length} removed before it went)`,
      );
    }
    return res;
  } finally {
    signal?.removeEventListener('abort', abort);
    if (!opts.client) client.close();
  }
}

/**
 * Put the saved original default route back (or remove ours when there was none), as an
 * apply of a plan without a default would. For the agent's cleanup when a pod leaves the
 * plan entirely. Returns the apply result restricted to the default route.
 */
export async function restoreDefault(
  client: RtnlClient,
  saved: SavedDefault[],
  opts: Omit<ApplyOptions, 'savedDefault'> = {},
): Promise<ApplyResult> {
  const protocol = opts.protocol ?? RTPROT_OVNKUBE_ROUTE;
  // Keep every other owned route: a plan of exactly the owned non-default routes now there.
  const keep = (await client.listRoutes())
    .filter((k) => k.protocol === protocol && k.dst !== defaultDst(k.family) && k.dev !== undefined)
    .map((k) => ({
      dst: k.dst,
      dev: k.dev!,
      ...(k.via ? { via: k.via } : {}),
      ...(k.prefsrc !== undefined ? { src: k.prefsrc } : {}),
      ...(k.mtu !== undefined ? { mtu: k.mtu } : {}),
      ...(k.advmss !== undefined ? { advmss: k.advmss } : {}),
    }));
  return applyPlanWith(client, { v: 1, routes: keep }, { ...opts, savedDefault: saved });
}
