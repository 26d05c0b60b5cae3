/**
 * The filter chain. Every predicate returns a reason string: "" means "matches / allowed",
 * anything else explains why not, so each skip can be logged, counted and shown by the CLI.
 * Name-based checks are tri-state because pods made with generateName have no name yet at
 * admission (see match.ts); a Route whose decision hangs on the final name is deferred.
 */
import { describeSelector, globMatch, globMatchPrefix, labelSelectorMatches, type Tri } from './match.js';
import { INJECT_LABEL, type Namespace, type OwnerRef, type Pod, type PodSelectorTerm } from './types.js';

export type InjectMode = 'default' | 'opt-in';

/** What the filters look at for one pod. */
export interface Subject {
  pod: Pod;
  namespace: Namespace | undefined;
  owners: OwnerRef[];
}

/** A pod-level predicate: "" when the pod may get routes, else the reason it may not. */
export type PodPredicate = (s: Subject, mode: InjectMode) => string;

export function podRef(pod: Pod): string {
  const m = pod.metadata ?? {};
  const name = m.name || (m.generateName ? `${m.generateName}<generated>` : '<unnamed>');
  return `${m.namespace ?? '<no namespace>'}/${name}`;
}

export const notHostNetwork: PodPredicate = (s) =>
  s.pod.spec?.hostNetwork === true ? 'pod uses the host network (hostNetwork: true)' : '';

export const notOptedOut: PodPredicate = (s) => {
  if (s.pod.metadata?.labels?.[INJECT_LABEL] === 'disabled') return `pod is labelled ${INJECT_LABEL}=disabled`;
  if (s.namespace?.metadata?.labels?.[INJECT_LABEL] === 'disabled') {
    return `namespace ${s.namespace.metadata.name ?? ''} is labelled ${INJECT_LABEL}=disabled`;
  }
  return '';
};

export const optedInIfRequired: PodPredicate = (s, mode) => {
  if (mode !== 'opt-in') return '';
  if (s.pod.metadata?.labels?.[INJECT_LABEL] === 'enabled') return '';
  if (s.namespace?.metadata?.labels?.[INJECT_LABEL] === 'enabled') return '';
  return `opt-in mode: neither the pod nor its namespace is labelled ${INJECT_LABEL}=enabled`;
};

/** The pod-level chain, in order; the first non-empty reason wins. */
export const podChain: { code: 'host-network' | 'opted-out' | 'not-opted-in'; check: PodPredicate }[] = [
  { code: 'host-network', check: notHostNetwork },
  { code: 'opted-out', check: notOptedOut },
  { code: 'not-opted-in', check: optedInIfRequired },
];

/** Result of matching: tri-state plus the reason (empty when it is 'yes'). */
export interface Verdict {
  match: Tri;
  reason: string;
}

const YES: Verdict = { match: 'yes', reason: '' };

function nameTri(pattern: string, pod: Pod): Tri {
  const m = pod.metadata ?? {};
  if (m.name) return globMatch(pattern, m.name) ? 'yes' : 'no';
  if (m.generateName) return globMatchPrefix(pattern, m.generateName);
  return 'unknown';
}

function anyTri(values: Tri[]): Tri {
  if (values.includes('yes')) return 'yes';
  return values.includes('unknown') ? 'unknown' : 'no';
}

/**
 * Whether a pod matches one include/exclude term: every field given must match. With `why`
 * false the verdict is the same but carries no reason (plan resolution's hot path asks for
 * reasons only when it reports them).
 */
