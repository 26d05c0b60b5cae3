/**
 * What the agent tells the API about a pod, computed from the outcome of its work (pure):
 *
 * - the report annotation routes.k8s.ovn.org/status (core/injector-status.ts): the hash of
 *   the plan in force, how many of its routes are in place, and what was skipped and why.
 *   The controller counts a pod as applied when the hash is that of the pod's current plan
 *   and nothing was skipped, so a refused plan or netns is reported as a skipped item;
 * - the pod condition routes.k8s.ovn.org/ready (for pods with that readiness gate): True
 *   once every route of the plan is in place, False with a reason otherwise.
 */
import { encodeInjectorStatus, type InjectorStatus, type SkippedReport, type StartReport } from '../../core/injector-status.js';
import type { Plan } from '../../core/types.js';
import { isEmptyPlan } from '../pod.js';
import type { ApplyResult } from '../routes/engine.js';
import { defaultDst, defaultFamily } from '../routes/diff.js';

/** A plan in force in a pod's netns and the last apply's result (and how its sandbox's routes first arrived). */
export interface InForce {
  plan: Plan;
  hash: string;
  result: ApplyResult;
  start?: StartReport;
}

/** Where the agent stands with a pod. */
export type PodOutcome =
  | { kind: 'applied'; inForce: InForce }
  | { kind: 'rejected'; code: string; error: string; inForce?: InForce }
  | { kind: 'refused'; message: string }
  | { kind: 'failed'; message: string };

/** The report (without time and node). */
export type StatusBody = Pick<InjectorStatus, 'plan' | 'applied' | 'skipped' | 'start'>;

/** Condition of type routes.k8s.ovn.org/ready, without its transition time. */
export interface ReadyCondition {
  status: 'True' | 'False';
  reason: string;
  message: string;
}

/** Destinations a plan asks for (its routes and its default route); remembered for frozen plans (decodeSignedPlan's). */
function plannedDsts(plan: Plan): ReadonlySet<string> {
  let out = plannedOf.get(plan);
  if (out) return out;
  out = new Set(plan.routes.map((r) => r.dst));
  if (plan.default) out.add(defaultDst(defaultFamily(plan.default)));
  if (Object.isFrozen(plan)) plannedOf.set(plan, out);
  return out;
}

const plannedOf = new WeakMap<Plan, Set<string>>();
const NONE: ReadonlySet<string> = new Set();

function fromInForce(f: InForce): StatusBody {
  const planned = plannedDsts(f.plan);
  const notInPlace = f.result.skipped.length ? new Set(f.result.skipped.filter((s) => planned.has(s.dst)).map((s) => s.dst)) : NONE;
  const skipped: SkippedReport[] = f.result.skipped.map((s) => ({
    dst: s.dst,
    ...(s.dev ? { dev: s.dev } : {}),
    reason: s.reason,
    detail: s.detail,
  }));
  return {
    plan: isEmptyPlan(f.plan) ? '' : f.hash,
    applied: planned.size - notInPlace.size,
    skipped,
    ...(f.start ? { start: f.start } : {}),
  };
}

/** The status annotation body for an outcome. */
export function statusBody(o: PodOutcome): StatusBody {
  switch (o.kind) {
    case 'applied':
      return fromInForce(o.inForce);
    case 'rejected': {
      const base = o.inForce ? fromInForce(o.inForce) : { plan: '', applied: 0, skipped: [] };
      return { ...base, skipped: [{ dst: '*', reason: 'plan-rejected', detail: `${o.code}: ${o.error}` }, ...base.skipped] };
    }
    case 'refused':
      return { plan: '', applied: 0, skipped: [{ dst: '*', reason: 'netns-refused', detail: o.message }] };
    case 'failed':
      return { plan: '', applied: 0, skipped: [{ dst: '*', reason: 'apply-error', detail: o.message }] };
  }
}

/** Encoded report value, with `time` left empty: equal bodies give equal keys. */
export function statusKey(body: StatusBody, node: string): string {
  return statusValue(body, node, '');
}

/** The report annotation's value: the body, from `node`, at `time`. */
export function statusValue(body: StatusBody, node: string, time: string): string {
  return encodeInjectorStatus({ ...body, node, time });
}

function describeSkipped(s: SkippedReport[]): string {
  const shown = s.slice(0, 5).map((x) => `${x.dst}${x.dev ? ` dev ${x.dev}` : ''}: ${x.reason}`);
  return shown.join('; ') + (s.length > 5 ? `; and ${s.length - 5} more` : '');
}

/** The readiness condition for an outcome. */
export function readyCondition(o: PodOutcome): ReadyCondition {
  switch (o.kind) {
    case 'applied': {
      const b = fromInForce(o.inForce);
      if (b.skipped.length)
        return {
          status: 'False',
          reason: 'RoutesSkipped',
          message: `${b.skipped.length} route(s) not in place: ${describeSkipped(b.skipped)}`,
        };
      if (isEmptyPlan(o.inForce.plan))
        return { status: 'True', reason: 'NoRoutes', message: 'the pod has no route plan; no routes of ovnkube-route are in its netns' };
      return { status: 'True', reason: 'RoutesInPlace', message: `all ${b.applied} route(s) of plan ${o.inForce.hash} are in place` };
    }
    case 'rejected':
      return { status: 'False', reason: 'PlanRejected', message: `the plan annotation was refused (${o.code}): ${o.error}` };
    case 'refused':
      return { status: 'False', reason: 'NetnsRefused', message: o.message };
    case 'failed':
      return { status: 'False', reason: 'ApplyFailed', message: o.message };
  }
}
