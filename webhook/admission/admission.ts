/**
 * The admission handler, as a pure function (controller-runtime style): a v1
 * AdmissionReview in, an AdmissionReview out, no I/O. HTTP is a thin adapter (app.ts).
 *
 * Policy, for pods (CREATE and UPDATE):
 * - Always `allowed: true`: routing is not worth blocking a pod for (fail open); the
 *   controller backfills what admission could not do.
 * - The plan annotation ends up exactly as the webhook computes it from the caches: set
 *   to the signed value, or removed when the pod gets no plan. Whatever the pod author
 *   wrote there (a forged plan, a plan copied from another pod, a stale one) is replaced.
 *   On UPDATE this is checked again, so the annotation cannot be altered after creation.
 * - One exception on UPDATE: writers listed in `trustedUsers` (the controller's own
 *   service account) may set a plan that verifies with our keys, or remove it. The
 *   controller computes plans with the same code, and letting its patch through as-is
 *   stops two replicas whose caches differ by a few milliseconds from undoing each other.
 * - Caches not synced yet: nothing can be computed, so only the signature is enforced:
 *   on CREATE any plan is removed; on UPDATE the previous plan is kept if it verifies.
 * - The JSON Patch is fast-json-patch's `compare(original, mutated)`, which escapes the
 *   `/` of the annotation key as `~1` and handles an absent metadata.annotations.
 * - dryRun gets the same answer: admission has no side effects at all.
 * - Deterministic, so a reinvocation (reinvocationPolicy: IfNeeded) yields no new patch.
 */
import fjp from 'fast-json-patch';
import type { PlanKey } from '../../core/plan-codec.js';
import type { InjectMode } from '../../core/resolve.js';
import { PLAN_ANNOTATION, READINESS_GATE_LABEL, READY_CONDITION, type Pod } from '../../core/types.js';
import { isSystemSigned, memoizedPlan, type NoPlanReason, type VersionedSources } from '../plan.js';
import { ADMISSION_API_VERSION, type AdmissionRequest, type AdmissionResponse, type AdmissionReview, type ValidReview } from './review.js';

/** What admit() needs; nothing here does I/O. */
export interface AdmitDeps {
  /** Cache reads for resolution and their version (the plan memo), plus whether the caches have synced. */
  caches: VersionedSources & { isSynced(): boolean };
  mode: InjectMode;
  /** keys[0] signs; every key verifies (rotation). At least one. */
  keys: readonly PlanKey[];
  /** Usernames whose UPDATEs may write a verified plan as-is (see the module comment). */
  trustedUsers?: readonly string[];
}

export type AdmitOutcome = 'patched' | 'unchanged' | 'ignored' | 'failed-open';

/** What happened, for metrics and logs; admit() itself has no side effects. */
export interface AdmitDecision {
  outcome: AdmitOutcome;
  /** The plan annotation after admission: ours, none, or what a trusted writer / the old object had. */
  plan?: 'stamped' | 'none' | 'kept';
  /** Why the pod has no plan (plan === 'none'), or why a value was kept. */
  reason?: NoPlanReason | 'trusted-writer' | 'unsynced-verified';
  /** A plan annotation we did not compute was present and was replaced or removed. */
  overwritten?: { action: 'replaced' | 'removed'; signed: boolean };
  message?: string;
}

export interface AdmitResult {
  review: AdmissionReview;
  decision: AdmitDecision;
}

/** Label values that ask for the readiness gate. */
const GATE_ON = new Set(['true', 'enabled']);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function answer(req: AdmissionRequest, decision: AdmitDecision, extra: Partial<AdmissionResponse> = {}): AdmitResult {
  return {
    review: { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response: { uid: req.uid, allowed: true, ...extra } },
    decision,
  };
}

function failOpen(req: AdmissionRequest, code: number, message: string): AdmitResult {
  return answer(req, { outcome: 'failed-open', message }, { status: { code, message } });
}

function planOf(obj: unknown): string | undefined {
  const a = isObject(obj) && isObject(obj.metadata) && isObject(obj.metadata.annotations) ? obj.metadata.annotations : undefined;
  const v = a?.[PLAN_ANNOTATION];
  return typeof v === 'string' ? v : undefined;
}

