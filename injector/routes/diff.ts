/**
 * The pure half of the route engine: given a plan, the netns's main table and its links,
 * compute the exact operations. No I/O; injector/routes/engine.ts executes the result.
 *
 * Ownership: a route is ours when its rtnetlink protocol is `protocol` (RTPROT_OVNKUBE_ROUTE).
 * Only owned routes are ever deleted or replaced; a foreign (CNI) route is never touched,
 * except the default route when the plan replaces it (saved first, restored later).
 *
 * Per plan route (dst, dev, via):
 *   dev missing in the netns        -> skipped 'dev-missing' (and owned routes of dst are stale)
 *   an owned route of dst matches   -> unchanged (other owned routes of dst are deleted)
 *   an owned route of dst differs   -> replaced (atomically, same metric)
 *   a foreign route of dst matches  -> unchanged (someone already routes it our way)
 *   a foreign route of dst differs  -> skipped 'collision' (reported, not forced), unless dst
 *                                      is in `reclaim` (it was ours: someone changed it with
 *                                      `ip route change/replace`, which rewrites the protocol)
 *                                      -> replaced
 *   nothing for dst                 -> added
 * Owned routes whose dst is not in the plan are deleted. A route without via is written
 * scope link on dev; with via it is a gateway route (scope universe). IPv6 routes always
 * read back scope universe, so scope is compared for IPv4 only.
 *
 * Attributes (docs/routing.md): an owned route matches only when its preferred source, MTU
 * and advmss are exactly the plan's (absent on both sides, or equal), a foreign one when it
 * has those the plan sets; and, when the plan gives a metric, its metric is that one. A plan route without a metric accepts any metric (an
 * existing route keeps its own). The metric is part of a route's identity in the kernel, so
 * changing it is an add at the new metric and a delete of the old route (`swap` in routes.ts).
 */
import { cidrWithin, networkAt, parsePrefix, type CIDR } from '../../core/ip.js';
import { GATEWAY_VIA, type Plan, type PlanRoute } from '../../core/types.js';
import {
  familyOf,
  RT_SCOPE_LINK,
  RT_SCOPE_UNIVERSE,
  RT_TABLE_DEFAULT,
  RT_TABLE_LOCAL,
  RT_TABLE_MAIN,
  FR_ACT_TO_TBL,
  type Family,
  type KernelRoute,
  type KernelRule,
  type LinkInfo,
} from '../kernel/netlink-codec.js';

/** A plan route resolved against the netns's links. */
export interface DesiredRoute {
  family: Family;
  dst: string;
  dev: string;
  oif: number;
  via?: string;
  scope: number;
  /** True for the plan's default route. */
  isDefault: boolean;
  /** Preferred source (RTA_PREFSRC). */
  src?: string;
  /** Metric to write and require; absent: any (an existing route keeps its own). */
  metric?: number;
  mtu?: number;
  advmss?: number;
}

export type SkipReason =
  | 'dev-missing' // the plan's dev is not in the netns (applied when it appears)
  | 'dev-down' // the plan's dev is there but down (ENETDOWN; applied when it comes up)
  | 'collision' // a foreign route already routes dst elsewhere
  | 'gateway-unreachable' // the kernel refused the gateway (ENETUNREACH)
  | 'default-not-restorable' // an owned default route must go but no saved original is known
  | 'no-gateway' // via "gateway", but the pod's table shows no gateway on that dev
  | 'error'; // any other kernel error (detail says which)

/** A route in a result: what the plan asked for, or what the table held. */
export interface RouteItem {
  family: Family;
  dst: string;
  dev?: string;
  via?: string;
  src?: string;
  metric?: number;
  mtu?: number;
  advmss?: number;
}
export interface SkippedItem extends RouteItem {
  reason: SkipReason;
  detail: string;
}
export interface ReplacedItem extends RouteItem {
  from: RouteItem & { protocol: number };
}

/** The original default route of a family, saved before ours replaced it. */
export interface SavedDefault {
  family: Family;
  /** The foreign route ours replaced; null when there was none (ours was added). */
  route: {
    dev: string;
    via?: string;
    protocol: number;
    scope: number;
    priority: number;
    prefsrc?: string;
    mtu?: number;
    advmss?: number;
  } | null;
}

