/**
 * What a pod asks of the agent, from the pod alone (pure, no I/O): its verified plan, or
 * why it has none, or why its plan was refused. The agent decides with agentIntent()
 * (agent-namespaces.ts), which adds the pod's namespace (its opt-out label) on top.
 *
 * - hostNetwork pods share the node's netns: never touched (and refused anyway).
 * - Pods that ended (phase Succeeded/Failed) have no sandbox any more: their state goes.
 * - A pod labelled routes.k8s.ovn.org/inject=disabled gets no routes even if a plan
 *   annotation is present: the empty plan (routes of ours removed, default restored).
 * - No plan annotation: the empty plan, likewise.
 * - A plan annotation is decoded and verified (signature bound to the pod's namespace, the
 *   node's key ring, signature required). One that fails is refused, never applied.
 */
import { decodeSignedPlan, planHash, type DecodeErrorCode, type PlanKey } from '../core/plan-codec.js';
import { INJECT_LABEL, PLAN_ANNOTATION, READY_CONDITION, STATUS_ANNOTATION, type Plan, type Pod } from '../core/types.js';

export type PodIntent =
  | { kind: 'ignore'; reason: 'host-network' | 'terminated' | 'no-uid' }
  | { kind: 'none'; reason: 'no-plan' | 'opted-out' | 'namespace-opted-out' }
  | { kind: 'plan'; plan: Plan; hash: string; value: string }
  | { kind: 'rejected'; code: DecodeErrorCode; error: string; value: string };

/** The empty plan: nothing of ours in the netns, original default route back. */
export const EMPTY_PLAN: Plan = Object.freeze({ v: 1, routes: [] }) as Plan;

/** True when the plan asks for nothing. */
export function isEmptyPlan(p: Plan): boolean {
  return p.routes.length === 0 && p.default === undefined && !p.symmetric?.length;
}

/** Decide what a pod asks for, ignoring its namespace. `keys` is the current key ring. */
export function podIntent(pod: Pod, keys: readonly PlanKey[]): PodIntent {
  if (!pod.metadata?.uid) return { kind: 'ignore', reason: 'no-uid' };
  if (pod.spec?.hostNetwork === true) return { kind: 'ignore', reason: 'host-network' };
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return { kind: 'ignore', reason: 'terminated' };
  if (pod.metadata.labels?.[INJECT_LABEL] === 'disabled') return { kind: 'none', reason: 'opted-out' };
  const value = pod.metadata.annotations?.[PLAN_ANNOTATION];
  if (value === undefined) return { kind: 'none', reason: 'no-plan' };
  // Verified once per value, namespace and key ring (the agent looks at a pod on every update).
  const d = decodeSignedPlan(value, pod.metadata.namespace ?? '', keys);
  if (!d.ok) return { kind: 'rejected', code: d.code, error: d.error, value };
  return { kind: 'plan', plan: d.plan, hash: planHash(d.plan), value };
}

/** Whether the pod asks for the routes.k8s.ovn.org/ready readiness gate. */
export function hasReadinessGate(pod: Pod): boolean {
  const gates = (pod.spec as { readinessGates?: { conditionType?: string }[] } | undefined)?.readinessGates;
  return Array.isArray(gates) && gates.some((g) => g?.conditionType === READY_CONDITION);
}

/** The pod's IPs as the kubelet reported them (status.podIPs, else status.podIP). */
export function podIPs(pod: Pod): string[] {
  const st = pod.status as { podIP?: string; podIPs?: { ip?: string }[] } | undefined;
  const ips = (st?.podIPs ?? []).map((p) => p?.ip).filter((x): x is string => typeof x === 'string' && x !== '');
  if (!ips.length && st?.podIP) ips.push(st.podIP);
  return ips;
}

/** "namespace/name" of a pod, for logs and messages. */
export function podKey(pod: Pod): string {
  return `${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`;
}

/**
 * Whether two versions of a pod ask the same of the agent: equal but for what the agent writes
 * itself (its status annotation and ready condition) and the API's bookkeeping
 * (resourceVersion, managedFields). Then the decision stands, so the echo of the agent's own
 * status write needs no sync, only the status compared again. Compared in place, stopping at
 * the first difference (a JSON of each whole pod cost a string per update and kept one per pod);
 * objects' key order does not matter, arrays' order does.
 */
export function sameSyncInputs(a: Pod, b: Pod): boolean {
  if (a === b) return true;
  const am = (a.metadata ?? {}) as Record<string, unknown>;
  const bm = (b.metadata ?? {}) as Record<string, unknown>;
  if (!sameExcept(am, bm, META_OWN)) return false;
  if (!sameExcept((am.annotations ?? {}) as Record<string, unknown>, (bm.annotations ?? {}) as Record<string, unknown>, ANNOTATION_OWN)) {
    return false;
  }
  if (!same(a.spec, b.spec)) return false;
  const as = (a.status ?? {}) as Record<string, unknown>;
  const bs = (b.status ?? {}) as Record<string, unknown>;
  if (!sameExcept(as, bs, STATUS_OWN)) return false;
  return same(othersConditions(as.conditions), othersConditions(bs.conditions));
}

/** Metadata fields written by the API or compared on their own (annotations). */
const META_OWN = new Set(['resourceVersion', 'managedFields', 'annotations']);
const ANNOTATION_OWN = new Set([STATUS_ANNOTATION]);
const STATUS_OWN = new Set(['conditions']);

/** The conditions less the agent's own ready condition (undefined stays undefined). */
function othersConditions(c: unknown): unknown {
  return Array.isArray(c) ? c.filter((x) => (x as { type?: string } | null)?.type !== READY_CONDITION) : c;
}

/** Objects equal in every key not in `skip` (a key absent and a key undefined are the same, as in JSON). */
function sameExcept(a: Record<string, unknown>, b: Record<string, unknown>, skip: ReadonlySet<string>): boolean {
  for (const k in a) if (!skip.has(k) && !same(a[k], b[k])) return false;
  for (const k in b) if (!skip.has(k) && a[k] === undefined && b[k] !== undefined) return false;
  return true;
}

/** Deep equality of JSON values (what the API sends); functions and the like are not expected. */
function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!same(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  return sameExcept(a as Record<string, unknown>, b as Record<string, unknown>, NONE);
}
const NONE: ReadonlySet<string> = new Set();
