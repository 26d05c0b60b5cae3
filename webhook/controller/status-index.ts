/**
 * What the controller knows about each pod that Route status is made of, indexed by Route:
 * which Routes gave the pod its plan, whether the injector reports that plan applied, and
 * the conflicts, unresolved Services and invalid rules its resolution met. Every reconcile
 * of a pod replaces its record; the per-Route aggregates are kept up to date incrementally
 * (counters and reference-counted sets), so a status computation never walks all pods.
 */
import { reportsApplied, type InjectorStatus } from '../../core/injector-status.js';
import type { Conflict, InvalidRule, UnresolvedService } from '../../core/resolve.js';
import type { PlanDecision } from '../plan.js';

/** One pod's contribution to Route status. */
export interface PodRecord {
  /** Routes that contributed to the pod's plan (empty when the pod gets none). */
  routes: string[];
  /** The injector reports the pod's current plan applied, nothing skipped. */
  applied: boolean;
  conflicts: Conflict[];
  unresolved: UnresolvedService[];
  invalid: InvalidRule[];
}

/** The per-Route aggregate of all pod records. */
export interface RouteAggregate {
  matchedPods: number;
  appliedPods: number;
  /** Conflicts this Route is part of (as loser or winner), deduplicated, sorted. */
  conflicts: Conflict[];
  unresolved: UnresolvedService[];
  invalid: InvalidRule[];
}

/** Build a pod's record from what desiredPlan() decided for it and the injector's report. */
export function podRecord(decision: PlanDecision, report: InjectorStatus | undefined): PodRecord {
  const r = decision.resolution;
  const planned = decision.action === 'set' ? decision.resolution : undefined;
  return {
    routes: planned ? [...planned.routes] : [],
    applied: !!planned && reportsApplied(report, planned.plan),
    conflicts: r?.conflicts ?? [],
    unresolved: r?.unresolved ?? [],
    invalid: r?.invalid ?? [],
  };
}

/** A multiset of entries by key: an entry stays while any pod still has it. */
class RefSet<T> {
  private readonly m = new Map<string, { v: T; n: number }>();
  add(k: string, v: T): void {
    const e = this.m.get(k);
    if (e) e.n++;
    else this.m.set(k, { v, n: 1 });
  }
  delete(k: string): void {
    const e = this.m.get(k);
    if (e && --e.n === 0) this.m.delete(k);
  }
  values(): T[] {
    return [...this.m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, e]) => e.v);
  }
  get size(): number {
    return this.m.size;
  }
}

interface Agg {
  matched: number;
  applied: number;
  conflicts: RefSet<Conflict>;
  unresolved: RefSet<UnresolvedService>;
  invalid: RefSet<InvalidRule>;
}

const conflictKey = (c: Conflict) => `${c.dst}\u0000${c.route}\u0000${c.winner}\u0000${c.message}`;
const unresolvedKey = (u: UnresolvedService) => `${u.namespace}/${u.name}\u0000${u.reason}`;
const invalidKey = (i: InvalidRule) => `${i.field}\u0000${i.error}`;

/** Pod records and their per-Route aggregates. */
export class RouteIndex {
  private readonly pods = new Map<string, PodRecord>();
  private readonly routes = new Map<string, Agg>();

  get size(): number {
    return this.pods.size;
  }

  /**
   * Replace the record of pod `key` (undefined removes it). Returns the Routes whose
   * aggregate may have changed (empty when the record is the same as before).
   */
  set(key: string, rec: PodRecord | undefined): Set<string> {
    const old = this.pods.get(key);
    if (JSON.stringify(old) === JSON.stringify(rec)) return new Set();
    const touched = new Set<string>();
    if (old) this.apply(old, -1, touched);
    if (rec) {
      this.pods.set(key, rec);
      this.apply(rec, 1, touched);
    } else this.pods.delete(key);
    return touched;
  }

  /** The aggregate of Route `name` (zeros when no pod mentions it). */
  aggregate(name: string): RouteAggregate {
    const a = this.routes.get(name);
    if (!a) return { matchedPods: 0, appliedPods: 0, conflicts: [], unresolved: [], invalid: [] };
    return {
      matchedPods: a.matched,
      appliedPods: a.applied,
      conflicts: a.conflicts.values(),
      unresolved: a.unresolved.values(),
      invalid: a.invalid.values(),
    };
  }

  /** Forget everything (the controller lost leadership; a new term rebuilds it). */
  clear(): void {
    this.pods.clear();
    this.routes.clear();
  }

  private agg(name: string): Agg {
    let a = this.routes.get(name);
    if (!a)
      this.routes.set(name, (a = { matched: 0, applied: 0, conflicts: new RefSet(), unresolved: new RefSet(), invalid: new RefSet() }));
    return a;
  }

  private apply(rec: PodRecord, sign: 1 | -1, touched: Set<string>): void {
    const each = <T>(name: string, set: (a: Agg) => RefSet<T>, k: string, v: T) => {
      touched.add(name);
      const s = set(this.agg(name));
      if (sign > 0) s.add(k, v);
      else s.delete(k);
    };
    for (const r of rec.routes) {
      touched.add(r);
      const a = this.agg(r);
      a.matched += sign;
      if (rec.applied) a.applied += sign;
    }
    for (const c of rec.conflicts) {
      each(c.route, (a) => a.conflicts, conflictKey(c), c);
      if (c.winner !== c.route) each(c.winner, (a) => a.conflicts, conflictKey(c), c);
    }
    for (const u of rec.unresolved) each(u.route, (a) => a.unresolved, unresolvedKey(u), u);
    for (const i of rec.invalid) each(i.route, (a) => a.invalid, invalidKey(i), i);
    if (sign < 0) {
      for (const name of touched) {
        const a = this.routes.get(name);
        if (a && a.matched === 0 && a.conflicts.size === 0 && a.unresolved.size === 0 && a.invalid.size === 0) this.routes.delete(name);
      }
    }
  }
}