/** What to do about the default route of one family. */
export type DefaultAction =
  | { kind: 'unchanged'; want: DesiredRoute; owned: boolean }
  | { kind: 'take-over'; want: DesiredRoute; replacing: KernelRoute | null } // save original first
  | { kind: 'replace-owned'; want: DesiredRoute; have: KernelRoute }
  | { kind: 'restore'; family: Family; have: KernelRoute; saved: SavedDefault }
  | { kind: 'forget'; family: Family } // saved state with nothing of ours left to restore
  | { kind: 'skip'; item: SkippedItem };

/** The operations that bring the table to the plan. */
export interface RouteDiff {
  add: DesiredRoute[];
  replace: { want: DesiredRoute; have: KernelRoute }[];
  remove: KernelRoute[];
  unchanged: DesiredRoute[];
  /** Destinations among `unchanged` that are held by an owned route. */
  ownedKept: string[];
  skipped: SkippedItem[];
  defaults: DefaultAction[];
}

/** The default destination of a family. */
export function defaultDst(family: Family): string {
  return family === 4 ? '0.0.0.0/0' : '::/0';
}

/**
 * Family of the plan's default route: that of its gateway address, else of its src, IPv4
 * when it has neither (a `via: gateway` default is IPv4 unless its src is IPv6).
 */
export function defaultFamily(d: { via?: string; src?: string }): Family {
  return d.via !== undefined && d.via !== GATEWAY_VIA ? familyOf(d.via) : d.src !== undefined ? familyOf(d.src) : 4;
}

/**
 * The gateway of `link` for `family` in a pod, for `via: gateway` and symmetric return paths:
 * - the gateway of the original default route ours replaced on that device (`saved` when the
 *   plan took the default over): once ours is in place the table no longer shows it, and it
 *   was the best candidate of all (a default route). Without it a plan that moves the default
 *   to eth1 and pins the Service CIDR to eth0 `via: gateway` (what the DefaultRouteMovesServices
 *   warning advises) lost its Service route at the next apply after the first (no-gateway);
 * - else the gateway of a unicast route through a gateway on that device that ovnkube-route
 *   did not write (the CNI's, written from that interface's CNI result). Preferred: the default
 *   route, then the shortest prefix, then the lowest metric, then the smallest address, so the
 *   choice is stable.
 * undefined when there is none.
 */
export function gatewayOf(
  table: readonly KernelRoute[],
  link: { index: number; name: string },
  family: Family,
  protocol: number,
  saved: readonly SavedDefault[] = [],
): string | undefined {
  const original = saved.find((x) => x.family === family && x.route?.dev === link.name && x.route.via !== undefined);
  if (original) return original.route!.via;
  const cands = table.filter(
    (k) =>
      k.family === family && k.oif === link.index && k.via !== undefined && k.protocol !== protocol && k.type === 'UNICAST' && !k.multipath,
  );
  const bits = (k: KernelRoute): number => Number(k.dst.slice(k.dst.indexOf('/') + 1));
  cands.sort((a, b) => bits(a) - bits(b) || a.priority - b.priority || (a.via! < b.via! ? -1 : a.via! > b.via! ? 1 : 0));
  return cands[0]?.via;
}

/**
 * Replace every `via: gateway` of the plan by the gateway of its dev (gatewayOf: the original
 * default route ours replaced there, `saved`, else the table's). A route whose gateway cannot be found is left out and reported skipped,
 * reason 'no-gateway'; so is a default route. The result has only literal gateways.
 */
export function resolveGateways(
  plan: Plan,
  table: readonly KernelRoute[],
  links: readonly LinkInfo[],
  protocol: number,
  saved: readonly SavedDefault[] = [],
): { plan: Plan; skipped: SkippedItem[]; resolved: { dst: string; dev: string; via: string }[] } {
  const byName = new Map(links.map((l) => [l.name, l.index]));
  const skipped: SkippedItem[] = [];
  const resolved: { dst: string; dev: string; via: string }[] = [];
  const find = (dst: string, dev: string, family: Family): string | undefined => {
    const oif = byName.get(dev);
    if (oif === undefined) return GATEWAY_VIA; // dev-missing is reported by the diff as usual
    const gw = gatewayOf(table, { index: oif, name: dev }, family, protocol, saved);
    if (gw === undefined) {
      skipped.push({
        family,
        dst,
        dev,
        via: GATEWAY_VIA,
        reason: 'no-gateway',
        detail: `via "gateway": the pod's table has no IPv${family} route through a gateway on ${dev} that ovnkube-route did not write, so ${dev}'s gateway on this node is unknown; give ${dev} a gateway route in its CNI configuration or write via as an address`,
      });
      return undefined;
    }
    resolved.push({ dst, dev, via: gw });
    return gw;
  };
  const routes: PlanRoute[] = [];
  for (const r of plan.routes) {
    if (r.via !== GATEWAY_VIA) {
      routes.push(r);
      continue;
    }
    const gw = find(r.dst, r.dev, familyOf(r.dst));
    if (gw === GATEWAY_VIA) {
      const { via: _drop, ...rest } = r;
      routes.push(rest); // dev missing: the diff skips it as dev-missing
    } else if (gw !== undefined) routes.push({ ...r, via: gw });
  }
  const out: Plan = { v: plan.v, routes };
  if (plan.default) {
    if (plan.default.via !== GATEWAY_VIA) out.default = plan.default;
    else {
      const family = defaultFamily(plan.default);
      const gw = find(defaultDst(family), plan.default.dev, family);
      if (gw === GATEWAY_VIA) out.default = { ...plan.default, via: undefined as never };
      else if (gw !== undefined) out.default = { ...plan.default, via: gw };
    }
  }
  if (out.default && out.default.via === undefined) {
    const { via: _v, ...d } = out.default;
    out.default = d;
  }
  return { plan: out, skipped, resolved };
}

