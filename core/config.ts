/**
 * The design document's configuration-file format (cr-config.json / cr-config.yaml): a
 * top-level list of entries, converted into a Route object.
 *   {"svc": "default/nginx1", "dev": "eth0"}                  pin a Service's ClusterIPs
 *   {"route": "172.16.0.0/16 ", "dev": "eth1", "via": "..."}  pin a CIDR (input is trimmed)
 *   {"route": "default", "dev": "eth0", "via": "169.254.1.1"} replace the default route
 * Any entry may also set the route attributes "src", "metric", "mtu" and "advmss"
 * (docs/routing.md), e.g. {"route": "172.16.0.0/16", "dev": "eth1", "mtu": 1400}.
 * A full Route object is accepted too and normalised. Errors name the file, the entry (index
 * and line), the field and what was expected.
 */
import { formatCIDR, formatIP, parseCIDR, parseIP } from './ip.js';
import { dropNulls, validateRoute } from './schema.js';
import { closest } from './suggest.js';
import { GATEWAY_VIA, type CidrRule, type DefaultRouteRule, type Route, type RouteAttrs, type SvcRule } from './types.js';
import { InputFileError, lineOf, parseDocs, type ParsedDoc } from './yaml-docs.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const ENTRY_KEYS = new Set(['svc', 'route', 'dev', 'via', 'src', 'metric', 'mtu', 'advmss']);

/** A DNS-1123 name from a file name: "cr-config.yaml" -> "cr-config". */
export function nameFromFile(file: string): string {
  const base = file
    .replace(/^.*\//, '')
    .replace(/\.(ya?ml|json)$/i, '')
    .toLowerCase();
  const n = base
    .replace(/[^a-z0-9.-]+/g, '-')
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '')
    .slice(0, 253);
  return n || 'route';
}

interface Where {
  file: string;
  index: number;
  line: number | undefined;
}
const at = (w: Where) => `${w.file}: entry ${w.index}${w.line ? ` (line ${w.line})` : ''}`;
const fail = (w: Where, field: string, msg: string): never => {
  throw new InputFileError(`${at(w)}: field "${field}": ${msg}`);
};

function str(entry: Record<string, unknown>, key: string, w: Where, expected: string): string | undefined {
  const v = entry[key];
  // null is absent, as the API server treats a null field of a Route.
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') fail(w, key, `expected ${expected} as a string, got ${JSON.stringify(v)}`);
  return (v as string).trim();
}

function viaOf(entry: Record<string, unknown>, w: Where): string | undefined {
  const via = str(entry, 'via', w, 'a gateway IP address');
  if (via === undefined) return undefined;
  if (via === GATEWAY_VIA) return via;
  const p = parseIP(via);
  if (!p.ok) fail(w, 'via', `expected a gateway IP address, or "gateway" for the gateway of dev on each pod: ${p.error}`);
  return formatIP((p as { value: Parameters<typeof formatIP>[0] }).value);
}

/**
 * The route attributes of an entry: src (an IP, trimmed and made canonical) and the numeric
 * metric/mtu/advmss (integers; a string of digits is accepted, trimmed, since hand-written
 * files often quote numbers). Ranges are checked by the Route validator afterwards.
 */
function attrsOf(entry: Record<string, unknown>, w: Where): RouteAttrs {
  const out: RouteAttrs = {};
  const src = str(entry, 'src', w, "a source IP address (one of the pod's own addresses on dev)");
  if (src !== undefined) {
    const p = parseIP(src);
    if (!p.ok) fail(w, 'src', `expected a source IP address such as 10.124.2.5: ${p.error}`);
    out.src = formatIP((p as { value: Parameters<typeof formatIP>[0] }).value);
  }
  for (const k of ['metric', 'mtu', 'advmss'] as const) {
    const v = entry[k];
    if (v === undefined || v === null) continue;
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d{1,10}\s*$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n)) fail(w, k, `expected a whole number, got ${JSON.stringify(v)}`);
    out[k] = n;
  }
  return out;
}

