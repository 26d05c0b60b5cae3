/**
 * The plan annotation codec: `routes.k8s.ovn.org/plan` on a pod.
 *
 * Value (JSON, canonical key order, v=1):
 *   {"v":1,"routes":[{"dst":"10.86.69.17/32","dev":"eth0"},...],"default":{"dev":"eth0","via":"169.254.1.1"},
 *    "sig":"hmac-sha256:<kid>:<base64url>"}
 * A route (and the default) may carry the attributes src, metric, mtu, advmss after
 * dst/dev/via, in that order (docs/routing.md). An agent older than them refuses such a plan
 * as invalid (unknown field) rather than applying it without them. `via` may be "gateway"
 * (GATEWAY_VIA): the gateway of dev, which the agent finds in the pod's netns; the plan stays
 * the same on every node, so it is signed and deterministic like any other.
 * `"symmetric":["eth1"]` (last, sorted, unique; absent when empty) lists the devices with
 * symmetric return paths (a table per device plus `ip rule from` its addresses). An agent
 * older than it refuses such a plan (unknown field) rather than applying it without them.
 *
 * Authentication: HMAC-SHA256 keyed by the cluster's plan key over
 *   "ovnkube-route/plan/v1\n" + <pod namespace> + "\n" + <canonical JSON without "sig">.
 * Any pod author can write any annotation on their own pod, so the injector verifies the
 * signature against the pod's real namespace and refuses what the system did not write.
 * The namespace (not the name) is bound because pods made with generateName have no name
 * at admission time. `kid` (first 12 hex chars of sha256(key)) lets several keys be
 * accepted during a rotation.
 *
 * Bounds: at most MAX_PLAN_ROUTES routes and MAX_PLAN_BYTES bytes encoded, well under the
 * 256 KiB that all of a pod's annotations together may use. Past either, encoding fails
 * with a clear error; a plan is never truncated.
 */
