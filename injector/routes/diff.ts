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
 */
import type { Plan, PlanRoute } from '../../core/types.js';
import {
  familyOf, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, type Family, type KernelRoute, type LinkInfo,
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
}

export type SkipReason =
  | 'dev-missing' // the plan's dev is not in the netns (applied when it appears)
  | 'dev-down' // the plan's dev is there but down (ENETDOWN; applied when it comes up)
  | 'collision' // a foreign route already routes dst elsewhere
  | 'gateway-unreachable' // the kernel refused the gateway (ENETUNREACH)
  | 'default-not-restorable' // an owned default route must go but no saved original is known
  | 'error'; // any other kernel error (detail says which)

/** A route in a result: what the plan asked for, or what the table held. */
export interface RouteItem { family: Family; dst: string; dev?: string; via?: string }
export interface SkippedItem extends RouteItem { reason: SkipReason; detail: string }
export interface ReplacedItem extends RouteItem { from: RouteItem & { protocol: number } }

/** The original default route of a family, saved before ours replaced it. */
export interface SavedDefault {
  family: Family;
  /** The foreign route ours replaced; null when there was none (ours was added). */
  route: { dev: string; via?: string; protocol: number; scope: number; priority: number } | null;
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

/** Family of the plan's default route: that of its gateway, IPv4 when it has none. */
export function defaultFamily(d: { via?: string }): Family {
  return d.via !== undefined ? familyOf(d.via) : 4;
}

function desired(r: PlanRoute, oif: number, isDefault: boolean, family: Family): DesiredRoute {
  const d: DesiredRoute = {
    family, dst: r.dst, dev: r.dev, oif, isDefault,
    scope: r.via === undefined && family === 4 ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE,
  };
  if (r.via !== undefined) d.via = r.via;
  return d;
}

/** True when the kernel route `k` is exactly what `d` asks for (scope only for owned IPv4). */
export function routeMatches(k: KernelRoute, d: DesiredRoute, owned: boolean): boolean {
  if (k.type !== 'UNICAST' || k.multipath || k.oif !== d.oif || k.via !== d.via) return false;
  return !(owned && d.family === 4 && k.scope !== d.scope);
}

/** Describe a kernel route as a result item. */
export function itemOf(k: KernelRoute): RouteItem {
  const it: RouteItem = { family: k.family, dst: k.dst };
  if (k.dev !== undefined) it.dev = k.dev;
  else if (k.oif !== undefined) it.dev = `if${k.oif}`;
  if (k.via !== undefined) it.via = k.via;
  return it;
}

/** Describe a desired route as a result item. */
export function itemOfDesired(d: DesiredRoute): RouteItem {
  return d.via === undefined ? { family: d.family, dst: d.dst, dev: d.dev } : { family: d.family, dst: d.dst, dev: d.dev, via: d.via };
}

function describeRoute(k: KernelRoute): string {
  return `${k.dst}${k.via ? ` via ${k.via}` : ''}${k.dev ? ` dev ${k.dev}` : ''} proto ${k.protocol} metric ${k.priority}${k.type !== 'UNICAST' ? ` type ${k.type}` : ''}`;
}

/** What diffRoutes compares. */
export interface DiffInput {
  plan: Plan;
  /** Main table routes of both families, as RtnlClient.listRoutes returns them. */
  table: KernelRoute[];
  links: LinkInfo[];
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
      diff.skipped.push({ family, dst: r.dst, dev: r.dev, ...(r.via ? { via: r.via } : {}), reason: 'dev-missing', detail: `device ${r.dev} is not in the netns` });
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
    const action = defaultAction(family, want, byDst.get(dst) ?? [], byName, protocol, saved.find((s) => s.family === family));
    if (action) diff.defaults.push(action);
  }
  for (const k of table) if (k.protocol === protocol && !claimed.has(k.dst)) diff.remove.push(k);
  return diff;
}

function resolveOne(want: DesiredRoute, existing: KernelRoute[], protocol: number, diff: RouteDiff, reclaim: boolean): void {
  const owned = existing.filter((k) => k.protocol === protocol);
  const foreign = existing.filter((k) => k.protocol !== protocol);
  if (owned.length) {
    const keep = owned.find((k) => routeMatches(k, want, true));
    if (keep) {
      diff.unchanged.push(want);
      diff.ownedKept.push(want.dst);
    } else diff.replace.push({ want, have: owned[0]! });
    for (const k of owned) if (k !== (keep ?? owned[0])) diff.remove.push(k);
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
    diff.skipped.push({ ...itemOfDesired(want), reason: 'collision', detail: `a foreign route is in the way: ${foreign.map(describeRoute).join('; ')}` });
    return;
  }
  diff.add.push(want);
}

function defaultAction(
  family: Family, want: { dev: string; via?: string } | undefined, existing: KernelRoute[],
  byName: Map<string, number>, protocol: number, saved: SavedDefault | undefined,
): DefaultAction | null {
  const owned = existing.filter((k) => k.protocol === protocol);
  const foreign = existing.filter((k) => k.protocol !== protocol);
  if (!want) {
    if (!owned.length) return saved ? { kind: 'forget', family } : null;
    if (!saved) {
      return { kind: 'skip', item: { ...itemOf(owned[0]!), reason: 'default-not-restorable', detail: 'the plan no longer sets a default route, but the original one was not saved; leaving ours in place' } };
    }
    return { kind: 'restore', family, have: owned[0]!, saved };
  }
  const dst = defaultDst(family);
  const oif = byName.get(want.dev);
  if (oif === undefined) {
    return { kind: 'skip', item: { family, dst, dev: want.dev, ...(want.via ? { via: want.via } : {}), reason: 'dev-missing', detail: `device ${want.dev} is not in the netns` } };
  }
  const d = desired({ dst, dev: want.dev, ...(want.via ? { via: want.via } : {}) }, oif, true, family);
  if (owned.length) {
    const keep = owned.find((k) => routeMatches(k, d, true));
    return keep ? { kind: 'unchanged', want: d, owned: true } : { kind: 'replace-owned', want: d, have: owned[0]! };
  }
  if (foreign.some((k) => routeMatches(k, d, false))) return { kind: 'unchanged', want: d, owned: false };
  // Replace the foreign default of the lowest metric (the one in effect), atomically.
  const inEffect = [...foreign].sort((a, b) => a.priority - b.priority)[0] ?? null;
  return { kind: 'take-over', want: d, replacing: inEffect };
}