/** Convert one parsed config list into a Route; `lineFor(i)` gives entry lines. */
export function entriesToRoute(entries: unknown[], file: string, name: string, lineFor: (i: number) => number | undefined): Route {
  const spec: { route?: CidrRule[]; svc?: SvcRule[]; defaultRoute?: DefaultRouteRule } = {};
  const srcMap = new Map<string, Where>(); // spec path -> entry, to map schema errors back
  entries.forEach((raw, index) => {
    const w: Where = { file, index, line: lineFor(index) };
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
      throw new InputFileError(
        `${at(w)}: expected an object such as {"svc": "default/nginx1", "dev": "eth0"} or {"route": "172.16.0.0/16", "dev": "eth1"}, got ${JSON.stringify(raw)}`,
      );
    }
    const e = raw as Record<string, unknown>;
    for (const k of Object.keys(e)) {
      if (ENTRY_KEYS.has(k)) continue;
      const guess = closest(k.toLowerCase(), [...ENTRY_KEYS]);
      fail(
        w,
        k,
        `unknown field${guess ? `; did you mean "${guess}"?` : ''}; an entry has "svc" or "route", "dev", and optionally "via", "src", "metric", "mtu" and "advmss"`,
      );
    }
    const dev = str(e, 'dev', w, 'an interface name such as eth0');
    if (!dev) fail(w, 'dev', 'required: the interface name inside the pod, such as eth0 or eth1');
    const via = viaOf(e, w);
    const attrs = attrsOf(e, w);
    const svc = str(e, 'svc', w, '"<namespace>/<name>"');
    const dst = str(e, 'route', w, 'a CIDR such as 172.16.0.0/16, or "default"');
    if ((svc === undefined) === (dst === undefined))
      fail(w, svc === undefined ? 'svc' : 'route', 'an entry has exactly one of "svc" and "route"');
    if (svc !== undefined) {
      const m = /^([^/\s]+)\/([^/\s]+)$/.exec(svc);
      if (!m) fail(w, 'svc', `expected "<namespace>/<name>", got ${JSON.stringify(svc)}`);
      const [, ns, n] = m!;
      if (!DNS_LABEL.test(ns!) || ns!.length > 63)
        fail(w, 'svc', `namespace ${JSON.stringify(ns)} is not a valid namespace name (lowercase letters, digits and "-", at most 63)`);
      if (!/^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(n!) || n!.length > 63)
        fail(
          w,
          'svc',
          `name ${JSON.stringify(n)} is not a valid Service name (lowercase letters, digits and "-", starting with a letter, at most 63)`,
        );
      spec.svc ??= [];
      srcMap.set(`spec.svc[${spec.svc.length}]`, w);
      spec.svc.push({ namespace: ns!, name: n!, dev: dev!, ...(via ? { via } : {}), ...attrs });
    } else if (dst === 'default') {
      if (spec.defaultRoute) fail(w, 'route', 'a second "default" entry: only one default route can be set');
      srcMap.set('spec.defaultRoute', w);
      spec.defaultRoute = { dev: dev!, ...(via ? { via } : {}), ...attrs };
    } else {
      const c = parseCIDR(dst!);
      if (!c.ok) fail(w, 'route', `expected a CIDR such as 172.16.0.0/16 (or "default"): ${c.error}`);
      const cidr = (c as { value: Parameters<typeof formatCIDR>[0] }).value;
      if (cidr.bits === 0) fail(w, 'route', 'a /0 route is the default route: write {"route": "default", ...}');
      spec.route ??= [];
      srcMap.set(`spec.route[${spec.route.length}]`, w);
      spec.route.push({ dst: formatCIDR(cidr), dev: dev!, ...(via ? { via } : {}), ...attrs });
    }
  });
  const route: Route = { apiVersion: 'k8s.ovn.org/v1', kind: 'Route', metadata: { name }, spec };
  for (const err of validateRoute(route)) {
    const m = /^(spec\.(?:route|svc)\[\d+\]|spec\.defaultRoute)(?:\.(\w+))?/.exec(err.path);
    const w = m ? srcMap.get(m[1]!) : undefined;
    const named = /^(via|src|mtu)\b/.exec(err.message)?.[1];
    if (w) fail(w, m![2] ?? named ?? (/\bdst\b/.test(err.message) ? 'route' : 'entry'), err.message);
    throw new InputFileError(`${file}: ${err.path}: ${err.message}`);
  }
  return route;
}

