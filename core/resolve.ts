/**
 * Plan resolution: (Routes, pod, namespace, Services, owner chain) -> plan | skipped(reason).
 * Deterministic: Routes are visited in name order and the plan is sorted, so the same
 * inputs in any order give a byte-identical plan.
 */
import { podChain, podRef, routeSelects, type InjectMode, type Subject } from './filters.js';
import { compareCIDR, formatCIDR, formatIP, hostCIDR, parseCIDR, parseIP, type CIDR, type IP } from './ip.js';
import {
  GATEWAY_VIA,
  ROUTE_ATTR_KEYS,
  type Namespace,
  type OwnerRef,
  type Plan,
  type PlanRoute,
  type Pod,
  type Route,
  type RouteAttrs,
  type Service,
} from './types.js';

export type { InjectMode } from './filters.js';

export interface ResolveContext {
  /** Every Route CR. */
  routes: Route[];
  /** The pod's Namespace (for labels); undefined when not known. */
  namespace: Namespace | undefined;
  service: (namespace: string, name: string) => Service | undefined;
  /** From ownerChain(), direct owner first. */
  owners: OwnerRef[];
  mode: InjectMode;
}

/** Two Routes (or two rules) disagree about one destination; the loser is reported. */
export interface Conflict {
  dst: string;
  route: string;
  winner: string;
  message: string;
}
/** A Service rule that produced no route, with why. */
export interface UnresolvedService {
  route: string;
  namespace: string;
  name: string;
  reason: string;
}
/** A rule that could not be used because it is malformed (the API server normally refuses these). */
export interface InvalidRule {
  route: string;
  field: string;
  error: string;
}

export type SkipCode = 'host-network' | 'opted-out' | 'not-opted-in' | 'no-route' | 'name-unknown';

/** Where one route of a plan came from (resolvePlan with `origins`, for explain). */
export interface PlanOrigin {
  dst: string;
  route: string;
  source: string;
  priority: number;
}

export type Resolution =
  | {
      kind: 'plan';
      plan: Plan;
      routes: string[];
      conflicts: Conflict[];
      unresolved: UnresolvedService[];
      invalid: InvalidRule[];
      deferred: string[];
      /** Only when asked for (opts.origins): the Route and rule each plan route (and the default) came from. */
      origins?: PlanOrigin[];
    }
  | {
      kind: 'skipped';
      code: SkipCode;
      reason: string;
      conflicts: Conflict[];
      unresolved: UnresolvedService[];
      invalid: InvalidRule[];
      deferred: string[];
    };

interface Candidate extends RouteAttrs {
  cidr: CIDR;
  dst: string;
  dev: string;
  via?: string;
  route: string;
  priority: number;
  source: string;
}

/** The attributes of a rule, src canonical; null (with an InvalidRule) when src is not an IP. */
function attrsOfRule(r: RouteAttrs, name: string, field: string, invalid: InvalidRule[]): { attrs: RouteAttrs; src?: IP } | null {
  const attrs: RouteAttrs = {};
  let src: IP | undefined;
  if (r.src !== undefined) {
    const p = parseIP(r.src);
    if (!p.ok) {
      invalid.push({ route: name, field: `${field}.src`, error: p.error });
      return null;
    }
    src = p.value;
    attrs.src = formatIP(p.value);
  }
  for (const k of ['metric', 'mtu', 'advmss'] as const) if (typeof r[k] === 'number') attrs[k] = r[k];
  return src ? { attrs, src } : { attrs };
}

/** Why attributes cannot go on a route of `family` (src of the other family, IPv6 MTU under 1280); null when they can. */
function attrsProblem(family: 4 | 6, a: RouteAttrs, src: IP | undefined): string | null {
  if (src && src.family !== family) return `src ${a.src} is IPv${src.family} but the route is IPv${family}`;
  if (family === 6 && a.mtu !== undefined && a.mtu < 1280) return `mtu ${a.mtu} is below IPv6's minimum of 1280`;
  return null;
}

