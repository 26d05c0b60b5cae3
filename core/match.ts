/**
 * Matching primitives for Route include/exclude terms: `*` globs and Kubernetes label
 * selectors. Globs are tri-state for names that are not known yet: a pod created with
 * generateName has no name at admission, only a prefix, so "web-*" against prefix
 * "web-7d4f-" is certainly a match, "db-*" certainly not, and "web-*-x" unknown.
 */
import type { LabelSelector } from './types.js';

export type Tri = 'yes' | 'no' | 'unknown';

const globCache = new Map<string, RegExp>();

function globRegExp(pattern: string): RegExp {
  let re = globCache.get(pattern);
  if (!re) {
    const body = pattern
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*');
    re = new RegExp(`^${body}$`);
    if (globCache.size > 10_000) globCache.clear(); // patterns come from Routes: bounded in practice
    globCache.set(pattern, re);
  }
  return re;
}

/** Whether `value` matches the `*` glob `pattern`. */
export function globMatch(pattern: string, value: string): boolean {
  if (!pattern.includes('*')) return pattern === value;
  return globRegExp(pattern).test(value);
}

/**
 * Whether every, no, or only some names starting with `prefix` match `pattern`.
 * Used for pods with generateName: the final name is `prefix` plus a random suffix.
 */
export function globMatchPrefix(pattern: string, prefix: string): Tri {
  const star = pattern.indexOf('*');
  const literal = star < 0 ? pattern : pattern.slice(0, star);
  const n = Math.min(literal.length, prefix.length);
  if (literal.slice(0, n) !== prefix.slice(0, n)) return 'no';
  // "L*" with L a prefix of the known prefix: any suffix matches.
  if (star >= 0 && pattern.slice(star) === '*' && literal.length <= prefix.length) return 'yes';
  return 'unknown';
}

/** Whether labels satisfy a LabelSelector (matchLabels AND every matchExpression). Empty selects all. */
export function labelSelectorMatches(sel: LabelSelector, labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(l, e.key);
    const vals = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !vals.includes(l[e.key]!)) return false;
        break;
      case 'NotIn':
        if (has && vals.includes(l[e.key]!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false; // unknown operators never match (the schema refuses them)
    }
  }
  return true;
}

/** Human-readable form of a selector for reasons and logs. */
export function describeSelector(sel: LabelSelector): string {
  const parts = Object.entries(sel.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of sel.matchExpressions ?? []) {
    if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
    else parts.push(`${e.key} ${e.operator === 'In' ? 'in' : 'notin'} (${(e.values ?? []).join(',')})`);
  }
  return parts.length ? parts.join(',') : '<everything>';
}