const SERVER_FIELDS = ['uid', 'resourceVersion', 'creationTimestamp', 'generation', 'managedFields', 'selfLink'];

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/**
 * Normalise a full Route object: nulls dropped (as the API server does), trimmed, canonical
 * CIDRs/IPs, server-set fields and status dropped. Only values of the right shape are
 * touched; anything else is left for the validator, whose errors name the file, the Route
 * and the field (with its line).
 */
export function normaliseRoute(obj: Record<string, unknown>, file: string, d: ParsedDoc): Route {
  const r = dropNulls(obj) as Route & Record<string, unknown>;
  const what = `Route ${JSON.stringify(isObject(r.metadata) && typeof r.metadata.name === 'string' ? r.metadata.name : '<unnamed>')}`;
  if (r.apiVersion !== 'k8s.ovn.org/v1')
    throw new InputFileError(`${file}: apiVersion: expected "k8s.ovn.org/v1", got ${JSON.stringify(r.apiVersion)} (${what})`);
  if (isObject(r.metadata)) for (const f of SERVER_FIELDS) delete r.metadata[f];
  delete r.status;
  const canon = (v: unknown, parse: typeof parseCIDR | typeof parseIP, fmt: (x: never) => string): unknown => {
    if (typeof v !== 'string') return v;
    const p = parse(v);
    return p.ok ? fmt(p.value as never) : v; // leave invalid text for the validator to report
  };
  const rules = (v: unknown): Record<string, unknown>[] => (Array.isArray(v) ? v.filter(isObject) : []);
  const spec: Record<string, unknown> = isObject(r.spec) ? r.spec : {};
  for (const rule of rules(spec.route)) rule.dst = canon(rule.dst, parseCIDR, formatCIDR);
  for (const rule of [...rules(spec.route), ...rules(spec.svc), ...(isObject(spec.defaultRoute) ? [spec.defaultRoute] : [])]) {
    if (rule.via !== undefined) rule.via = canon(rule.via, parseIP, formatIP);
    if (rule.src !== undefined) rule.src = canon(rule.src, parseIP, formatIP);
    if (typeof rule.dev === 'string') rule.dev = rule.dev.trim();
  }
  const errs = validateRoute(r);
  if (errs.length) {
    throw new InputFileError(
      errs
        .map((e) => {
          const line = lineOf(
            d,
            e.path
              .split(/\.|\[|\]\.?/)
              .filter(Boolean)
              .map((s) => (/^\d+$/.test(s) ? Number(s) : s)),
          );
          return `${file}: ${e.path}${line ? ` (line ${line})` : ''}: ${e.message} (${what})`;
        })
        .join('\n'),
    );
  }
  return r;
}

/** Convert a config file's text (list of entries, or a Route object) into a Route. */
export function convertConfig(text: string, file: string, opts: { name?: string } = {}): Route {
  const docs = parseDocs(text, file);
  if (docs.length !== 1) throw new InputFileError(`${file}: expected one document (a list of entries or a Route), found ${docs.length}`);
  const d = docs[0]!;
  if (Array.isArray(d.value)) {
    const name = opts.name ?? nameFromFile(file);
    return entriesToRoute(d.value, file, name, (i) => lineOf(d, [i]));
  }
  if (d.value && typeof d.value === 'object' && (d.value as { kind?: unknown }).kind === 'Route') {
    const r = normaliseRoute(d.value as Record<string, unknown>, file, d);
    if (opts.name) r.metadata = { ...r.metadata, name: opts.name };
    return r;
  }
  throw new InputFileError(
    `${file}: expected a list of entries (e.g. [{"svc": "default/nginx1", "dev": "eth0"}]) or a Route object (kind: Route)`,
  );
}
