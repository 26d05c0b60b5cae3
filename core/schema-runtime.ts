/**
 * What the generated Route validator (core/generated/route-validator.ts, written by
 * scripts/build.mjs with ajv's standalone code generation from crds/route.yaml) calls at run
 * time: the formats the CRD uses and the CEL rules' TypeScript twins. The generator declares
 * the same format names and shapes ({type, validate}); keep the two in step.
 */
import { celTwins } from './cel-rules.js';

export { celTwins };

/** The CRD's formats, as ajv format definitions. */
export const formats = {
  int32: { type: 'number', validate: (n: number): boolean => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 },
  int64: { type: 'number', validate: (n: number): boolean => Number.isSafeInteger(n) },
  'date-time': { type: 'string', validate: (s: string): boolean => !Number.isNaN(Date.parse(s)) && /^\d{4}-\d\d-\d\dT/.test(s) },
} as const;

/** Whether `data` is a value of the OpenAPI `type` (an empty type: any). */
function ofType(data: unknown, type: string): boolean {
  switch (type) {
    case 'object':
      return !!data && typeof data === 'object' && !Array.isArray(data);
    case 'array':
      return Array.isArray(data);
    case 'string':
      return typeof data === 'string';
    case 'integer':
      return Number.isInteger(data);
    default:
      return true;
  }
}

/**
 * Run one CEL twin on a value of the rule's schema `type`; a value of another type is not the
 * rule's to judge (the type error is reported), and a twin that throws counts as failing.
 */
export function celHolds(rule: string, data: unknown, type = ''): boolean {
  if (!ofType(data, type)) return true;
  const fn = celTwins[rule];
  if (!fn) return false;
  try {
    return fn(data);
  } catch {
    return false;
  }
}

/** Throws unless every rule has a twin (the generated validator calls it when loaded). */
export function requireTwins(rules: readonly string[]): void {
  for (const r of rules) {
    if (!celTwins[r]) throw new Error(`CEL rule has no TypeScript twin in core/cel-rules.ts: ${r}`);
  }
}