function desired(r: PlanRoute, oif: number, isDefault: boolean, family: Family): DesiredRoute {
  const d: DesiredRoute = {
    family,
    dst: r.dst,
    dev: r.dev,
    oif,
    isDefault,
    scope: r.via === undefined && family === 4 ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE,
  };
  if (r.via !== undefined) d.via = r.via;
  if (r.src !== undefined) d.src = r.src;
  if (r.metric !== undefined) d.metric = r.metric;
  if (r.mtu !== undefined) d.mtu = r.mtu;
  if (r.advmss !== undefined) d.advmss = r.advmss;
  return d;
}

/**
 * True when the kernel route `k` is what `d` asks for. An owned route must match exactly
 * (scope for IPv4; src, mtu and advmss set or absent as the plan says). A foreign route (a
 * CNI's connected route with its `src`, say) already routes our way when it matches dev, via
 * and the attributes the plan does set.
 */
export function routeMatches(k: KernelRoute, d: DesiredRoute, owned: boolean): boolean {
  if (k.type !== 'UNICAST' || k.multipath || k.oif !== d.oif || k.via !== d.via) return false;
  if (d.metric !== undefined && k.priority !== d.metric) return false;
  if (owned) {
    if (k.prefsrc !== d.src || k.mtu !== d.mtu || k.advmss !== d.advmss) return false;
    return !(d.family === 4 && k.scope !== d.scope);
  }
  return (
    (d.src === undefined || k.prefsrc === d.src) &&
    (d.mtu === undefined || k.mtu === d.mtu) &&
    (d.advmss === undefined || k.advmss === d.advmss)
  );
}

/** Describe a kernel route as a result item. */
export function itemOf(k: KernelRoute): RouteItem {
  const it: RouteItem = { family: k.family, dst: k.dst };
  if (k.dev !== undefined) it.dev = k.dev;
  else if (k.oif !== undefined) it.dev = `if${k.oif}`;
  if (k.via !== undefined) it.via = k.via;
  if (k.prefsrc !== undefined) it.src = k.prefsrc;
  if (k.mtu !== undefined) it.mtu = k.mtu;
  if (k.advmss !== undefined) it.advmss = k.advmss;
  return it;
}

/** Describe a desired route as a result item (with the attributes the plan sets). */
export function itemOfDesired(d: DesiredRoute): RouteItem {
  const it: RouteItem = { family: d.family, dst: d.dst, dev: d.dev };
  if (d.via !== undefined) it.via = d.via;
  if (d.src !== undefined) it.src = d.src;
  if (d.metric !== undefined) it.metric = d.metric;
  if (d.mtu !== undefined) it.mtu = d.mtu;
  if (d.advmss !== undefined) it.advmss = d.advmss;
  return it;
}

export function describeRoute(k: KernelRoute): string {
  return (
    `${k.dst}${k.via ? ` via ${k.via}` : ''}${k.dev ? ` dev ${k.dev}` : ''}${k.prefsrc ? ` src ${k.prefsrc}` : ''} proto ${k.protocol} metric ${k.priority}` +
    `${k.mtu !== undefined ? ` mtu ${k.mtu}` : ''}${k.advmss !== undefined ? ` advmss ${k.advmss}` : ''}${k.type !== 'UNICAST' ? ` type ${k.type}` : ''}`
  );
}