/** The plan's via of a rule: its IP made canonical, the "gateway" keyword as is, or none. */
function viaOut(v: { ip?: IP; gateway?: true }): { via?: string } {
  return v.ip ? { via: formatIP(v.ip) } : v.gateway ? { via: GATEWAY_VIA } : {};
}

/** The attributes of a candidate in canonical order (what the plan carries). */
function attrsOut(c: RouteAttrs): RouteAttrs {
  const out: RouteAttrs = {};
  for (const k of ROUTE_ATTR_KEYS) if (c[k] !== undefined) (out as Record<string, unknown>)[k] = c[k];
  return out;
}

function routeName(r: Route): string {
  return r.metadata?.name ?? '';
}

/** Resolve the IPs a Service rule pins, reporting what cannot be resolved (never guessed). */
export function serviceIPs(svc: Service | undefined): { ips: IP[]; reason: string } {
  if (!svc) return { ips: [], reason: 'Service not found' };
  if (svc.spec?.type === 'ExternalName')
    return { ips: [], reason: `ExternalName Service (${svc.spec.externalName ?? ''}) has no ClusterIP` };
  const raw = svc.spec?.clusterIPs?.length ? svc.spec.clusterIPs : svc.spec?.clusterIP ? [svc.spec.clusterIP] : [];
  if (raw.length === 0) return { ips: [], reason: 'Service has no ClusterIP yet' };
  if (raw.every((ip) => ip === 'None')) return { ips: [], reason: 'headless Service (clusterIP: None) has no ClusterIP' };
  const ips: IP[] = [];
  for (const s of raw) {
    const p = parseIP(s);
    if (p.ok) ips.push(p.value);
  }
  return ips.length ? { ips, reason: '' } : { ips: [], reason: `Service ClusterIPs [${raw.join(', ')}] are not IP addresses` };
}

/** A Route's rules parsed once (Route objects are treated as immutable: informers replace them). */
interface CompiledRoute {
  cidr: Candidate[];
  svc: { index: number; namespace: string; name: string; dev: string; via?: IP; gateway?: true; attrs: RouteAttrs; src?: IP }[];
  defaults: Candidate[];
  /** spec.symmetric's devices that are interface names. */
  symmetric: string[];
  invalid: InvalidRule[];
}

/** A Linux interface name (the CRD's and the plan's pattern), not "." or "..". */
const DEV_NAME = /^[\x21-\x2e\x30-\x39\x3b-\x7e]{1,15}$/;

const compiledRoutes = new WeakMap<Route, CompiledRoute>();

