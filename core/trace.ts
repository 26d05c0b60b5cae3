/**
 * A trace of plan resolution for one pod, for `ovnkube-route explain`: the pod-level gates
 * (hostNetwork, opt-out, opt-in), then for every Route whether it selects the pod and which
 * include or exclude term decided it (and why), then the resolution itself (plan, conflicts
 * and their winners, where each plan route came from). Pure: it calls the same predicates
 * and the same resolvePlan() as the webhook and the controller, so what it says is what
 * they do.
 */
import { podChain, termMatches, type Subject } from './filters.js';
import { describeSelector, type Tri } from './match.js';
import { resolvePlan, type ResolveContext, type Resolution } from './resolve.js';
import type { Pod, PodSelectorTerm, Route } from './types.js';

/** One pod-level gate, in the order they are checked. */
export interface GateTrace {
  code: string;
  passed: boolean;
  reason: string;
}

/** One include/exclude term of a Route, matched against the pod. */
export interface TermTrace {
  list: 'include' | 'exclude';
  index: number;
  term: string;
  match: Tri;
  reason: string;
}

/** Whether one Route selects the pod, and what decided. */
export interface RouteTrace {
  route: string;
  priority: number;
  /** yes, no, or unknown (decided once the pod has its final name). */
  selects: Tri;
  /** What decided: "include[1]", "exclude[0]", "no include (every pod)", "include (no term matched)". */
  decidedBy: string;
  /** Why, in words. */
  reason: string;
  /** Every term, as evaluated (include terms after the first match, and exclude terms after a decision, are not evaluated by the resolver either). */
  terms: TermTrace[];
  /** Rules of this Route: CIDR, Service, default (counts). */
  rules: { route: number; svc: number; defaultRoute: boolean };
}

export interface PlanTrace {
  pod: string;
  gates: GateTrace[];
  routes: RouteTrace[];
  resolution: Resolution;
}

/** A term in words: every field it sets. */
export function describeTerm(t: PodSelectorTerm): string {
  const parts: string[] = [];
  if (t.namespaces) parts.push(`namespaces [${t.namespaces.join(', ')}]`);
  if (t.namespaceSelector) parts.push(`namespaceSelector {${describeSelector(t.namespaceSelector)}}`);
  if (t.pods) parts.push(`pods [${t.pods.join(', ')}]`);
  if (t.podSelector) parts.push(`podSelector {${describeSelector(t.podSelector)}}`);
  if (t.owners) parts.push(`owners [${t.owners.map((o) => `${o.kind}/${o.namespace ? o.namespace + '/' : ''}${o.name}`).join(', ')}]`);
  return parts.length ? parts.join(' and ') : '{} (every pod)';
}

/**
 * The selection decision of one Route for the pod, with the term that decided. Agrees with
 * filters.ts routeSelects() (the test checks both on the same table): a missing include
 * selects every pod, the first include term that matches includes, exclude wins over include.
 */
export function traceRoute(route: Route, s: Subject): RouteTrace {
  const spec = route.spec ?? {};
  const base = {
    route: route.metadata?.name ?? '',
    priority: spec.priority ?? 0,
    rules: { route: spec.route?.length ?? 0, svc: spec.svc?.length ?? 0, defaultRoute: !!spec.defaultRoute },
  };
  const terms: TermTrace[] = [];
  const evalTerm = (list: 'include' | 'exclude', index: number, term: PodSelectorTerm): TermTrace => {
    const v = termMatches(term, s);
    const tt: TermTrace = {
      list,
      index,
      term: describeTerm(term),
      match: v.match,
      reason: v.match === 'yes' ? `matches ${describeTerm(term)}` : v.reason,
    };
    terms.push(tt);
    return tt;
  };
  let included: { decidedBy: string; reason: string };
  if (!spec.include) {
    included = { decidedBy: 'no include (every pod)', reason: 'the Route has no include, so it selects every pod not excluded' };
  } else {
    let hit: TermTrace | undefined;
    let unknown: TermTrace | undefined;
    for (const [i, t] of spec.include.entries()) {
      const tt = evalTerm('include', i, t);
      if (tt.match === 'yes') {
        hit = tt;
        break;
      }
      if (tt.match === 'unknown' && !unknown) unknown = tt;
    }
    if (hit) included = { decidedBy: `include[${hit.index}]`, reason: `included by include[${hit.index}]: ${hit.reason}` };
    else if (unknown) return { ...base, selects: 'unknown', decidedBy: `include[${unknown.index}]`, reason: unknown.reason, terms };
    else {
      return {
        ...base,
        selects: 'no',
        decidedBy: spec.include.length ? 'include (no term matched)' : 'include is empty',
        reason: spec.include.length
          ? `not included: ${terms.map((t) => `include[${t.index}]: ${t.reason}`).join('; ')}`
          : 'not included: include is empty',
        terms,
      };
    }
  }
  for (const [i, t] of (spec.exclude ?? []).entries()) {
    const tt = evalTerm('exclude', i, t);
    if (tt.match === 'yes')
      return {
        ...base,
        selects: 'no',
        decidedBy: `exclude[${i}]`,
        reason: `excluded by exclude[${i}]: ${tt.reason} (exclude wins over include)`,
        terms,
      };
    if (tt.match === 'unknown') return { ...base, selects: 'unknown', decidedBy: `exclude[${i}]`, reason: tt.reason, terms };
  }
  return { ...base, selects: 'yes', ...included, terms };
}

/** The whole trace for one pod: gates, every Route (in name order), and the resolution. */
export function tracePlan(pod: Pod, ctx: ResolveContext): PlanTrace {
  const s: Subject = { pod, namespace: ctx.namespace, owners: ctx.owners };
  const gates: GateTrace[] = [];
  for (const { code, check } of podChain) {
    const reason = check(s, ctx.mode);
    gates.push({ code, passed: reason === '', reason: reason || passedWhy(code, ctx.mode) });
    if (reason) break;
  }
  const name = (r: Route) => r.metadata?.name ?? '';
  const routes = [...ctx.routes].sort((a, b) => (name(a) < name(b) ? -1 : name(a) > name(b) ? 1 : 0)).map((r) => traceRoute(r, s));
  const m = pod.metadata ?? {};
  return {
    pod: `${m.namespace ?? ''}/${m.name ?? m.generateName ?? ''}`,
    gates,
    routes,
    resolution: resolvePlan(pod, ctx, { origins: true }),
  };
}

function passedWhy(code: string, mode: string): string {
  switch (code) {
    case 'host-network':
      return 'pod is not hostNetwork';
    case 'opted-out':
      return 'neither the pod nor its namespace is labelled routes.k8s.ovn.org/inject=disabled';
    default:
      return mode === 'opt-in' ? 'pod or namespace is labelled routes.k8s.ovn.org/inject=enabled' : 'mode is default: no opt-in needed';
  }
}