/** What diffRoutes compares. */
export interface DiffInput {
  plan: Plan;
  /** Main table routes of both families, as RtnlClient.listRoutes returns them. */
  table: readonly KernelRoute[];
  links: readonly LinkInfo[];
  /** The route protocol that marks our routes. */
  protocol: number;
  /** The default routes saved by earlier applies (at most one per family). */
  saved?: SavedDefault[];
  /** Destinations whose foreign route we may replace. */
  reclaim?: ReadonlySet<string>;
}

/** Compute the operations that bring the table to `plan`. */
export function diffRoutes({ plan, table, links, protocol, saved = [], reclaim = new Set() }: DiffInput): RouteDiff {
  const byName = new Map(links.map((l) => [l.name, l.index]));
  const byDst = new Map<string, KernelRoute[]>();
  for (const k of table) {
    const list = byDst.get(k.dst);
    if (list) list.push(k);
    else byDst.set(k.dst, [k]);
  }
  const diff: RouteDiff = { add: [], replace: [], remove: [], unchanged: [], ownedKept: [], skipped: [], defaults: [] };
  const claimed = new Set<string>();
  for (const r of plan.routes) {
    const family = familyOf(r.dst);
    if (r.dst === defaultDst(family)) claimed.add(r.dst); // a plan route for the default dst is handled like any other
    const oif = byName.get(r.dev);
    if (oif === undefined) {
      diff.skipped.push({
        ...itemOfDesired(desired(r, 0, false, family)),
        reason: 'dev-missing',
        detail: `device ${r.dev} is not in the netns`,
      });
      continue;
    }
    claimed.add(r.dst);
    resolveOne(desired(r, oif, false, family), byDst.get(r.dst) ?? [], protocol, diff, reclaim.has(r.dst));
  }
  for (const family of [4, 6] as Family[]) {
    const dst = defaultDst(family);
    if (claimed.has(dst)) continue;
    claimed.add(dst);
    const want = plan.default && defaultFamily(plan.default) === family ? plan.default : undefined;
    const action = defaultAction(
      family,
      want,
      byDst.get(dst) ?? [],
      byName,
      protocol,
      saved.find((s) => s.family === family),
    );
    if (action) diff.defaults.push(action);
  }
  for (const k of table) if (k.protocol === protocol && !claimed.has(k.dst)) diff.remove.push(k);
  return diff;
}

/** The last apply a plan change may be written against (its plan and its result). */
export interface PreviousApply {
  plan: Plan;
  result: {
    added: readonly RouteItem[];
    replaced: readonly ReplacedItem[];
    unchanged: readonly RouteItem[];
    restored: readonly RouteItem[];
    skipped: readonly SkippedItem[];
    owned: readonly string[];
    symmetric?: { added: readonly unknown[]; removed: readonly unknown[]; unchanged: readonly unknown[]; skipped: readonly unknown[] };
  };
}

/** A plan change as its difference from the plan last applied (planDelta). */
export interface PlanDelta {
  add: DesiredRoute[];
  /** Our routes of the destinations the plan no longer has. */
  remove: KernelRoute[];
  /** The routes staying in place, as the last apply reported them (plan order, the default last). */
  unchanged: RouteItem[];
  /** Destinations held by routes of ours that stay. */
  ownedKept: string[];
}

/** Whether two plan routes (or defaults) say the same write: device, gateway, source, metric, MTU, advmss. */
function sameRoute(a: Omit<PlanRoute, 'dst'>, b: Omit<PlanRoute, 'dst'>): boolean {
  return a.dev === b.dev && a.via === b.via && a.src === b.src && a.metric === b.metric && a.mtu === b.mtu && a.advmss === b.advmss;
}

/**
 * A plan change that only adds and removes plain routes, as that difference instead of a
 * comparison of the whole plan with the whole table (diffRoutes). `routes`: every table as the
 * last apply left it, known for certain (RouteKeeper's mirror: nothing but that apply's own
 * writes happened since). It is what diffRoutes would give (test/injector/plan-delta.test.ts),
 * or null whenever that is not plain to see:
 * - the last apply left something undone or restored (a skipped route, a restored default),
 *   or either plan has symmetric return paths;
 * - a destination in both plans with other attributes (a replace), another default route, a
 *   destination twice in a plan, a plan route to a default destination;
 * - an added route with `via: gateway`, on a device not in the netns, or where the main table
 *   has any route of its destination (a collision, a reclaim);
 * - a removed destination not held by exactly one route of ours;
 * - an added or removed destination that contains or lies inside another plan route's.
 */