function compileRoute(route: Route): CompiledRoute {
  const hit = compiledRoutes.get(route);
  if (hit) return hit;
  const name = routeName(route);
  const priority = route.spec?.priority ?? 0;
  const out: CompiledRoute = { cidr: [], svc: [], defaults: [], symmetric: [], invalid: [] };
  const viaOf = (via: string | undefined, field: string): { ok: boolean; ip?: IP; gateway?: true } => {
    if (via === undefined) return { ok: true };
    if (via === GATEWAY_VIA) return { ok: true, gateway: true };
    const p = parseIP(via);
    if (!p.ok) {
      out.invalid.push({ route: name, field, error: p.error });
      return { ok: false };
    }
    return { ok: true, ip: p.value };
  };
  for (const [i, r] of (route.spec?.route ?? []).entries()) {
    const c = parseCIDR(r.dst);
    if (!c.ok) {
      out.invalid.push({ route: name, field: `spec.route[${i}].dst`, error: c.error });
      continue;
    }
    const v = viaOf(r.via, `spec.route[${i}].via`);
    if (!v.ok) continue;
    if (v.ip && v.ip.family !== c.value.family) {
      out.invalid.push({
        route: name,
        field: `spec.route[${i}].via`,
        error: `via ${r.via} is IPv${v.ip.family} but dst ${r.dst} is IPv${c.value.family}`,
      });
      continue;
    }
    const a = attrsOfRule(r, name, `spec.route[${i}]`, out.invalid);
    if (!a) continue;
    const bad = attrsProblem(c.value.family, a.attrs, a.src);
    if (bad) {
      out.invalid.push({ route: name, field: `spec.route[${i}]`, error: bad });
      continue;
    }
    out.cidr.push({
      cidr: c.value,
      dst: formatCIDR(c.value),
      dev: r.dev,
      ...viaOut(v),
      ...a.attrs,
      route: name,
      priority,
      source: `spec.route[${i}]`,
    });
  }
  for (const [i, s] of (route.spec?.svc ?? []).entries()) {
    const v = viaOf(s.via, `spec.svc[${i}].via`);
    const a = attrsOfRule(s, name, `spec.svc[${i}]`, out.invalid);
    if (v.ok && a)
      out.svc.push({
        index: i,
        namespace: s.namespace,
        name: s.name,
        dev: s.dev,
        ...(v.ip ? { via: v.ip } : {}),
        ...(v.gateway ? { gateway: true } : {}),
        attrs: a.attrs,
        ...(a.src ? { src: a.src } : {}),
      });
  }
  const d = route.spec?.defaultRoute;
  if (d) {
    const v = viaOf(d.via, 'spec.defaultRoute.via');
    const a = attrsOfRule(d, name, 'spec.defaultRoute', out.invalid);
    if (v.ok && a) {
      const fam = v.ip?.family ?? a.src?.family ?? 4;
      const bad = attrsProblem(fam, a.attrs, a.src);
      if (bad) out.invalid.push({ route: name, field: 'spec.defaultRoute', error: bad });
      else
        out.defaults.push({
          cidr: { family: fam, value: 0n, bits: 0 },
          dst: fam === 4 ? '0.0.0.0/0' : '::/0',
          dev: d.dev,
          ...viaOut(v),
          ...a.attrs,
          route: name,
          priority,
          source: 'spec.defaultRoute',
        });
    }
  }
  for (const [i, dev] of (route.spec?.symmetric ?? []).entries()) {
    if (typeof dev !== 'string' || !DEV_NAME.test(dev) || dev === '.' || dev === '..') {
      out.invalid.push({ route: name, field: `spec.symmetric[${i}]`, error: `${JSON.stringify(dev)} is not a Linux interface name` });
    } else out.symmetric.push(dev);
  }
  compiledRoutes.set(route, out);
  return out;
}

const serviceCache = new WeakMap<Service, { ips: IP[]; reason: string }>();

function cachedServiceIPs(svc: Service | undefined): { ips: IP[]; reason: string } {
  if (!svc) return serviceIPs(svc);
  let r = serviceCache.get(svc);
  if (!r) serviceCache.set(svc, (r = serviceIPs(svc)));
  return r;
}

