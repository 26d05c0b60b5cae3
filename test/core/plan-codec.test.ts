import { randomBytes } from 'node:crypto';
import t from 'tap';
import {
  MAX_PLAN_BYTES,
  MAX_PLAN_ROUTES,
  PlanEncodeError,
  decodePlan,
  encodePlan,
  parsePlanKey,
  planHash,
  planKeyFromSecret,
} from '../../core/plan-codec.js';
import type { Plan } from '../../core/types.js';

const key = planKeyFromSecret(randomBytes(32));
const other = planKeyFromSecret(randomBytes(32));
const plan: Plan = {
  v: 1,
  routes: [
    { dst: '10.86.69.17/32', dev: 'eth0' },
    { dst: '10.124.0.0/16', dev: 'eth1', via: '10.124.2.1' },
    { dst: 'fd00:10::/64', dev: 'eth1', via: 'fd00:10::1' },
  ],
  default: { dev: 'eth0', via: '169.254.1.1' },
};

t.test('round trip, signed and unsigned', async (t) => {
  const signed = encodePlan(plan, { key, namespace: 'default' });
  t.match(signed, /^\{"v":1,"routes":\[.*\],"default":\{.*\},"sig":"hmac-sha256:[0-9a-f]{12}:[A-Za-z0-9_-]{43}"\}$/);
  const d = decodePlan(signed, { namespace: 'default', keys: [key], requireSignature: true });
  t.same(d, { ok: true, plan, signed: true, keyId: key.id });
  const unsigned = encodePlan(plan, { namespace: 'default' });
  t.notMatch(unsigned, /sig/);
  t.same(decodePlan(unsigned, { namespace: 'default', keys: [], requireSignature: false }), { ok: true, plan, signed: false });
  t.equal(encodePlan({ v: 1, routes: [] }, { namespace: 'x' }), '{"v":1,"routes":[]}', 'empty plan');
  t.equal(planHash(plan), planHash(JSON.parse(signed)), 'hash ignores the signature');
  t.equal(encodePlan(JSON.parse(unsigned), { key, namespace: 'default' }), signed, 'encoding is canonical');
});

