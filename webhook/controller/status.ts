/**
 * Route status, as pure functions: what `status` must say for one Route given the pod
 * aggregate (webhook/controller/status-index.ts) and the Service cache, whether that differs from what
 * the Route carries, and the JSON Patch that writes it through the status subresource.
 *
 *   status.status       Invalid (a rule cannot be used) > Degraded (a Service rule does not
 *                       resolve, or another Route wins a destination this one wants) > Active
 *   conditions          Ready (False only when Invalid), Degraded, and Warnings (True when
 *                       core/warnings.ts finds something; never changes status.status), each with reason,
 *                       message, observedGeneration; lastTransitionTime changes only when
 *                       the condition's status does
 *   observedGeneration  the generation this status was computed for
 *   matchedPods         pods this Route contributes to the plan of
 *   appliedPods         of those, pods whose injector report says their current plan is in place
 *   unresolvedServices  Service rules that yield no route, with why
 *   conflicts           destinations this Route and another disagree on (either side)
 */
import type { Operation } from 'fast-json-patch';
import { serviceIPs, type InvalidRule } from '../../core/resolve.js';
import { validateRoute } from '../../core/schema.js';
import { routeWarnings, type WarningReason } from '../../core/warnings.js';
import { API_GROUP, API_VERSION, type Route, type RouteCondition, type RouteStatus, type Service } from '../../core/types.js';
import type { RouteAggregate } from './status-index.js';

/** CRD bounds (crds/route.yaml): list lengths and condition message size. */
const MAX_ITEMS = 256;
const MAX_MESSAGE = 4096;

export const CONDITION_READY = 'Ready';
export const CONDITION_DEGRADED = 'Degraded';
/** True when core/warnings.ts has something to say (a default route moving Service traffic, a per-node gateway written as one address). */
export const CONDITION_WARNINGS = 'Warnings';

export interface StatusInputs {
  route: Route;
  aggregate: RouteAggregate;
  service: (namespace: string, name: string) => Service | undefined;
  now: Date;
}

/** A rule of the Route that cannot be used, from the schema or from resolution. */
export interface RuleProblem {
  field: string;
  error: string;
}

function truncate(s: string): string {
  return s.length > MAX_MESSAGE ? `${s.slice(0, MAX_MESSAGE - 20)}... (truncated)` : s;
}

function listed<T>(items: T[], show: (x: T) => string): string {
  const shown = items.slice(0, 10).map(show).join('; ');
  return items.length > 10 ? `${shown}; and ${items.length - 10} more` : shown;
}

/** Rules of `route` that cannot be used: CRD schema errors in spec, then resolution's findings. */
export function invalidRules(route: Route, fromPods: InvalidRule[]): RuleProblem[] {
  const schema = validateRoute({
    apiVersion: `${API_GROUP}/${API_VERSION}`,
    kind: 'Route',
    metadata: { name: route.metadata?.name ?? '' },
    spec: route.spec ?? {},
  })
    .filter((e) => e.path.startsWith('spec'))
    .map((e) => ({ field: e.path, error: e.message }));
  const seen = new Set(schema.map((p) => `${p.field}\u0000${p.error}`));
  const out = [...schema];
  for (const i of fromPods)
    if (!seen.has(`${i.field}\u0000${i.error}`)) {
      seen.add(`${i.field}\u0000${i.error}`);
      out.push({ field: i.field, error: i.error });
    }
  return out;
}

/** Service rules of `route` that yield no route: looked up now, plus what pods' resolutions met. */
export function unresolvedServices(
  route: Route,
  fromPods: RouteAggregate['unresolved'],
  service: StatusInputs['service'],
): NonNullable<RouteStatus['unresolvedServices']> {
  const out: NonNullable<RouteStatus['unresolvedServices']> = [];
  const seen = new Set<string>();
  const push = (namespace: string, name: string, reason: string) => {
    const k = `${namespace}/${name}\u0000${reason}`;
    if (!seen.has(k)) {
      seen.add(k);
      out.push({ namespace, name, reason });
    }
  };
  for (const s of route.spec?.svc ?? []) {
    const { reason } = serviceIPs(service(s.namespace, s.name));
    if (reason) push(s.namespace, s.name, reason);
  }
  for (const u of fromPods) push(u.namespace, u.name, u.reason);
  return out;
}