export function planDelta(
  prev: PreviousApply,
  plan: Plan,
  routes: readonly KernelRoute[],
  links: readonly LinkInfo[],
  protocol: number,
): PlanDelta | null {
  if (!lastApplyComplete(prev)) return null;
  const change = plainChange(prev.plan, plan);
  if (!change) return null;
  const { adds, removes, adding, removing } = change;
  const owned = new Set(prev.result.owned);
  if (removes.some((dst) => !owned.has(dst))) return null;
  const remove = ourRoutesAt(routes, adding, removing, protocol);
  if (!remove || remove.length !== removes.length) return null;
  const add: DesiredRoute[] = [];
  for (const r of adds) {
    const oif = r.via === GATEWAY_VIA ? undefined : links.find((l) => l.name === r.dev)?.index;
    if (oif === undefined) return null;
    add.push(desired(r, oif, false, familyOf(r.dst)));
  }
  const unchanged = itemsInPlace(prev.result, plan, adding);
  if (!unchanged) return null;
  return { add, remove, unchanged, ownedKept: prev.result.owned.filter((d) => !removing.has(d)) };
}

/** What planDelta reads of the two plans alone: the destinations added and removed. */
interface PlainChange {
  adds: PlanRoute[];
  removes: string[];
  adding: ReadonlySet<string>;
  removing: ReadonlySet<string>;
}

/**
 * The change from `p0` to `p1` when it only adds and removes plain routes that overlap no
 * other route of the plan, else null: the part of planDelta that depends on the plans alone.
 * Remembered for frozen plans (decodeSignedPlan's: one object per plan value, shared by the
 * pods that carry it), so that a node-wide change of one Route is judged once, not per pod.
 */
function plainChange(p0: Plan, p1: Plan): PlainChange | null {
  const frozen = Object.isFrozen(p0) && Object.isFrozen(p1);
  if (frozen) {
    const hit = plainChanges.get(p0)?.get(p1);
    if (hit !== undefined) return hit;
  }
  const answer = judgeChange(p0, p1);
  if (frozen) {
    let to = plainChanges.get(p0);
    if (!to) plainChanges.set(p0, (to = new WeakMap()));
    to.set(p1, answer);
  }
  return answer;
}

const plainChanges = new WeakMap<Plan, WeakMap<Plan, PlainChange | null>>();

function judgeChange(p0: Plan, p1: Plan): PlainChange | null {
  if (!sameDefaults(p0, p1)) return null;
  const change = routeChanges(p0, p1);
  if (!change || (!change.adds.length && !change.removes.length)) return null; // nothing to write: the whole check is as cheap
  const { adds, removes, dsts } = change;
  // Nothing changed may overlap another plan route (its effective-route check could change).
  if ([...adds.map((r) => r.dst), ...removes].some((dst) => overlapsAnother(dst, dsts))) return null;
  return { adds, removes, adding: new Set(adds.map((r) => r.dst)), removing: new Set(removes) };
}

/** The last apply left nothing undone or restored, and neither plan has symmetric return paths. */
function lastApplyComplete(prev: PreviousApply): boolean {
  const r0 = prev.result;
  const sym = r0.symmetric;
  return (
    !r0.skipped.length &&
    !r0.restored.length &&
    !(sym && (sym.added.length || sym.removed.length || sym.unchanged.length || sym.skipped.length)) &&
    !prev.plan.symmetric?.length
  );
}

/** Both plans have no default route, or the same one; and the new one no symmetric return paths. */
function sameDefaults(p0: Plan, p1: Plan): boolean {
  if (p1.symmetric?.length) return false;
  if (!p0.default || !p1.default) return !p0.default && !p1.default;
  return sameRoute(p0.default, p1.default);
}

/**
 * The destinations `p1` adds to `p0` and the ones it drops; null when a destination of both
 * changes its attributes, or either plan lists one twice or a default destination.
 */
function routeChanges(p0: Plan, p1: Plan): { adds: PlanRoute[]; removes: string[]; dsts: Set<string> } | null {
  const before = new Map<string, PlanRoute>();
  for (const r of p0.routes) {
    if (before.has(r.dst) || r.dst === defaultDst(familyOf(r.dst))) return null;
    before.set(r.dst, r);
  }
  const adds: PlanRoute[] = [];
  const dsts = new Set<string>();
  for (const r of p1.routes) {
    if (dsts.has(r.dst) || r.dst === defaultDst(familyOf(r.dst))) return null;
    dsts.add(r.dst);
    const was = before.get(r.dst);
    if (was === undefined) adds.push(r);
    else if (was !== r && !sameRoute(was, r)) return null;
  }
  const removes: string[] = [];
  if (before.size !== p1.routes.length - adds.length) for (const dst of before.keys()) if (!dsts.has(dst)) removes.push(dst);
  return { adds, removes, dsts };
}

