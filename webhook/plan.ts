/**
 * What a pod's plan annotation must be right now, from the shared caches. The admission
 * webhook and the controller both call `desiredPlan()`, so a pod admitted by the webhook
 * and a pod re-stamped by the controller get byte-identical annotations (the encoding is
 * canonical and the HMAC deterministic), which is what makes reinvocation and
 * re-stamping idempotent.
 */
import { FifoMemo } from '../core/fifo-memo.js';
import { mayIncludeNamespace } from '../core/filters.js';
import { ownerChain, type OwnerLookup } from '../core/owners.js';
import { decodeSignedPlan, encodePlan, PlanEncodeError, type PlanKey } from '../core/plan-codec.js';
import { resolvePlan, selectRoutes, type InjectMode, type Resolution, type ResolveContext, type Selection } from '../core/resolve.js';
import type { Namespace, Pod, Route, Service } from '../core/types.js';

/** The cache reads plan resolution needs (ClusterCaches provides them). */
export interface PlanSources {
  routes: { list(): readonly Route[] };
  namespaces: { get(name: string): Namespace | undefined };
  service: (namespace: string, name: string) => Service | undefined;
  lookupOwner: OwnerLookup;
}

/** Why a pod gets no plan: core's skip codes plus the two failures of this layer. */
export type NoPlanReason = Extract<Resolution, { kind: 'skipped' }>['code'] | 'encode-error' | 'unsynced';

export type PlanDecision =
  | { action: 'set'; value: string; resolution: Extract<Resolution, { kind: 'plan' }> }
  | { action: 'remove'; reason: NoPlanReason; message: string; resolution?: Resolution };

/**
 * Routes that may select pods of a namespace (mayIncludeNamespace, by the namespace's name and
 * labels), per Route list: the cache's list() returns the same array until a Route changes, so
 * the index lives as long as that array. An entry is kept with the Namespace object it was made
 * for; the cache replaces that object when the namespace changes (a label), and the entry is
 * then made again. With many Routes each naming its namespaces or selecting namespaces by
 * label, a pod is resolved against the few that can concern it instead of all of them.
 */
const byNamespace = new WeakMap<readonly Route[], Map<string, { namespace: Namespace | undefined; routes: Route[] }>>();

/** The Routes of `all` that may select a pod of `ns`, whose Namespace object is `namespace` (undefined: not known). */
export function routesForNamespace(all: readonly Route[], ns: string, namespace: Namespace | undefined): Route[] {
  let idx = byNamespace.get(all);
  if (!idx) byNamespace.set(all, (idx = new Map()));
  let hit = idx.get(ns);
  if (!hit || hit.namespace !== namespace) {
    const labels = { labels: namespace?.metadata?.labels };
    hit = { namespace, routes: all.filter((r) => mayIncludeNamespace(r, ns, labels)) };
    if (idx.size >= 4096) idx.clear(); // bounded: namespaces come and go
    idx.set(ns, hit);
  }
  return hit.routes;
}

/**
 * Build core's ResolveContext for `pod` (whose metadata.namespace must be set) from the caches.
 * With `indexed`, only the Routes that may select pods of the pod's namespace are given (the
 * resolution is the same except for the wording of a 'no-route' skip, see desiredPlan).
 */
export function resolveContext(pod: Pod, sources: PlanSources, mode: InjectMode, indexed = false): ResolveContext {
  const ns = pod.metadata?.namespace ?? '';
  const all = sources.routes.list();
  const namespace = sources.namespaces.get(ns);
  return {
    // resolvePlan copies before sorting, so the cache's shared arrays are safe to pass.
    routes: (indexed ? routesForNamespace(all, ns, namespace) : all) as Route[],
    namespace,
    service: sources.service,
    owners: ownerChain(pod, sources.lookupOwner),
    mode,
  };
}

/**
 * The annotation value the pod must carry (signed with `keys[0]` for the pod's
 * namespace), or why it must carry none. Never throws: a plan too large to encode is
 * `remove` with reason `encode-error` (a plan is never truncated).
 */