function condition(
  type: string,
  status: RouteCondition['status'],
  reason: string,
  message: string,
  generation: number | undefined,
  previous: RouteCondition[] | undefined,
  now: Date,
): RouteCondition {
  const prev = previous?.find((c) => c.type === type);
  const lastTransitionTime =
    prev && prev.status === status && prev.lastTransitionTime ? prev.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return {
    type,
    status,
    reason,
    message: truncate(message),
    lastTransitionTime,
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
}

/** The status Route `inputs.route` must carry now, and the Events it calls for. */
export function routeStatus(inputs: StatusInputs): { status: RouteStatus; events: RouteEvent[] } {
  const { route, aggregate, now } = inputs;
  const name = route.metadata?.name ?? '';
  const generation = route.metadata?.generation;
  const invalid = invalidRules(route, aggregate.invalid);
  const unresolved = unresolvedServices(route, aggregate.unresolved, inputs.service);
  const lost = aggregate.conflicts.filter((c) => c.route === name);
  const prev = route.status?.conditions;

  const ready = invalid.length
    ? condition(
        CONDITION_READY,
        'False',
        'InvalidRules',
        `${invalid.length} rule(s) cannot be used: ${listed(invalid, (p) => `${p.field}: ${p.error}`)}`,
        generation,
        prev,
        now,
      )
    : condition(
        CONDITION_READY,
        'True',
        'Resolved',
        'every rule is valid and in effect for the pods the Route selects',
        generation,
        prev,
        now,
      );
  const problems: string[] = [];
  if (unresolved.length)
    problems.push(
      `${unresolved.length} Service rule(s) do not resolve: ${listed(unresolved, (u) => `${u.namespace}/${u.name}: ${u.reason}`)}`,
    );
  if (lost.length) problems.push(`${lost.length} destination(s) go to another Route: ${listed(lost, (c) => c.message)}`);
  const degradedReason =
    unresolved.length && lost.length ? 'UnresolvedServicesAndConflicts' : unresolved.length ? 'UnresolvedServices' : 'ConflictsLost';
  const degraded = problems.length
    ? condition(CONDITION_DEGRADED, 'True', degradedReason, problems.join('. '), generation, prev, now)
    : condition(
        CONDITION_DEGRADED,
        'False',
        'AsExpected',
        'every Service rule resolves and no other Route overrides this one',
        generation,
        prev,
        now,
      );

  // Valid but probably not meant (core/warnings.ts): reported, without degrading the Route.
  const warnings = routeWarnings(route, inputs.service);
  const reasons = [...new Set(warnings.map((w) => w.reason))];
  const warning = warnings.length
    ? condition(
        CONDITION_WARNINGS,
        'True',
        reasons.length === 1 ? reasons[0]! : 'MultipleWarnings',
        listed(warnings, (w) => w.message),
        generation,
        prev,
        now,
      )
    : condition(
        CONDITION_WARNINGS,
        'False',
        'None',
        'no default route that moves Service traffic, no literal gateway that differs between nodes',
        generation,
        prev,
        now,
      );

  const status: RouteStatus = {
    status: invalid.length ? 'Invalid' : problems.length ? 'Degraded' : 'Active',
    conditions: [ready, degraded, warning],
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    matchedPods: aggregate.matchedPods,
    appliedPods: aggregate.appliedPods,
    unresolvedServices: unresolved.slice(0, MAX_ITEMS),
    conflicts: aggregate.conflicts
      .slice(0, MAX_ITEMS)
      .map((c) => ({ dst: c.dst, route: c.route, winner: c.winner, message: truncate(c.message) })),
  };
  // Events: each invalid rule, and each destination this Route loses to another.
  const events = [
    ...invalid.map((p): RouteEvent => ({ reason: 'InvalidRule', message: `${p.field}: ${p.error}` })),
    ...lost.map((c): RouteEvent => ({ reason: 'RouteConflict', message: c.message })),
    ...warnings.map((w): RouteEvent => ({ reason: w.reason, message: w.message })),
  ];
  return { status, events };
}

/** JSON with object keys sorted, so two statuses compare equal whatever their key order. */
function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stable((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Whether two statuses say the same (key order and absent-vs-undefined ignored). */
export function statusEqual(a: RouteStatus | undefined, b: RouteStatus | undefined): boolean {
  return stable(a ?? {}) === stable(b ?? {});
}

/** An Event to record on a Route. */
export interface RouteEvent {
  reason: 'InvalidRule' | 'RouteConflict' | WarningReason;
  message: string;
}

/**
 * The JSON Patch for routes/<name>/status that sets `status`, only if the Route is still at
 * the resourceVersion the status was computed from (else the write is refused with a
 * conflict, and the newer Route is looked at again).
 */
export function statusPatch(route: Route, status: RouteStatus): Operation[] {
  return [
    { op: 'test', path: '/metadata/resourceVersion', value: route.metadata?.resourceVersion },
    { op: 'add', path: '/status', value: status },
  ];
}