t.test('tampered, forged and misplaced plans are refused', async (t) => {
  const signed = encodePlan(plan, { key, namespace: 'default' });
  const opts = { namespace: 'default', keys: [key], requireSignature: true };
  const cases: [string, string, typeof opts, string][] = [
    ['route changed', signed.replace('"dev":"eth0"', '"dev":"eth1"'), opts, 'bad-signature'],
    ['route added', signed.replace('"routes":[', '"routes":[{"dst":"0.0.0.0/1","dev":"eth1"},'), opts, 'bad-signature'],
    ['default removed', signed.replace(/,"default":\{[^}]*\}/, ''), opts, 'bad-signature'],
    ['copied to another namespace', signed, { ...opts, namespace: 'victim' }, 'bad-signature'],
    ['signed by an unknown key', encodePlan(plan, { key: other, namespace: 'default' }), opts, 'unknown-key'],
    ['unsigned when a signature is required', encodePlan(plan, { namespace: 'default' }), opts, 'unsigned'],
    ['garbage signature', signed.replace(/"sig":"[^"]*"/, '"sig":"hmac-sha256:abc"'), opts, 'bad-signature'],
    ['kid of a real key, mac of another', signed.replace(/:[A-Za-z0-9_-]{43}"/, `:${'A'.repeat(43)}"`), opts, 'bad-signature'],
    ['not JSON', '{"v":1,', opts, 'malformed-json'],
    ['wrong version', signed.replace('"v":1', '"v":2'), opts, 'invalid'],
    ['extra field', signed.replace('"v":1', '"v":1,"x":1'), opts, 'invalid'],
    ['non-canonical dst', '{"v":1,"routes":[{"dst":"10.0.0.0/8 ","dev":"eth1"}]}', { ...opts, requireSignature: false }, 'invalid'],
    ['host bits', '{"v":1,"routes":[{"dst":"10.0.0.1/8","dev":"eth1"}]}', { ...opts, requireSignature: false }, 'invalid'],
    ['bad dev', '{"v":1,"routes":[{"dst":"10.0.0.0/8","dev":"eth/1"}]}', { ...opts, requireSignature: false }, 'invalid'],
    [
      'family mismatch',
      '{"v":1,"routes":[{"dst":"10.0.0.0/8","dev":"eth1","via":"fd00::1"}]}',
      { ...opts, requireSignature: false },
      'invalid',
    ],
    [
      'duplicate dst',
      '{"v":1,"routes":[{"dst":"10.0.0.0/8","dev":"eth1"},{"dst":"10.0.0.0/8","dev":"eth0"}]}',
      { ...opts, requireSignature: false },
      'invalid',
    ],
    ['oversized', `{"v":1,"routes":[],"pad":"${'x'.repeat(MAX_PLAN_BYTES)}"}`, opts, 'too-large'],
  ];
  for (const [name, value, o, code] of cases) {
    const d = decodePlan(value, o);
    t.equal(d.ok, false, `${name}: refused`);
    if (!d.ok) t.equal(d.code, code, `${name}: ${d.error}`);
  }
  const rotated = decodePlan(encodePlan(plan, { key: other, namespace: 'default' }), { ...opts, keys: [key, other] });
  t.equal(rotated.ok, true, 'any key of the ring verifies (rotation)');
});

t.test('bounds: never a truncated plan', async (t) => {
  const many = (n: number): Plan => ({
    v: 1,
    routes: Array.from({ length: n }, (_, i) => ({ dst: `10.${i >> 8}.${i & 255}.0/24`, dev: 'eth1' })),
  });
  t.doesNotThrow(() => encodePlan(many(MAX_PLAN_ROUTES), { key, namespace: 'default' }), `${MAX_PLAN_ROUTES} routes fit`);
  t.ok(Buffer.byteLength(encodePlan(many(MAX_PLAN_ROUTES), { key, namespace: 'default' })) <= MAX_PLAN_BYTES);
  t.throws(() => encodePlan(many(MAX_PLAN_ROUTES + 1), { namespace: 'default' }), PlanEncodeError);
  t.throws(() => encodePlan(many(MAX_PLAN_ROUTES + 1), { namespace: 'default' }), /513 routes; at most 512/);
  const long: Plan = {
    v: 1,
    routes: Array.from({ length: 500 }, (_, i) => ({
      dst: `fd00:${i.toString(16)}:1234:5678:9abc:def0:1234:0/112`,
      dev: 'eth1',
      via: `fd00:${i.toString(16)}:1234:5678:9abc:def0:1234:1`,
    })),
  };
  t.throws(() => encodePlan(long, { namespace: 'default' }), /bytes .*at most 32768 bytes/);
  t.throws(() => encodePlan({ v: 1, routes: [{ dst: '10.0.0.1/8', dev: 'eth1' }] }, { namespace: 'd' }), /not valid/, 'encoder checks too');
});

t.test('plan keys', async (t) => {
  const secret = randomBytes(32);
  t.equal(parsePlanKey(secret.toString('base64') + '\n').id, planKeyFromSecret(secret).id);
  t.equal(parsePlanKey(secret.toString('base64url')).id, planKeyFromSecret(secret).id);
  t.throws(() => parsePlanKey(randomBytes(16).toString('base64')), /too short: 16 bytes/);
  t.throws(() => parsePlanKey('not base64 !'), /not base64/);
});

t.test("the plan schema compiled at build time agrees with the codec's constants", async (t) => {
  const { readFileSync } = await import('node:fs');
  const { repoRoot } = await import('../util/fixtures.js');
  const { PLAN_VERSION } = await import('../../core/plan-codec.js');
  const schema = JSON.parse(readFileSync(`${repoRoot}/core/plan-schema.json`, 'utf8')) as {
    properties: { v: { const: number }; routes: { maxItems: number } };
  };
  t.equal(schema.properties.v.const, PLAN_VERSION, 'v');
  t.equal(schema.properties.routes.maxItems, MAX_PLAN_ROUTES, 'maxItems');
  t.match(
    decodePlan('{"v":1,"routes":[{"dst":"10.0.0.0/8","dev":"eth1","x":1}]}', { namespace: 'default', keys: [], requireSignature: false }),
    { ok: false, code: 'invalid', error: 'plan annotation /routes/0 must NOT have additional properties' },
  );
  t.match(decodePlan('{"v":1,"routes":[{"dst":"10.0.0.0/8","dev":"a/b"}]}', { namespace: 'default', keys: [], requireSignature: false }), {
    ok: false,
    code: 'invalid',
    error: /plan annotation \/routes\/0\/dev must match pattern/,
  });
});