/** Whether `dst` contains, or lies inside, another of `dsts` (or cannot be read). */
function overlapsAnother(dst: string, dsts: ReadonlySet<string>): boolean {
  const c = prefixOf(dst);
  if (!c) return true;
  for (const other of dsts) {
    if (other === dst) continue;
    const o = prefixOf(other);
    if (!o || (o.family === c.family && (cidrWithin(c, o) || cidrWithin(o, c)))) return true;
  }
  return false;
}

/** Our main-table routes at `removing`; null when the table has anything at `adding`, or anything foreign at `removing`. */
function ourRoutesAt(
  routes: readonly KernelRoute[],
  adding: ReadonlySet<string>,
  removing: ReadonlySet<string>,
  protocol: number,
): KernelRoute[] | null {
  const out: KernelRoute[] = [];
  for (const k of routes) {
    if (k.table !== RT_TABLE_MAIN) continue;
    if (adding.has(k.dst)) return null;
    if (!removing.has(k.dst)) continue;
    if (k.protocol !== protocol) return null;
    out.push(k);
  }
  return out;
}

/** The routes of `plan` that stay, as the last apply reported them (plan order, the default last); null if one is missing. */
function itemsInPlace(r0: PreviousApply['result'], plan: Plan, adding: ReadonlySet<string>): RouteItem[] | null {
  const items = new Map<string, RouteItem>();
  for (const it of r0.unchanged) items.set(it.dst, it);
  for (const it of r0.added) items.set(it.dst, it);
  for (const { from: _from, ...it } of r0.replaced) items.set(it.dst, it);
  const out: RouteItem[] = [];
  for (const r of plan.routes) {
    if (adding.has(r.dst)) continue;
    const it = items.get(r.dst);
    if (!it) return null;
    out.push(it);
  }
  if (plan.default) {
    const it = items.get(defaultDst(defaultFamily(plan.default)));
    if (!it) return null;
    out.push(it);
  }
  return out;
}

function resolveOne(want: DesiredRoute, existing: KernelRoute[], protocol: number, diff: RouteDiff, reclaim: boolean): void {
  const owned = existing.filter((k) => k.protocol === protocol);
  const foreign = existing.filter((k) => k.protocol !== protocol);
  if (owned.length) {
    const keep = owned.find((k) => routeMatches(k, want, true));
    // The one to replace: ours at the wanted metric when there is one (a replace there is
    // atomic), else any of ours.
    const have = keep ?? owned.find((k) => k.priority === want.metric) ?? owned[0]!;
    if (keep) {
      diff.unchanged.push(want);
      diff.ownedKept.push(want.dst);
    } else diff.replace.push({ want, have });
    for (const k of owned) if (k !== have) diff.remove.push(k);
    return;
  }
  if (foreign.some((k) => routeMatches(k, want, false))) {
    diff.unchanged.push(want);
    return;
  }
  if (foreign.length && reclaim) {
    diff.replace.push({ want, have: [...foreign].sort((a, b) => a.priority - b.priority)[0]! });
    return;
  }
  if (foreign.length) {
    diff.skipped.push({
      ...itemOfDesired(want),
      reason: 'collision',
      detail: `a foreign route is in the way: ${foreign.map(describeRoute).join('; ')}`,
    });
    return;
  }
  diff.add.push(want);
}