function gatherCandidates(
  route: Route,
  ctx: ResolveContext,
  out: {
    cands: Candidate[];
    defaults: Candidate[];
    symmetric: Set<string>;
    unresolved: UnresolvedService[];
    invalid: InvalidRule[];
  },
): void {
  const c = compileRoute(route);
  for (const d of c.symmetric) out.symmetric.add(d);
  const name = routeName(route);
  const priority = route.spec?.priority ?? 0;
  out.invalid.push(...c.invalid);
  out.cands.push(...c.cidr);
  out.defaults.push(...c.defaults);
  for (const s of c.svc) {
    const { ips, reason } = cachedServiceIPs(ctx.service(s.namespace, s.name));
    if (reason) {
      out.unresolved.push({ route: name, namespace: s.namespace, name: s.name, reason });
      continue;
    }
    for (const ip of ips) {
      if (s.via && s.via.family !== ip.family) {
        out.unresolved.push({
          route: name,
          namespace: s.namespace,
          name: s.name,
          reason: `ClusterIP ${formatIP(ip)} is IPv${ip.family} but via ${formatIP(s.via)} is IPv${s.via.family}`,
        });
        continue;
      }
      const bad = attrsProblem(ip.family, s.attrs, s.src);
      if (bad) {
        out.unresolved.push({ route: name, namespace: s.namespace, name: s.name, reason: `ClusterIP ${formatIP(ip)}: ${bad}` });
        continue;
      }
      out.cands.push({
        cidr: { family: ip.family, value: ip.value, bits: ip.family === 4 ? 32 : 128 },
        dst: hostCIDR(ip),
        dev: s.dev,
        ...(s.via ? { via: formatIP(s.via) } : s.gateway ? { via: GATEWAY_VIA } : {}),
        ...s.attrs,
        route: name,
        priority,
        source: `spec.svc[${s.index}] ${s.namespace}/${s.name}`,
      });
    }
  }
}

/** What a candidate asks for, as `ip route` would write it: dev, via and the attributes. */
const target = (c: Candidate): string =>
  `${c.dev}${c.via ? ` via ${c.via}` : ''}${c.src ? ` src ${c.src}` : ''}${c.metric !== undefined ? ` metric ${c.metric}` : ''}${c.mtu !== undefined ? ` mtu ${c.mtu}` : ''}${c.advmss !== undefined ? ` advmss ${c.advmss}` : ''}`;

/** Higher priority first, then Route name, then rule target: a total, input-order-free order. */
function better(a: Candidate, b: Candidate): number {
  if (a.priority !== b.priority) return b.priority - a.priority;
  if (a.route !== b.route) return a.route < b.route ? -1 : 1;
  const ta = target(a);
  const tb = target(b);
  return ta < tb ? -1 : ta > tb ? 1 : 0;
}

/** Pick one winner per key, reporting every candidate that disagrees with it. */
function decide(cands: Candidate[], key: (c: Candidate) => string, conflicts: Conflict[], what: (c: Candidate) => string): Candidate[] {
  const groups = new Map<string, Candidate[]>();
  for (const c of cands) {
    const k = key(c);
    const g = groups.get(k);
    if (g) g.push(c);
    else groups.set(k, [c]);
  }
  const winners: Candidate[] = [];
  for (const g of groups.values()) {
    g.sort(better);
    const w = g[0]!;
    winners.push(w);
    const seen = new Set<string>();
    for (const c of g.slice(1)) {
      if (target(c) === target(w)) continue;
      const id = `${c.route}|${target(c)}`;
      if (seen.has(id)) continue;
      seen.add(id);
      conflicts.push({
        dst: w.dst,
        route: c.route,
        winner: w.route,
        message: `${what(w)}: Route ${c.route} (${c.source}, priority ${c.priority}) wants ${target(c)}, Route ${w.route} (${w.source}, priority ${w.priority}) wins with ${target(w)}`,
      });
    }
  }
  return winners;
}

/** Resolve the plan for one pod. */
/**
 * Which Routes select the pod (the first half of resolvePlan): a skip decided by the pod
 * alone (hostNetwork, opt-out, mode), or the Routes that select it (sorted by name), those
 * that depend on its final name, and those that do not select it. The plan of a pod that
 * is not skipped depends on nothing of the pod beyond this: `selected` and the context.
 */
export type Selection =
  { kind: 'skipped'; code: SkipCode; reason: string } | { kind: 'selected'; selected: Route[]; deferred: string[]; notSelected: Route[] };