/** A shallow copy of the pod with the plan annotation set (string) or removed (undefined). */
function withPlan(pod: Pod, value: string | undefined): Pod {
  const annotations = pod.metadata?.annotations;
  if (value === undefined && annotations?.[PLAN_ANNOTATION] === undefined) return pod;
  const next = { ...annotations };
  if (value === undefined) delete next[PLAN_ANNOTATION];
  else next[PLAN_ANNOTATION] = value;
  return { ...pod, metadata: { ...pod.metadata, annotations: next } };
}

/** The pod with the readiness gate appended to spec.readinessGates (a shallow copy). */
function withReadinessGate(pod: Pod): Pod {
  const gates = Array.isArray(pod.spec?.readinessGates) ? (pod.spec.readinessGates as unknown[]) : [];
  return { ...pod, spec: { ...pod.spec, readinessGates: [...gates, { conditionType: READY_CONDITION }] } };
}

/**
 * Admit one AdmissionReview (envelope already checked by parseReview). Never throws:
 * unexpected input or an internal error is answered `allowed: true` with a status code
 * and message, so the pod is created and the controller fixes its plan later.
 */
export function admit(review: ValidReview, deps: AdmitDeps): AdmitResult {
  const req = review.request;
  try {
    return admitRequest(req, deps);
  } catch (e) {
    return failOpen(req, 500, `internal error while admitting ${req.namespace ?? ''}/${req.name ?? ''}: ${(e as Error).message}`);
  }
}

/**
 * What plan resolution reads of the pod's metadata, checked for shape (a real API server
 * never sends these wrong, but a malformed review is bad input, not an internal error):
 * labels and annotations are maps of strings, ownerReferences a list of objects with a
 * string kind and name. Returns the problem, naming the field, or undefined.
 */
function metadataProblem(meta: Record<string, unknown> | undefined): string | undefined {
  if (!meta) return undefined;
  const f = 'request.object.metadata';
  for (const k of ['labels', 'annotations'] as const) {
    const m = meta[k];
    if (m === undefined) continue;
    if (!isObject(m)) return `${f}.${k}: expected a map of strings, got ${JSON.stringify(m)}`;
    for (const [key, v] of Object.entries(m))
      if (typeof v !== 'string') return `${f}.${k}[${JSON.stringify(key)}]: expected a string value, got ${JSON.stringify(v)}`;
  }
  const refs = meta.ownerReferences;
  if (refs === undefined) return undefined;
  if (!Array.isArray(refs)) return `${f}.ownerReferences: expected a list of owner references, got ${JSON.stringify(refs)}`;
  for (const [i, r] of refs.entries()) {
    if (!isObject(r)) return `${f}.ownerReferences[${i}]: expected an owner reference object (kind, name, ...), got ${JSON.stringify(r)}`;
    for (const k of ['kind', 'name'])
      if (typeof r[k] !== 'string') return `${f}.ownerReferences[${i}].${k}: expected a string, got ${JSON.stringify(r[k])}`;
  }
  return undefined;
}

/** A Pod CREATE or UPDATE, decoded and checked for shape. */
interface DecodedPod {
  req: AdmissionRequest;
  op: 'CREATE' | 'UPDATE';
  pod: Record<string, unknown>;
  meta: Record<string, unknown> | undefined;
  /** The request's namespace, or the object's when the request has none. */
  namespace: string;
  /** The plan annotation the object carries. */
  current: string | undefined;
}

/** What decide() came to: the plan annotation the pod must end up with, and why. */
interface Verdict {
  /** The plan annotation value, or undefined for none; absent when the pod is left as it is. */
  target: string | undefined;
  decision: AdmitDecision;
  warnings: string[];
  /** The trusted-writer exception: answer without a patch. */
  asIs?: true;
}