import { createHash, createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { FifoMemo } from './fifo-memo.js';
import { validate as validatePlan } from './generated/plan-validator.js';
import { formatCIDR, formatIP, parseCIDR, parseIP } from './ip.js';
import { GATEWAY_VIA, ROUTE_ATTR_KEYS, type Plan, type PlanRoute, type RouteAttrs } from './types.js';

export const PLAN_VERSION = 1 as const;
export const MAX_PLAN_ROUTES = 512;
export const MAX_PLAN_BYTES = 32 * 1024;
const SIG_PREFIX = 'hmac-sha256';
const DOMAIN = 'ovnkube-route/plan/v1';

/** A plan-signing key; the first key of a ring signs, every key of it verifies. */
export interface PlanKey {
  id: string;
  secret: Buffer;
}

/** Build a key from its secret bytes (at least 32). */
export function planKeyFromSecret(secret: Buffer): PlanKey {
  if (secret.length < 32) throw new Error(`plan key too short: ${secret.length} bytes, expected at least 32`);
  return { id: createHash('sha256').update(secret).digest('hex').slice(0, 12), secret };
}

/** Parse a key file's text: base64 (or base64url) of at least 32 random bytes, whitespace ignored. */
export function parsePlanKey(text: string): PlanKey {
  const t = text.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(t)) throw new Error('plan key is not base64 text');
  return planKeyFromSecret(Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64'));
}

// The shape check is core/plan-schema.json, compiled at build time (scripts/build.mjs, ajv
// standalone): loading this module costs no ajv and no schema compile.
const validatePlanShape = validatePlan;

/** The attributes of a route in canonical order (src, metric, mtu, advmss), absent ones left out. */
function orderedAttrs(r: RouteAttrs): RouteAttrs {
  const out: RouteAttrs = {};
  for (const k of ROUTE_ATTR_KEYS) if (r[k] !== undefined) (out as Record<string, unknown>)[k] = r[k];
  return out;
}

function orderedRoute(r: PlanRoute): PlanRoute {
  return { dst: r.dst, dev: r.dev, ...(r.via === undefined ? {} : { via: r.via }), ...orderedAttrs(r) };
}

/**
 * Canonical JSON of a plan (fixed key order, no signature). A plan without attributes
 * encodes exactly as before they existed, so its hash and signature are unchanged.
 */
export function canonicalPlanJSON(plan: Plan): string {
  return JSON.stringify(canonicalBody(plan));
}

/** The plan as a fresh object in canonical key order (what canonicalPlanJSON stringifies). */
function canonicalBody(plan: Plan): Plan {
  const body: Plan = { v: plan.v, routes: plan.routes.map(orderedRoute) };
  if (plan.default)
    body.default = {
      dev: plan.default.dev,
      ...(plan.default.via === undefined ? {} : { via: plan.default.via }),
      ...orderedAttrs(plan.default),
    };
  // Last, and only when present: a plan without it encodes exactly as before it existed.
  if (plan.symmetric !== undefined) body.symmetric = [...plan.symmetric];
  return body;
}

/** Short content hash of a plan (ignores the signature); used to report what was applied. */
export function planHash(plan: Plan): string {
  return frozenHashes.get(plan) ?? createHash('sha256').update(canonicalPlanJSON(plan)).digest('hex').slice(0, 16);
}

/** The hash of each plan decodeSignedPlan deep-froze (it cannot change), computed once per plan object. */
const frozenHashes = new WeakMap<Plan, string>();

/**
 * The KeyObject of each secret, made once: createHmac() with a Buffer imports the key anew on
 * every call, which cost 5-6x the HMAC itself (11-14 µs against 2 µs per plan; the webhook
 * and the controller sign or verify one plan per pod they look at).
 */
const keyObjects = new WeakMap<Buffer, KeyObject>();

/**
 * The last MACs computed, per secret: every pod a Route reaches usually has the same plan in
 * the same namespace, so a Route edit over N pods signs (and the injectors verify) the same
 * message N times. Bounded (cleared when full); the MAC is a pure function of its inputs.
 */
const macMemo = new WeakMap<Buffer, Map<string, string>>();
const MAC_MEMO_SIZE = 1024;

function mac(key: PlanKey, namespace: string, canonical: string): string {
  let memo = macMemo.get(key.secret);
  if (!memo) macMemo.set(key.secret, (memo = new Map()));
  const message = `${DOMAIN}\n${namespace}\n${canonical}`;
  let m = memo.get(message);
  if (m === undefined) {
    let k = keyObjects.get(key.secret);
    if (!k) keyObjects.set(key.secret, (k = createSecretKey(key.secret)));
    m = createHmac('sha256', k).update(message).digest('base64url');
    if (memo.size >= MAC_MEMO_SIZE) memo.clear();
    memo.set(message, m);
  }
  return m;
}

/** Error thrown when a plan cannot be encoded (too large, not canonical). */
export class PlanEncodeError extends Error {
  override name = 'PlanEncodeError';
}

/**
 * Encode a plan as the annotation value, signed for `namespace` when a key is given.
 * Throws PlanEncodeError past the bounds.
 */
export function encodePlan(plan: Plan, opts: { key?: PlanKey; namespace: string }): string {
  if (plan.routes.length > MAX_PLAN_ROUTES) {
    throw new PlanEncodeError(`plan has ${plan.routes.length} routes; at most ${MAX_PLAN_ROUTES} are allowed`);
  }
  const body = canonicalBody(plan);
  if (!validatePlanShape(body)) {
    const err = validatePlanShape.errors?.[0];
    throw new PlanEncodeError(`plan is not valid: ${err?.instancePath || '/'} ${err?.message ?? 'is invalid'}`);
  }
  const canonical = JSON.stringify(body);
  const semantic = checkSemantics(body);
  if (semantic) throw new PlanEncodeError(`plan is not valid: ${semantic}`);
  const value = opts.key
    ? `${canonical.slice(0, -1)},"sig":"${SIG_PREFIX}:${opts.key.id}:${mac(opts.key, opts.namespace, canonical)}"}`
    : canonical;
  const size = Buffer.byteLength(value);
  if (size > MAX_PLAN_BYTES) {
    throw new PlanEncodeError(`encoded plan is ${size} bytes (${plan.routes.length} routes); at most ${MAX_PLAN_BYTES} bytes are allowed`);
  }
  return value;
}

export type DecodeErrorCode = 'too-large' | 'malformed-json' | 'invalid' | 'unsigned' | 'unknown-key' | 'bad-signature';
export type DecodeResult = { ok: true; plan: Plan; signed: boolean; keyId?: string } | { ok: false; code: DecodeErrorCode; error: string };

export interface DecodeOptions {
  namespace: string;
  /** Keys accepted for verification. */
  keys: PlanKey[];
  /** When true (the injector's default), a plan without a signature is refused. */
  requireSignature: boolean;
}

function checkSemantics(p: Plan): string | null {
  const seen = new Set<string>();
  for (const [i, r] of p.routes.entries()) {
    const c = parseCIDR(r.dst);
    if (!c.ok) return `routes[${i}].dst: ${c.error}`;
    if (formatCIDR(c.value) !== r.dst) return `routes[${i}].dst: "${r.dst}" is not canonical (expected "${formatCIDR(c.value)}")`;
    if (seen.has(r.dst)) return `routes[${i}].dst: duplicate destination ${r.dst}`;
    seen.add(r.dst);
    if (r.via !== undefined && r.via !== GATEWAY_VIA) {
      const v = parseIP(r.via);
      if (!v.ok) return `routes[${i}].via: ${v.error}`;
      if (formatIP(v.value) !== r.via) return `routes[${i}].via: "${r.via}" is not canonical`;
      if (v.value.family !== c.value.family)
        return `routes[${i}].via: ${r.via} is IPv${v.value.family} but dst ${r.dst} is IPv${c.value.family}`;
    }
    const a = checkAttrs(r, c.value.family, `routes[${i}]`);
    if (a) return a;
  }
  if (p.symmetric !== undefined) {
    for (const [i, d] of p.symmetric.entries()) {
      if (d === '.' || d === '..') return `symmetric[${i}]: "${d}" is not an interface name`;
      if (i > 0 && p.symmetric[i - 1]! >= d)
        return `symmetric[${i}]: "${d}" is ${p.symmetric[i - 1] === d ? 'a duplicate' : 'out of order'} (devices are sorted and unique)`;
    }
  }
  if (p.default) {
    let family: 4 | 6 | undefined;
    if (p.default.via !== undefined && p.default.via !== GATEWAY_VIA) {
      const v = parseIP(p.default.via);
      if (!v.ok) return `default.via: ${v.error}`;
      if (formatIP(v.value) !== p.default.via) return `default.via: "${p.default.via}" is not canonical`;
      family = v.value.family;
    }
    if (family === undefined && p.default.src !== undefined) {
      const s = parseIP(p.default.src);
      if (s.ok) family = s.value.family;
    }
    const a = checkAttrs(p.default, family ?? 4, 'default');
    if (a) return a;
  }
  return null;
}

/** src canonical and of the route's family; an IPv6 route's mtu at least 1280. */
function checkAttrs(r: RouteAttrs, family: 4 | 6, where: string): string | null {
  if (r.src !== undefined) {
    const s = parseIP(r.src);
    if (!s.ok) return `${where}.src: ${s.error}`;
    if (formatIP(s.value) !== r.src) return `${where}.src: "${r.src}" is not canonical`;
    if (s.value.family !== family) return `${where}.src: ${r.src} is IPv${s.value.family} but the route is IPv${family}`;
  }
  if (family === 6 && r.mtu !== undefined && r.mtu < 1280) return `${where}.mtu: ${r.mtu} is below IPv6's minimum of 1280`;
  return null;
}

/** Decode and verify an annotation value. Never throws. */
export function decodePlan(value: string, opts: DecodeOptions): DecodeResult {
  if (Buffer.byteLength(value) > MAX_PLAN_BYTES) {
    return {
      ok: false,
      code: 'too-large',
      error: `plan annotation is ${Buffer.byteLength(value)} bytes; at most ${MAX_PLAN_BYTES} are allowed`,
    };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(value);
  } catch (e) {
    return { ok: false, code: 'malformed-json', error: `plan annotation is not JSON: ${(e as Error).message}` };
  }
  if (!validatePlanShape(raw)) {
    const err = validatePlanShape.errors?.[0];
    return { ok: false, code: 'invalid', error: `plan annotation ${err?.instancePath || '/'} ${err?.message ?? 'is invalid'}` };
  }
  const { sig, ...rest } = raw as Plan & { sig?: string };
  const plan = rest as Plan;
  const semantic = checkSemantics(plan);
  if (semantic) return { ok: false, code: 'invalid', error: `plan annotation: ${semantic}` };
  if (sig === undefined) {
    if (opts.requireSignature) return { ok: false, code: 'unsigned', error: 'plan annotation carries no signature' };
    return { ok: true, plan, signed: false };
  }
  const m = /^hmac-sha256:([0-9a-f]{12}):([A-Za-z0-9_-]{43})$/.exec(sig);
  if (!m) return { ok: false, code: 'bad-signature', error: 'plan signature is not of the form hmac-sha256:<kid>:<mac>' };
  const key = opts.keys.find((k) => k.id === m[1]);
  if (!key) return { ok: false, code: 'unknown-key', error: `plan is signed with key ${m[1]}, which is not one of the accepted keys` };
  const expected = Buffer.from(mac(key, opts.namespace, canonicalPlanJSON(plan)), 'base64url');
  const got = Buffer.from(m[2]!, 'base64url');
  if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
    return { ok: false, code: 'bad-signature', error: `plan signature does not verify for namespace "${opts.namespace}"` };
  }
  return { ok: true, plan, signed: true, keyId: key.id };
}