function defaultAction(
  family: Family,
  want: Omit<PlanRoute, 'dst'> | undefined,
  existing: KernelRoute[],
  byName: Map<string, number>,
  protocol: number,
  saved: SavedDefault | undefined,
): DefaultAction | null {
  const owned = existing.filter((k) => k.protocol === protocol);
  const foreign = existing.filter((k) => k.protocol !== protocol);
  if (!want) {
    if (!owned.length) return saved ? { kind: 'forget', family } : null;
    if (!saved) {
      return {
        kind: 'skip',
        item: {
          ...itemOf(owned[0]!),
          reason: 'default-not-restorable',
          detail: 'the plan no longer sets a default route, but the original one was not saved; leaving ours in place',
        },
      };
    }
    return { kind: 'restore', family, have: owned[0]!, saved };
  }
  const dst = defaultDst(family);
  const oif = byName.get(want.dev);
  if (oif === undefined) {
    return {
      kind: 'skip',
      item: {
        ...itemOfDesired(desired({ dst, ...want }, 0, true, family)),
        reason: 'dev-missing',
        detail: `device ${want.dev} is not in the netns`,
      },
    };
  }
  const d = desired({ dst, ...want }, oif, true, family);
  if (owned.length) {
    const keep = owned.find((k) => routeMatches(k, d, true));
    return keep ? { kind: 'unchanged', want: d, owned: true } : { kind: 'replace-owned', want: d, have: owned[0]! };
  }
  if (foreign.some((k) => routeMatches(k, d, false))) return { kind: 'unchanged', want: d, owned: false };
  // Replace the foreign default of the lowest metric (the one in effect), atomically.
  const inEffect = [...foreign].sort((a, b) => a.priority - b.priority)[0] ?? null;
  return { kind: 'take-over', want: d, replacing: inEffect };
}

/** Route types that carry no traffic of a pod out of a device (the local table's kinds). */
const NOT_FORWARDING = new Set(['LOCAL', 'BROADCAST', 'ANYCAST', 'MULTICAST']);

/** Parsed destinations (the same few strings recur in every pod's table and plan). Bounded. */
const prefixes = new Map<string, CIDR | null>();
const PREFIXES_MAX = 4096;

const prefixOf = (dst: string): CIDR | null => {
  let c = prefixes.get(dst);
  if (c !== undefined) return c;
  const p = parsePrefix(dst);
  c = p.ok ? Object.freeze(p.value) : null;
  if (prefixes.size >= PREFIXES_MAX) prefixes.clear();
  prefixes.set(dst, c);
  return c;
};

/**
 * Whether a route to `dst` (an event's or a table's) can change where traffic to one of
 * `planDsts` goes: the same destination, or a more specific one inside it (longest prefix
 * wins whatever the metric). A less specific route never takes traffic from ours.
 */
export function mayOverride(dst: string, planDsts: readonly string[]): boolean {
  const c = prefixOf(dst);
  if (!c) return false;
  return planDsts.some((p) => {
    const o = prefixOf(p);
    return o !== null && cidrWithin(c, o);
  });
}

/**
 * Foreign routes of `table` (main table, not ours) strictly more specific than the plan
 * route `want` that take part of its traffic out of another device, or drop it (blackhole,
 * unreachable, prohibit, throw): part of our destination does not go where the plan says.
 * One to the same device (the connected subnet inside a wider gateway route, as in the
 * mission's table) steers nothing away and is not listed. Returns the question for one
 * `want`, with the table read once.
 */
export function moreSpecificOverrides(table: readonly KernelRoute[], protocol: number): (want: PlanRoute) => KernelRoute[] {
  // The candidates once per table (an apply asks for every plan route): foreign, forwarding, readable.
  const foreign: { k: KernelRoute; c: CIDR }[] = [];
  for (const k of table) {
    if (k.protocol === protocol || NOT_FORWARDING.has(k.type)) continue;
    const c = prefixOf(k.dst);
    if (c) foreign.push({ k, c });
  }
  return (want) => {
    if (!foreign.length) return [];
    const outer = prefixOf(want.dst);
    if (!outer) return [];
    const out: KernelRoute[] = [];
    for (const { k, c } of foreign) {
      if (c.bits <= outer.bits || !cidrWithin(c, outer)) continue;
      if (k.type !== 'UNICAST' || k.multipath === true || k.dev !== want.dev) out.push(k);
    }
    return out;
  };
}

/** One of the rules every netns starts with (`ip rule show`: 0 local, 32766 main, 32767 default). */
function isKernelRule(r: KernelRule): boolean {
  if (r.action !== FR_ACT_TO_TBL || r.src !== undefined || r.dst !== undefined || r.extra) return false;
  return (
    (r.priority === 0 && r.table === RT_TABLE_LOCAL) ||
    (r.priority === 32766 && r.table === RT_TABLE_MAIN) ||
    (r.priority === 32767 && r.table === RT_TABLE_DEFAULT)
  );
}

/** `from SRC lookup TABLE` and nothing else: the shape of the rules our symmetric return paths write. */
export function isSourceLookupRule(r: KernelRule): boolean {
  return r.src !== undefined && r.action === FR_ACT_TO_TBL && !r.extra && r.dst === undefined;
}