/** 1. Decode: what is not a Pod CREATE/UPDATE is ignored; a malformed Pod fails open. */
function decode(req: AdmissionRequest): DecodedPod | AdmitResult {
  const k = req.kind;
  if (!k || k.group !== '' || k.kind !== 'Pod') {
    return answer(req, {
      outcome: 'ignored',
      message: `not a core/v1 Pod (${k ? `${k.group}/${k.version} ${k.kind}` : 'no request.kind'}); nothing to do`,
    });
  }
  if (req.subResource) return answer(req, { outcome: 'ignored', message: `pods/${req.subResource} is not handled` });
  const op = req.operation;
  if (op !== 'CREATE' && op !== 'UPDATE') return answer(req, { outcome: 'ignored', message: `operation ${String(op)} is not handled` });
  const pod = req.object;
  if (!isObject(pod)) return failOpen(req, 400, 'request.object: expected the Pod object');
  if (pod.metadata !== undefined && !isObject(pod.metadata)) return failOpen(req, 400, 'request.object.metadata: expected an object');
  const meta = pod.metadata as Record<string, unknown> | undefined;
  const shape = metadataProblem(meta);
  if (shape) return failOpen(req, 400, shape);
  const namespace = req.namespace || (typeof meta?.namespace === 'string' ? meta.namespace : '');
  if (!namespace) return failOpen(req, 400, 'request.namespace: a Pod request must name its namespace');
  return { req, op, pod, meta, namespace, current: planOf(pod) };
}

/** The plan while the caches are not synced: only a verified previous plan survives. */
function unsyncedPlan(d: DecodedPod, signed: (v: string | undefined) => v is string): Pick<Verdict, 'target' | 'decision'> {
  const previous = d.op === 'UPDATE' ? planOf(d.req.oldObject) : undefined;
  const target =
    d.current !== undefined && d.current === previous && signed(d.current) ? d.current : signed(previous) ? previous : undefined;
  return {
    target,
    decision:
      target === undefined
        ? { outcome: 'unchanged', plan: 'none', reason: 'unsynced', message: 'caches not synced yet; the controller stamps the pod later' }
        : { outcome: 'unchanged', plan: 'kept', reason: 'unsynced-verified' },
  };
}

/** The plan computed from the caches. */
function computedPlan(d: DecodedPod, deps: AdmitDeps): Pick<Verdict, 'target' | 'decision'> {
  // Resolved with the namespace filled in (CREATE objects may lack it); the original is patched.
  const want = memoizedPlan(d.pod as Pod, d.namespace, deps.caches, { mode: deps.mode, keys: deps.keys });
  return want.action === 'set'
    ? { target: want.value, decision: { outcome: 'unchanged', plan: 'stamped' } }
    : {
        target: undefined,
        decision: {
          outcome: 'unchanged',
          plan: 'none',
          reason: want.reason,
          // Read when logged: a 'no-route' message is worked out only then (desiredPlan).
          get message() {
            return want.message;
          },
        },
      };
}

/** 2. Decide: the trust policy, the unsynced policy, or the computed plan; what it overwrites. */
function decide(d: DecodedPod, deps: AdmitDeps): Verdict {
  const signed = (v: string | undefined): v is string => v !== undefined && isSystemSigned(v, d.namespace, deps.keys);
  const user = d.req.userInfo?.username;
  if (d.op === 'UPDATE' && user && deps.trustedUsers?.includes(user) && (d.current === undefined || signed(d.current))) {
    return { target: d.current, decision: { outcome: 'unchanged', plan: 'kept', reason: 'trusted-writer' }, warnings: [], asIs: true };
  }
  const { target, decision } = deps.caches.isSynced() ? computedPlan(d, deps) : unsyncedPlan(d, signed);
  const warnings: string[] = [];
  if (d.current !== undefined && d.current !== target) {
    const wasSigned = signed(d.current);
    decision.overwritten = { action: target === undefined ? 'removed' : 'replaced', signed: wasSigned };
    if (!wasSigned)
      warnings.push(`${PLAN_ANNOTATION} is written by ovnkube-route only; the value given was ${decision.overwritten.action}`);
  }
  return { target, decision, warnings };
}

/** The pod's label asks for the readiness gate and the pod does not have it yet (CREATE only: gates are immutable). */
function wantsReadinessGate(pod: Pod): boolean {
  if (!GATE_ON.has(pod.metadata?.labels?.[READINESS_GATE_LABEL] ?? '')) return false;
  const gates = Array.isArray(pod.spec?.readinessGates) ? (pod.spec.readinessGates as { conditionType?: string }[]) : [];
  return !gates.some((g) => g?.conditionType === READY_CONDITION);
}