export function selectRoutes(pod: Pod, ctx: ResolveContext): Selection {
  const subject: Subject = { pod, namespace: ctx.namespace, owners: ctx.owners };
  for (const { code, check } of podChain) {
    const reason = check(subject, ctx.mode);
    if (reason) return { kind: 'skipped', code, reason };
  }
  const selected: Route[] = [];
  const deferred: string[] = [];
  // Routes that do not select the pod; why is worked out only when the skip reason lists them.
  const notSelected: Route[] = [];
  const routes = [...ctx.routes].sort((a, b) => (routeName(a) < routeName(b) ? -1 : routeName(a) > routeName(b) ? 1 : 0));
  for (const r of routes) {
    const v = routeSelects(r.spec?.include, r.spec?.exclude, subject, false);
    if (v.match === 'unknown') deferred.push(routeName(r));
    else if (v.match === 'no') notSelected.push(r);
    else selected.push(r);
  }
  return { kind: 'selected', selected, deferred, notSelected };
}

export function resolvePlan(pod: Pod, ctx: ResolveContext, opts: { origins?: boolean; selection?: Selection } = {}): Resolution {
  const empty = { conflicts: [], unresolved: [], invalid: [], deferred: [] };
  // `selection`: selectRoutes(pod, ctx), when the caller has just made it.
  const sel = opts.selection ?? selectRoutes(pod, ctx);
  if (sel.kind === 'skipped') return { ...sel, ...empty };
  const { deferred, notSelected } = sel;
  const out = {
    cands: [] as Candidate[],
    defaults: [] as Candidate[],
    symmetric: new Set<string>(),
    unresolved: [] as UnresolvedService[],
    invalid: [] as InvalidRule[],
  };
  const contributing = sel.selected.map(routeName);
  for (const r of sel.selected) gatherCandidates(r, ctx, out);
  const conflicts: Conflict[] = [];
  const winners = decide(
    out.cands,
    (c) => c.dst,
    conflicts,
    (w) => `destination ${w.dst}`,
  );
  winners.sort((a, b) => compareCIDR(a.cidr, b.cidr));
  const defaults = decide(
    out.defaults,
    () => 'default',
    conflicts,
    () => 'default route',
  );
  const routesOut: PlanRoute[] = winners.map((w) => ({ dst: w.dst, dev: w.dev, ...(w.via ? { via: w.via } : {}), ...attrsOut(w) }));
  const plan: Plan = { v: 1, routes: routesOut };
  const d = defaults[0];
  if (d) plan.default = { dev: d.dev, ...(d.via ? { via: d.via } : {}), ...attrsOut(d) };
  // Symmetric devices add up (no Route can want a device not to be symmetric): the union of
  // every selecting Route's, sorted (code unit order, as the codec checks).
  if (out.symmetric.size) plan.symmetric = [...out.symmetric].sort();
  const rest = { conflicts, unresolved: out.unresolved, invalid: out.invalid, deferred };
  if (routesOut.length === 0 && !plan.default && !plan.symmetric) {
    if (deferred.length) {
      return {
        kind: 'skipped',
        code: 'name-unknown',
        reason: `Routes [${deferred.join(', ')}] depend on the pod's final name; resolved again once ${podRef(pod)} exists`,
        ...rest,
      };
    }
    const why = contributing.length
      ? `Routes [${contributing.join(', ')}] select the pod but yield no route (see unresolved/invalid)`
      : ctx.routes.length === 0
        ? 'no Route exists'
        : `no Route selects the pod (${notSelected.map((r) => `${routeName(r)}: ${routeSelects(r.spec?.include, r.spec?.exclude, { pod, namespace: ctx.namespace, owners: ctx.owners }).reason}`).join('; ')})`;
    return { kind: 'skipped', code: 'no-route', reason: why, ...rest };
  }
  if (opts.origins) {
    const origins: PlanOrigin[] = [...winners, ...(d ? [d] : [])].map((w) => ({
      dst: w.dst,
      route: w.route,
      source: w.source,
      priority: w.priority,
    }));
    return { kind: 'plan', plan, routes: contributing, ...rest, origins };
  }
  return { kind: 'plan', plan, routes: contributing, ...rest };
}