/**
 * decodePlan of a plan that must be signed (requireSignature), remembered by key ring, then by
 * namespace and value. decodePlan is pure, and the same plan is asked about again and again:
 * the injector on every update of a pod, the controller for each pod it patches, and the pods
 * of one workload carry the very same value. A new ring (keys reloaded) is a new map. Bounded:
 * the oldest entries go first. The plans are frozen: one object is shared by every caller.
 */
export function decodeSignedPlan(value: string, namespace: string, keys: readonly PlanKey[]): DecodeResult {
  let byValue = signedDecisions.get(keys);
  if (!byValue) signedDecisions.set(keys, (byValue = new FifoMemo(SIGNED_DECISIONS_MAX)));
  const k = `${namespace}\n${value}`;
  const hit = byValue.get(k);
  if (hit) return hit;
  const d = decodePlan(value, { namespace, keys: [...keys], requireSignature: true });
  if (d.ok) {
    deepFreeze(d.plan);
    frozenHashes.set(d.plan, planHash(d.plan));
  }
  byValue.set(k, d);
  return d;
}

const signedDecisions = new WeakMap<readonly PlanKey[], FifoMemo<DecodeResult>>();
const SIGNED_DECISIONS_MAX = 4096;

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/**
 * What a plan annotation says, without verifying its signature (for display: explain, plan
 * --all, routes from the agent's report). Never use the result to apply routes.
 */
export function peekPlan(value: string): DecodeResult {
  let raw: unknown;
  try {
    raw = JSON.parse(value);
  } catch (e) {
    return { ok: false, code: 'malformed-json', error: `plan annotation is not JSON: ${(e as Error).message}` };
  }
  if (raw && typeof raw === 'object' && !Array.isArray(raw)) {
    const { sig: _sig, ...rest } = raw as Record<string, unknown>;
    return decodePlan(JSON.stringify(rest), { namespace: '', keys: [], requireSignature: false });
  }
  return decodePlan(value, { namespace: '', keys: [], requireSignature: false });
}