/** The plan annotation's key as a JSON Pointer token (RFC 6901: "~" as "~0", "/" as "~1"). */
const PLAN_TOKEN = PLAN_ANNOTATION.replace(/~/g, '~0').replace(/\//g, '~1');

/**
 * The JSON Patch from `pod` to `pod` with the plan annotation set to `value` (removed when
 * undefined) and, with `gate`, the readiness gate added (withPlan, withReadinessGate): the
 * very operations, in the same order, that fast-json-patch's compare() gives for the two
 * objects, without walking and cloning the whole pod (test/webhook/admission-patch.test.ts
 * compares both on every shape). A spec, or readinessGates, that is not what the API server
 * sends (not an object, not a list) is left to compare().
 */
export function planPatch(pod: Pod, value: string | undefined, gate: boolean): fjp.Operation[] {
  const spec = pod.spec as unknown;
  const gates = isObject(spec) ? spec.readinessGates : undefined;
  const odd = gate && (spec !== undefined ? !isObject(spec) || (gates !== undefined && !Array.isArray(gates)) : 'spec' in pod);
  if (odd || ('metadata' in pod && !isObject(pod.metadata))) {
    let mutated = withPlan(pod, value);
    if (gate) mutated = withReadinessGate(mutated);
    return fjp.compare(pod, mutated);
  }
  const meta = annotationOp(pod, value);
  const specOp = gate ? gateOp(spec, gates) : undefined;
  if (!meta || !specOp) return meta ? [meta] : specOp ? [specOp] : [];
  // compare() visits the keys the pod has from last to first, then adds the keys it lacks
  // (metadata before spec, as withPlan and withReadinessGate append them).
  const keys = Object.keys(pod);
  const mi = pod.metadata ? keys.indexOf('metadata') : -1;
  const si = spec !== undefined ? keys.indexOf('spec') : -1;
  return si >= 0 && (mi < 0 || si > mi) ? [specOp, meta] : [meta, specOp];
}

/** planPatch's operation under metadata: the plan annotation set to `value`, or removed. */
function annotationOp(pod: Pod, value: string | undefined): fjp.Operation | undefined {
  const annotations = pod.metadata?.annotations;
  const current = annotations?.[PLAN_ANNOTATION];
  const path = `/metadata/annotations/${PLAN_TOKEN}`;
  if (value === undefined) return current === undefined ? undefined : { op: 'remove', path };
  if (current === value) return undefined;
  if (current !== undefined) return { op: 'replace', path, value };
  if (annotations) return { op: 'add', path, value };
  if (pod.metadata) return { op: 'add', path: '/metadata/annotations', value: { [PLAN_ANNOTATION]: value } };
  return { op: 'add', path: '/metadata', value: { annotations: { [PLAN_ANNOTATION]: value } } };
}

/** planPatch's operation under spec: the readiness gate added (spec an object or absent, readinessGates a list or absent). */
function gateOp(spec: unknown, gates: unknown): fjp.Operation {
  const g = { conditionType: READY_CONDITION };
  if (spec === undefined) return { op: 'add', path: '/spec', value: { readinessGates: [g] } };
  if (Array.isArray(gates)) return { op: 'add', path: `/spec/readinessGates/${gates.length}`, value: g };
  return { op: 'add', path: '/spec/readinessGates', value: [g] };
}

/** 3. Patch: the JSON Patch from the pod as sent to the pod as decided (none when equal). */
function patch(d: DecodedPod, v: Verdict): AdmitResult {
  const { req, op, pod } = d;
  if (v.asIs) return answer(req, v.decision);
  const gate = op === 'CREATE' && v.decision.plan === 'stamped' && wantsReadinessGate(pod as Pod);
  const ops = planPatch(pod as Pod, v.target, gate);
  const warnings = v.warnings.length ? { warnings: v.warnings } : {};
  if (ops.length === 0) return answer(req, v.decision, warnings);
  v.decision.outcome = 'patched';
  return answer(req, v.decision, { patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(ops)).toString('base64'), ...warnings });
}

/** decode -> decide -> patch (the controller-runtime shape). */
function admitRequest(req: AdmissionRequest, deps: AdmitDeps): AdmitResult {
  const d = decode(req);
  if ('review' in d) return d;
  return patch(d, decide(d, deps));
}