/**
 * Whether a lookup without a source address reaches the main table right after local, and
 * nothing else: the only rules are the kernel's own and ours (ours select by source address,
 * which such a lookup never matches). Depends on the rules alone: asked once per apply.
 */
export function rulesLeaveMainFirst(rules: readonly KernelRule[], protocol: number): boolean {
  return rules.every((r) => isKernelRule(r) || (r.protocol === protocol && isSourceLookupRule(r)));
}

/**
 * Whether the dumps alone prove that the kernel's lookup of the first address of
 * `want.dst` (what the apply's effective-route check asks it) lands on our route, so the
 * lookup can be skipped, given that the rules leave main first (rulesLeaveMainFirst):
 * - nothing in the local table contains the address;
 * - no main-table route other than ours at `want.dst` contains it at a prefix as long as
 *   ours or longer (a shorter one never wins; an equal one may, by metric or order).
 * `all`: the routes of every table read before the apply's writes. Anything else: false,
 * ask the kernel.
 *
 * Made once per apply: the routes of local and main are indexed by prefix length and
 * network, so each plan route costs a lookup per prefix length present, not a comparison
 * with every route of the netns.
 */
export function lookupProof(all: readonly KernelRoute[], protocol: number): (want: PlanRoute) => boolean {
  // The first few questions scan the table (a plan change written as its difference asks for
  // its new routes only); from the fourth on, the table is indexed once and each question costs
  // a lookup per prefix length present. The same answers either way (lookup-proof.test.ts).
  let asked = 0;
  let indexed: ((want: PlanRoute) => boolean) | undefined;
  return (want) => {
    if (++asked <= 3) return scanProof(all, protocol, want);
    indexed ??= indexedProof(all, protocol);
    return indexed(want);
  };
}

/** lookupProof for one route, by a scan of the table. */
function scanProof(all: readonly KernelRoute[], protocol: number, want: PlanRoute): boolean {
  const outer = prefixOf(want.dst);
  if (!outer) return false;
  for (const k of all) {
    if ((k.table !== RT_TABLE_LOCAL && k.table !== RT_TABLE_MAIN) || k.family !== outer.family) continue;
    const c = prefixOf(k.dst);
    if (!c) return false; // unreadable: ask the kernel
    // The first address of want.dst is inside k's prefix when their leading bits agree.
    if (networkAt(outer, c.bits) !== networkAt(c, c.bits)) continue;
    if (k.table === RT_TABLE_LOCAL) return false;
    if (c.bits < outer.bits) continue; // shorter: never wins
    if (!(k.protocol === protocol && k.dst === want.dst)) return false;
  }
  return true;
}

/** lookupProof with the table indexed by prefix length and network. */
function indexedProof(all: readonly KernelRoute[], protocol: number): (want: PlanRoute) => boolean {
  // The prefixes of each table by length, each length with its networks. IPv4 networks are
  // numbers (no BigInt to allocate per comparison: every apply asks for every plan route).
  interface Level {
    bits: number;
    nets: Map<number | bigint, KernelRoute[]>;
  }
  const index = {
    4: { local: [] as Level[], main: [] as Level[], unreadable: false },
    6: { local: [] as Level[], main: [] as Level[], unreadable: false },
  };
  for (const k of all) {
    if (k.table !== RT_TABLE_LOCAL && k.table !== RT_TABLE_MAIN) continue;
    const fam = index[k.family];
    const c = prefixOf(k.dst);
    if (!c) {
      fam.unreadable = true; // unreadable: ask the kernel
      continue;
    }
    const levels = k.table === RT_TABLE_LOCAL ? fam.local : fam.main;
    let level = levels.find((l) => l.bits === c.bits);
    if (!level) levels.push((level = { bits: c.bits, nets: new Map() }));
    const net = networkAt(c, c.bits);
    const at = level.nets.get(net);
    if (at) at.push(k);
    else level.nets.set(net, [k]);
  }
  return (want) => {
    const outer = prefixOf(want.dst);
    if (!outer) return false;
    const fam = index[outer.family];
    if (fam.unreadable) return false;
    // The first address of want.dst is inside a prefix of length L when their leading L bits agree.
    for (const l of fam.local) if (l.nets.has(networkAt(outer, l.bits))) return false;
    for (const l of fam.main) {
      if (l.bits < outer.bits) continue; // shorter: never wins
      const at = l.nets.get(networkAt(outer, l.bits));
      if (at?.some((k) => !(k.protocol === protocol && k.dst === want.dst))) return false;
    }
    return true;
  };
}
