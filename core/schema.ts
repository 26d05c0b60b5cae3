/**
 * The Route validator, compiled with ajv from the CRD's openAPIV3Schema (crds/route.yaml,
 * via core/generated/route-crd.ts) so that the CLI refuses offline what the API server
 * refuses: the same types, patterns, bounds and enums, the CEL rules through their
 * TypeScript twins (core/cel-rules.ts), and unknown fields refused as the API server's
 * strict field validation (kubectl's default) does, metadata included (ObjectMeta's fields,
 * with their types). Like the API server, nulls are dropped before validating (no field of
 * the Route schema is nullable): `via: null` is no via, `dev: null` a missing dev.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { celTwins } from './cel-rules.js';
import { routeCRD } from './generated/route-crd.js';

type Schema = Record<string, unknown>;

/** Deep copy of a structural schema with additionalProperties:false wherever fields are listed. */
function strictCopy(s: unknown): unknown {
  if (Array.isArray(s)) return s.map(strictCopy);
  if (!s || typeof s !== 'object') return s;
  const out: Schema = {};
  for (const [k, v] of Object.entries(s as Schema)) out[k] = strictCopy(v);
  if (out.type === 'object' && out.properties && out.additionalProperties === undefined) out.additionalProperties = false;
  return out;
}

/**
 * ObjectMeta as the API server decodes it for a custom resource: known fields with their
 * types; with strict field validation an unknown one (a `label:` typo) is an error.
 */
const STRING_MAP = { type: 'object', additionalProperties: { type: 'string' } };
const OBJECT_META: Schema = {
  type: 'object',
  properties: {
    name: { type: 'string' }, generateName: { type: 'string' }, namespace: { type: 'string' }, selfLink: { type: 'string' },
    uid: { type: 'string' }, resourceVersion: { type: 'string' }, generation: { type: 'integer' },
    creationTimestamp: { type: 'string' }, deletionTimestamp: { type: 'string' }, deletionGracePeriodSeconds: { type: 'integer' },
    labels: STRING_MAP, annotations: STRING_MAP,
    ownerReferences: { type: 'array', items: { type: 'object' } },
    finalizers: { type: 'array', items: { type: 'string' } },
    managedFields: { type: 'array', items: { type: 'object' } },
  },
};

/**
 * A deep copy without the object fields whose value is null, which is what the API server
 * does before validating a custom resource (fields that are not `nullable`). Nulls inside
 * lists are kept (they are wrong types there).
 */
export function dropNulls<T>(v: T): T {
  if (Array.isArray(v)) return v.map(dropNulls) as T;
  if (!v || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (x !== null) out[k] = dropNulls(x);
  return out as T;
}

/** The openAPIV3Schema of the served version. */
export function routeOpenAPISchema(): Schema {
  const v = routeCRD.spec.versions.find((x) => x.name === 'v1');
  if (!v) throw new Error('crds/route.yaml has no v1 version');
  return v.schema.openAPIV3Schema as unknown as Schema;
}

function buildValidator(): ValidateFunction {
  const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false, allowUnionTypes: true });
  for (const k of ['x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-preserve-unknown-fields']) ajv.addKeyword(k);
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
  ajv.addFormat('date-time', (s: string) => !Number.isNaN(Date.parse(s)) && /^\d{4}-\d\d-\d\dT/.test(s));
  ajv.addKeyword({
    keyword: 'x-kubernetes-validations',
    schemaType: 'array',
    errors: true,
    compile(rules: { rule: string; message?: string }[], parent: Schema) {
      // Like the API server, CEL rules only run on a value of the schema's type (a wrong
      // type is reported as such, not as a rule failure too).
      const typed = (data: unknown): boolean => {
        switch (parent.type) {
          case 'object': return !!data && typeof data === 'object' && !Array.isArray(data);
          case 'array': return Array.isArray(data);
          case 'string': return typeof data === 'string';
          case 'integer': return Number.isInteger(data);
          default: return true;
        }
      };
      const twins = rules.map((r) => {
        const fn = celTwins[r.rule];
        if (!fn) throw new Error(`CEL rule has no TypeScript twin in core/cel-rules.ts: ${r.rule}`);
        return { fn, r };
      });
      const validate = (data: unknown): boolean => {
        if (!typed(data)) return true;
        const errors: Partial<ErrorObject>[] = [];
        for (const { fn, r } of twins) {
          let ok: boolean;
          try { ok = fn(data); } catch { ok = false; }
          if (!ok) errors.push({ keyword: 'x-kubernetes-validations', message: r.message ?? `failed rule: ${r.rule}`, params: { rule: r.rule } });
        }
        (validate as unknown as { errors: Partial<ErrorObject>[] }).errors = errors;
        return errors.length === 0;
      };
      return validate;
    },
  });
  const schema = structuredClone(routeOpenAPISchema()) as Schema & { properties: Record<string, unknown> };
  schema.properties = { ...schema.properties, metadata: OBJECT_META };
  return ajv.compile(strictCopy(schema) as Schema);
}

let compiled: ValidateFunction | undefined;

/** One problem with a Route, with a Kubernetes-style field path such as spec.route[0].dst. */
export interface FieldError { path: string; message: string }

/** JSON pointer (/spec/route/0/dst) to a field path (spec.route[0].dst). */
export function fieldPath(pointer: string): string {
  let out = '';
  for (const seg of pointer.split('/').slice(1).map((x) => x.replace(/~1/g, '/').replace(/~0/g, '~'))) {
    out += /^\d+$/.test(seg) ? `[${seg}]` : out ? `.${seg}` : seg;
  }
  return out || '<root>';
}

function describe(e: ErrorObject): FieldError {
  let path = fieldPath(e.instancePath);
  let message = e.message ?? 'is invalid';
  if (e.keyword === 'additionalProperties') {
    const extra = (e.params as { additionalProperty: string }).additionalProperty;
    path = path === '<root>' ? extra : `${path}.${extra}`;
    message = 'unknown field';
  } else if (e.keyword === 'required') {
    const missing = (e.params as { missingProperty: string }).missingProperty;
    path = path === '<root>' ? missing : `${path}.${missing}`;
    message = 'Required value';
  } else if (e.keyword === 'enum') {
    message = `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
  } else if (path.endsWith('.dev') && (e.keyword === 'pattern' || e.keyword === 'maxLength')) {
    message = 'must be a Linux interface name: 1-15 printable ASCII characters, no "/", ":" or whitespace';
  } else if (e.keyword === 'pattern') {
    message = `must match ${(e.params as { pattern: string }).pattern}`;
  }
  return { path, message };
}

/** Validate a Route object (apiVersion/kind are checked by the caller); nulls are dropped first. */
export function validateRoute(obj: unknown): FieldError[] {
  compiled ??= buildValidator();
  if (compiled(dropNulls(obj))) return [];
  const seen = new Set<string>();
  const out: FieldError[] = [];
  for (const e of compiled.errors ?? []) {
    const d = describe(e);
    const k = `${d.path}: ${d.message}`;
    if (!seen.has(k)) { seen.add(k); out.push(d); }
  }
  return out;
}
