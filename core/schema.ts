/**
 * The Route validator, compiled with ajv from the CRD's openAPIV3Schema (crds/route.yaml) at
 * build time: scripts/build.mjs writes it as ajv standalone code to
 * core/generated/route-validator.ts (with additionalProperties:false wherever fields are
 * listed, and the CEL rules calling core/schema-runtime.ts), so that the CLI refuses offline what the API server
 * refuses: the same types, patterns, bounds and enums, the CEL rules through their
 * TypeScript twins (core/cel-rules.ts), and unknown fields refused as the API server's
 * strict field validation (kubectl's default) does, metadata included (ObjectMeta's fields,
 * with their types). Like the API server, nulls are dropped before validating (no field of
 * the Route schema is nullable): `via: null` is no via, `dev: null` a missing dev.
 */
import type { ErrorObject } from 'ajv';
import { routeCRD } from './generated/route-crd.js';
import { validate as compiled } from './generated/route-validator.js';
import { closest } from './suggest.js';

type Schema = Record<string, unknown>;

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

/** One problem with a Route, with a Kubernetes-style field path such as spec.route[0].dst. */
export interface FieldError {
  path: string;
  message: string;
}

/** JSON pointer (/spec/route/0/dst) to a field path (spec.route[0].dst). */
export function fieldPath(pointer: string): string {
  let out = '';
  for (const seg of pointer
    .split('/')
    .slice(1)
    .map((x) => x.replace(/~1/g, '/').replace(/~0/g, '~'))) {
    out += /^\d+$/.test(seg) ? `[${seg}]` : out ? `.${seg}` : seg;
  }
  return out || '<root>';
}

/** OpenAPI schema properties at a JSON pointer of a Route (empty when the schema lists none there). */
export function knownFields(pointer: string): string[] {
  let node: Schema | undefined = routeOpenAPISchema();
  for (const seg of pointer.split('/').slice(1)) {
    if (!node) return [];
    if (/^\d+$/.test(seg) && node.items) node = node.items as Schema;
    else node = (node.properties as Record<string, Schema> | undefined)?.[seg.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  if (!node) return [];
  if (pointer === '' || pointer === '/')
    return ['apiVersion', 'kind', 'metadata', 'spec', 'status']
      .filter((k) => k in ((node!.properties as object | undefined) ?? {}))
      .concat(
        Object.keys((node.properties as object | undefined) ?? {}).filter(
          (k) => !['apiVersion', 'kind', 'metadata', 'spec', 'status'].includes(k),
        ),
      );
  return Object.keys((node.properties as object | undefined) ?? {});
}

function describe(e: ErrorObject): FieldError {
  let path = fieldPath(e.instancePath);
  let message = e.message ?? 'is invalid';
  if (e.keyword === 'additionalProperties') {
    const extra = (e.params as { additionalProperty: string }).additionalProperty;
    const known = knownFields(e.instancePath);
    const guess = closest(extra, known);
    path = path === '<root>' ? extra : `${path}.${extra}`;
    message = `unknown field${guess ? `; did you mean "${guess}"?` : known.length ? ` (known fields: ${known.join(', ')})` : ''}`;
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
  if (compiled(dropNulls(obj))) return [];
  const seen = new Set<string>();
  const out: FieldError[] = [];
  for (const e of (compiled.errors ?? []) as ErrorObject[]) {
    const d = describe(e);
    const k = `${d.path}: ${d.message}`;
    if (!seen.has(k)) {
      seen.add(k);
      out.push(d);
    }
  }
  return out;
}