export function termMatches(term: PodSelectorTerm, s: Subject, why = true): Verdict {
  const ns = s.pod.metadata?.namespace ?? '';
  const not = (match: Tri, reason: () => string): Verdict => ({ match, reason: why ? reason() : '' });
  const verdicts: Verdict[] = [];
  if (term.namespaces) {
    verdicts.push(
      term.namespaces.some((p) => globMatch(p, ns))
        ? YES
        : not('no', () => `namespace "${ns}" is not in namespaces [${term.namespaces!.join(', ')}]`),
    );
  }
  if (term.namespaceSelector) {
    verdicts.push(
      labelSelectorMatches(term.namespaceSelector, s.namespace?.metadata?.labels)
        ? YES
        : not('no', () => `namespace "${ns}" labels do not match namespaceSelector {${describeSelector(term.namespaceSelector!)}}`),
    );
  }
  if (term.pods) {
    const tris = term.pods.map((p): Tri => {
      const slash = p.indexOf('/');
      if (slash < 0 || !globMatch(p.slice(0, slash), ns)) return 'no';
      return nameTri(p.slice(slash + 1), s.pod);
    });
    const t = anyTri(tris);
    verdicts.push(
      t === 'yes'
        ? YES
        : not(t, () =>
            t === 'no'
              ? `pod ${podRef(s.pod)} is not in pods [${term.pods!.join(', ')}]`
              : `pod name not known yet (generateName "${s.pod.metadata?.generateName ?? ''}"), pods [${term.pods!.join(', ')}] decided once the pod exists`,
          ),
    );
  }
  if (term.podSelector) {
    verdicts.push(
      labelSelectorMatches(term.podSelector, s.pod.metadata?.labels)
        ? YES
        : not('no', () => `pod labels do not match podSelector {${describeSelector(term.podSelector!)}}`),
    );
  }
  if (term.owners) {
    const ok = term.owners.some((o) =>
      s.owners.some(
        (w) => w.kind === o.kind && globMatch(o.name, w.name) && (o.namespace === undefined || globMatch(o.namespace, w.namespace)),
      ),
    );
    verdicts.push(
      ok
        ? YES
        : not(
            'no',
            () =>
              `pod's owners [${s.owners.map((w) => `${w.kind}/${w.name}`).join(', ') || 'none'}] match none of owners [${term.owners!.map((o) => `${o.kind}/${o.namespace ? o.namespace + '/' : ''}${o.name}`).join(', ')}]`,
          ),
    );
  }
  const no = verdicts.find((v) => v.match === 'no');
  if (no) return no;
  return verdicts.find((v) => v.match === 'unknown') ?? YES;
}

/**
 * Whether a Route's include/exclude select the pod. No include selects every pod; a pod
 * matches a list when any term matches; exclude wins over include. With `why` false the
 * verdict carries no reason (see termMatches).
 */
export function routeSelects(
  include: PodSelectorTerm[] | undefined,
  exclude: PodSelectorTerm[] | undefined,
  s: Subject,
  why = true,
): Verdict {
  let inc: Verdict = YES;
  if (include) {
    const vs = include.map((t) => termMatches(t, s, why));
    const hit = vs.find((v) => v.match === 'yes');
    if (hit) inc = hit;
    else
      inc = vs.find((v) => v.match === 'unknown') ?? {
        match: 'no',
        reason: why ? `not included: ${vs.map((v, i) => `include[${i}]: ${v.reason}`).join('; ') || 'include is empty'}` : '',
      };
  }
  if (inc.match === 'no') return inc;
  for (const [i, t] of (exclude ?? []).entries()) {
    const v = termMatches(t, s, why);
    if (v.match === 'yes') return { match: 'no', reason: why ? `excluded by exclude[${i}]` : '' };
    if (v.match === 'unknown') return { match: 'unknown', reason: why ? `exclude[${i}]: ${v.reason}` : '' };
  }
  return inc;
}

/**
 * Whether a Route can select any pod of namespace `ns`, judged from its include alone: false
 * when include is present and every term names namespaces (`namespaces`, or the namespace part
 * of every `pods` entry) none of which matches `ns`. Such a Route is a sure 'no' for every pod
 * of `ns` (termMatches gives 'no' for a term whose namespace part fails), so plan resolution
 * may leave it out (webhook/plan.ts indexes Routes by namespace with it).
 *
 * With `namespace` (the namespace's labels as the pods' resolution sees them: `labels`
 * undefined when the Namespace is not known), a term whose namespaceSelector does not match
 * them is ruled out too, for the same reason.
 */
export function mayIncludeNamespace(
  route: { spec?: { include?: PodSelectorTerm[] } },
  ns: string,
  namespace?: { labels: Record<string, string> | undefined },
): boolean {
  const include = route.spec?.include;
  if (!include) return true;
  return include.some((t) => {
    if (t.namespaces && !t.namespaces.some((p) => globMatch(p, ns))) return false;
    if (
      t.pods &&
      !t.pods.some((p) => {
        const slash = p.indexOf('/');
        return slash >= 0 && globMatch(p.slice(0, slash), ns);
      })
    )
      return false;
    if (namespace && t.namespaceSelector && !labelSelectorMatches(t.namespaceSelector, namespace.labels)) return false;
    return true;
  });
}
