/**
 * The namespace side of the agent's decision (pure, no I/O).
 *
 * The webhook's namespaceSelector skips namespaces labelled routes.k8s.ovn.org/inject=disabled,
 * so nothing overwrites a plan annotation a pod author there copies from another pod of the
 * same namespace (the signature binds a plan to its namespace, so the copy verifies). The
 * controller removes such plans eventually; the agent must not apply them in between. So
 * the agent keeps every namespace's labels (NamespaceCache, fed by agent-kube.ts
 * NamespaceSource) and agentIntent() treats a pod of an opted-out namespace exactly like a
 * pod labelled inject=disabled: the empty plan, reason `namespace-opted-out`.
 *
 * Fail safe: a plan (valid or not) is only acted on once the pod's namespace is known. Until
 * the first full namespace list is in, or for a namespace the watch has not shown yet, the
 * pod's netns is left exactly as it is (intent `defer`): nothing applied, nothing removed.
 * Removing routes never needs the namespace (pods without a plan, or opted out themselves,
 * get the empty plan at once).
 */
import type { PlanKey } from '../../core/plan-codec.js';
import { INJECT_LABEL, type Namespace, type Pod } from '../../core/types.js';
import { podIntent, type PodIntent } from '../pod.js';

/** What the agent knows of a pod's namespace. */
export type NamespaceInfo = { known: true; optedOut: boolean } | { known: false; why: 'namespaces-unsynced' | 'namespace-unknown' };

/** What the agent does for a pod: podIntent(), or `defer` while its namespace is not known. */
export type AgentIntent = PodIntent | { kind: 'defer'; reason: 'namespaces-unsynced' | 'namespace-unknown' };

const optedOut = (labels: Readonly<Record<string, string>> | undefined): boolean => labels?.[INJECT_LABEL] === 'disabled';

/** The labels of every namespace, as the namespace watch delivers them. */
export class NamespaceCache {
  private readonly labels = new Map<string, Readonly<Record<string, string>>>();
  private isSynced = false;

  /** Store a namespace (add or update). True when the agent's decision may change: a new name, or its opt-out flipped. */
  set(ns: Namespace): boolean {
    const name = ns.metadata?.name;
    if (!name) return false;
    const prev = this.labels.get(name);
    const next = Object.freeze({ ...ns.metadata?.labels });
    this.labels.set(name, next);
    return prev === undefined || optedOut(prev) !== optedOut(next);
  }

  /** Forget a deleted namespace. */
  delete(ns: Namespace): void {
    const name = ns.metadata?.name;
    if (name) this.labels.delete(name);
  }

  /** The first full list is in. Returns false when it already was. */
  markSynced(): boolean {
    if (this.isSynced) return false;
    this.isSynced = true;
    return true;
  }

  get synced(): boolean {
    return this.isSynced;
  }

  get size(): number {
    return this.labels.size;
  }

  /** What is known of namespace `name`. */
  info(name: string): NamespaceInfo {
    const l = this.labels.get(name);
    if (l !== undefined) return { known: true, optedOut: optedOut(l) };
    return { known: false, why: this.isSynced ? 'namespace-unknown' : 'namespaces-unsynced' };
  }
}

/**
 * Decide what the agent does for a pod, given its namespace. In order: podIntent()'s
 * `ignore` and the pod's own opt-out stand; an opted-out namespace gives the empty plan
 * (`namespace-opted-out`) whatever the pod carries; a pod without a plan gets the empty plan;
 * a plan, verified or refused, waits (`defer`) until the namespace is known.
 */
export function agentIntent(pod: Pod, keys: readonly PlanKey[], ns: NamespaceInfo): AgentIntent {
  const own = podIntent(pod, keys);
  if (own.kind === 'ignore' || (own.kind === 'none' && own.reason === 'opted-out')) return own;
  if (ns.known && ns.optedOut) return { kind: 'none', reason: 'namespace-opted-out' };
  if (own.kind === 'none') return own;
  if (!ns.known) return { kind: 'defer', reason: ns.why };
  return own;
}