export function desiredPlan(
  pod: Pod,
  sources: PlanSources,
  opts: { mode: InjectMode; keys: readonly PlanKey[]; selected?: { ctx: ResolveContext; selection: Selection } },
): PlanDecision {
  const namespace = pod.metadata?.namespace ?? '';
  // `selected`: the indexed context of `pod` and its selectRoutes, when the caller has just made them.
  const resolution = opts.selected
    ? resolvePlan(pod, opts.selected.ctx, { selection: opts.selected.selection })
    : resolvePlan(pod, resolveContext(pod, sources, opts.mode, true));
  if (resolution.kind === 'skipped') {
    // A 'no-route' skip lists why each Route does not select the pod: say it about all of
    // them. That takes resolving over every Route, so it is done only when the reason is read
    // (a log line), over the caches' content of now; nothing else differs (the Routes the
    // index left out are sure not to select the pod).
    if (resolution.code === 'no-route') {
      const everyRoute = resolveContext(pod, sources, opts.mode);
      withFullReason(resolution, () => resolvePlan(pod, everyRoute));
    }
    return {
      action: 'remove',
      reason: resolution.code,
      get message() {
        return resolution.reason;
      },
      resolution,
    };
  }
  try {
    return { action: 'set', value: encodePlan(resolution.plan, { key: opts.keys[0], namespace }), resolution };
  } catch (e) {
    if (!(e instanceof PlanEncodeError)) throw e;
    return { action: 'remove', reason: 'encode-error', message: e.message, resolution };
  }
}

/** Make `skip.reason` the reason of `full()`, worked out once, when first read. */
function withFullReason(skip: Extract<Resolution, { kind: 'skipped' }>, full: () => Resolution): void {
  const own = skip.reason;
  let reason: string | undefined;
  Object.defineProperty(skip, 'reason', {
    enumerable: true,
    configurable: true,
    get: () => {
      if (reason === undefined) {
        const r = full();
        reason = r.kind === 'skipped' ? r.reason : own;
      }
      return reason;
    },
  });
}

/** True when `value` is a plan signed by one of `keys` for `namespace` (i.e. the system wrote it). */
export function isSystemSigned(value: string, namespace: string, keys: readonly PlanKey[]): boolean {
  return decodeSignedPlan(value, namespace, keys).ok;
}

/** What admission needs of a PlanDecision: the value to set, or why none and its message. */
export type PlanAnswer = { action: 'set'; value: string } | { action: 'remove'; reason: NoPlanReason; readonly message: string };

/**
 * Everything of a pod that plan resolution reads (core/filters.ts, core/owners.ts): its
 * namespace, name and generateName (name-based terms, and the wording of reasons), labels
 * (selectors, the opt-out and opt-in labels), ownerReferences (owner chains) and whether it
 * uses the host network. Resolving this projection gives the pod's own resolution; a field
 * that resolution comes to read must be added here, or the memo below would not see it.
 */
export function resolutionSubject(pod: Pod, namespace: string): Pod {
  const m = pod.metadata ?? {};
  return {
    metadata: {
      namespace,
      ...(m.name !== undefined ? { name: m.name } : {}),
      ...(m.generateName !== undefined ? { generateName: m.generateName } : {}),
      ...(m.labels !== undefined ? { labels: m.labels } : {}),
      ...(m.ownerReferences !== undefined ? { ownerReferences: m.ownerReferences } : {}),
    },
    spec: pod.spec?.hostNetwork === true ? { hostNetwork: true } : {},
  };
}

/** Sources whose content has a version (ClusterCaches.version()): equal versions, same content. */
export type VersionedSources = PlanSources & { version(): number };

/**
 * The plan memo of admission: the answers of desiredPlan, by the JSON of the pod's
 * resolutionSubject, for one version of the sources, one signing key and one mode. Any
 * change of a Route, Namespace, Service, ReplicaSet or Job changes the version, and the memo
 * starts again empty; so does a new signing key (keys[0]) or mode. The pods of one workload
 * (same namespace, generateName, labels and owner) are admitted with one resolution and one
 * signature between two changes; pods with inputs of their own that the same Routes select
 * in one namespace (a StatefulSet's) share one signature, after a selection of their own.
 * Those shared plans are kept apart from the answers by pod inputs, so that a stream of pods
 * with inputs of their own (each remembered once, and never asked about again) does not push
 * them out. Both are bounded in entries and in bytes (keys and plan values; the oldest entries
 * go first), and a pod whose inputs alone are larger than PLAN_MEMO_KEY_MAX (labels are not
 * limited in number) is resolved without it.
 */
interface PlanMemo {
  version: number;
  signer: PlanKey;
  mode: InjectMode;
  /** By the pod's inputs. */
  answers: FifoMemo<PlanAnswer>;
  /** By namespace and the names of the Routes selecting the pod (plans only). */
  shared: FifoMemo<PlanAnswer>;
}
const memos = new WeakMap<VersionedSources, PlanMemo>();
export const PLAN_MEMO_SIZE = 2048;
export const PLAN_MEMO_BYTES = 4 * 1024 * 1024;
export const PLAN_MEMO_SHARED_SIZE = 1024;
export const PLAN_MEMO_SHARED_BYTES = 2 * 1024 * 1024;
export const PLAN_MEMO_KEY_MAX = 8 * 1024;

/**
 * desiredPlan of `pod` in `namespace` (the pod's own namespace field may be missing, as in a
 * CREATE review), remembered as described at PlanMemo. The answer is shared: never mutate it.
 */
export function memoizedPlan(
  pod: Pod,
  namespace: string,
  sources: VersionedSources,
  opts: { mode: InjectMode; keys: readonly PlanKey[] },
): PlanAnswer {
  const subject = resolutionSubject(pod, namespace);
  const key = JSON.stringify(subject);
  if (key.length > PLAN_MEMO_KEY_MAX) return answerOf(desiredPlan(subject, sources, opts));
  const version = sources.version();
  const signer = opts.keys[0]!;
  let memo = memos.get(sources);
  if (!memo || memo.version !== version || memo.signer !== signer || memo.mode !== opts.mode) {
    memo = {
      version,
      signer,
      mode: opts.mode,
      answers: new FifoMemo(PLAN_MEMO_SIZE, PLAN_MEMO_BYTES),
      shared: new FifoMemo(PLAN_MEMO_SHARED_SIZE, PLAN_MEMO_SHARED_BYTES),
    };
    memos.set(sources, memo);
  }
  const hit = memo.answers.get(key);
  if (hit) return hit;
  // Inputs of its own (a StatefulSet pod's name label, a bare pod's name) mostly still meet
  // Routes that other pods met: the plan of a pod that is not skipped is decided by the
  // Routes selecting it alone (selectRoutes), and signed for its namespace only. So those
  // share one answer too, kept under the namespace and the selecting Routes' names (names
  // identify Routes within one version of the caches).
  const ctx = resolveContext(subject, sources, opts.mode, true);
  const sel = selectRoutes(subject, ctx);
  const shared =
    sel.kind === 'selected' && sel.selected.length
      ? `\u0000${namespace}\u0000${sel.selected.map((r) => r.metadata?.name ?? '').join('\u0000')}`
      : null;
  const met = shared === null ? undefined : memo.shared.get(shared);
  const answer = met ?? answerOf(desiredPlan(subject, sources, { ...opts, selected: { ctx, selection: sel } }));
  // Only a plan is shared: a skip's reason names the pod.
  if (shared !== null && !met && answer.action === 'set') remember(memo.shared, shared, answer);
  remember(memo.answers, key, answer);
  return answer;
}

/** Keep `answer` under `key` in `store`, within its bounds (oldest first out). */
function remember(store: FifoMemo<PlanAnswer>, key: string, answer: PlanAnswer): void {
  // UTF-16 code units, 2 bytes each; the plan value is the only large part of an answer.
  store.set(key, answer, 2 * (key.length + (answer.action === 'set' ? answer.value.length : 0)));
}

/** Only what admission reads of a decision (not the resolution's lists, for a set plan). */
function answerOf(d: PlanDecision): PlanAnswer {
  return d.action === 'set' ? { action: 'set', value: d.value } : d;
}
