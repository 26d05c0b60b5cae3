// Symmetric return paths (issue 14) through core: resolve gathers `spec.symmetric` of every
// selecting Route into the plan (sorted, unique), the codec carries it last, signed and
// deterministic, and a plan without it encodes byte-identically to before. Table-driven.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { canonicalPlanJSON, decodePlan, encodePlan, planHash, planKeyFromSecret } from '../../core/plan-codec.js';
import { resolvePlan, type ResolveContext } from '../../core/resolve.js';
import type { Plan, Pod, Route, RouteSpec } from '../../core/types.js';
import { runCli } from '../util/cli.js';

const route = (name: string, spec: RouteSpec): Route => ({ apiVersion: 'k8s.ovn.org/v1', kind: 'Route', metadata: { name }, spec });
const POD: Pod = { kind: 'Pod', metadata: { namespace: 'default', name: 'web' }, spec: {} };
const ctx = (routes: Route[]): ResolveContext => ({
  routes,
  namespace: { metadata: { name: 'default' } },
  service: () => undefined,
  owners: [],
  mode: 'default',
});
const KEY = planKeyFromSecret(Buffer.alloc(32, 7));

t.test('resolve: the union of the selecting Routes, sorted', async (t) => {
  const cases: { name: string; routes: Route[]; symmetric?: string[]; skipped?: boolean; invalid?: string[] }[] = [
    { name: 'none asks', routes: [route('a', { route: [{ dst: '10.0.0.0/8', dev: 'eth1' }] })] },
    { name: 'one device', routes: [route('a', { symmetric: ['eth1'], route: [{ dst: '10.0.0.0/8', dev: 'eth1' }] })], symmetric: ['eth1'] },
    { name: 'symmetric alone makes a plan', routes: [route('a', { symmetric: ['eth1'] })], symmetric: ['eth1'] },
    { name: 'sorted', routes: [route('a', { symmetric: ['net2', 'eth1'] })], symmetric: ['eth1', 'net2'] },
    {
      name: 'two Routes add up, no duplicate',
      routes: [route('b', { symmetric: ['eth1', 'net3'] }), route('a', { symmetric: ['eth1'] })],
      symmetric: ['eth1', 'net3'],
    },
    {
      name: 'a not selecting Route does not count',
      routes: [route('a', { symmetric: ['eth1'] }), route('b', { symmetric: ['net9'], include: [{ namespaces: ['other'] }] })],
      symmetric: ['eth1'],
    },
    { name: 'an empty list is no plan', routes: [route('a', { symmetric: [] })], skipped: true },
    {
      name: 'a bad name is reported, the rest kept',
      routes: [route('a', { symmetric: ['..', 'eth1'] })],
      symmetric: ['eth1'],
      invalid: ['spec.symmetric[0]'],
    },
  ];
  for (const c of cases) {
    const r = resolvePlan(POD, ctx(c.routes));
    if (c.skipped) {
      t.equal(r.kind, 'skipped', `${c.name}: skipped`);
      continue;
    }
    if (r.kind !== 'plan') {
      t.fail(`${c.name}: expected a plan, got ${r.reason}`);
      continue;
    }
    t.same(r.plan.symmetric, c.symmetric, `${c.name}: symmetric`);
    t.equal('symmetric' in r.plan, c.symmetric !== undefined, `${c.name}: field present only when asked`);
    t.same(
      r.invalid.map((i) => i.field),
      c.invalid ?? [],
      `${c.name}: invalid`,
    );
  }
  // Input order does not matter.
  const a = route('a', { symmetric: ['net3', 'eth1'] });
  const b = route('b', { symmetric: ['eth2'] });
  const x = resolvePlan(POD, ctx([a, b]));
  const y = resolvePlan(POD, ctx([b, a]));
  t.equal(x.kind === 'plan' && canonicalPlanJSON(x.plan), y.kind === 'plan' && canonicalPlanJSON(y.plan), 'same plan in any order');
});

t.test('codec: symmetric last, signed; without it byte-identical to before', async (t) => {
  const base: Plan = { v: 1, routes: [{ dst: '10.0.0.0/8', dev: 'eth1', via: 'gateway' }], default: { dev: 'eth1', via: 'gateway' } };
  // The encoding of `base` before symmetric existed (fixed text: a change of it is a format break).
  const before = '{"v":1,"routes":[{"dst":"10.0.0.0/8","dev":"eth1","via":"gateway"}],"default":{"dev":"eth1","via":"gateway"}}';
  t.equal(encodePlan(base, { namespace: 'default' }), before, 'no symmetric: unchanged bytes');
  t.equal(planHash(base), planHash(JSON.parse(before) as Plan), 'same hash');
  const withSym: Plan = { symmetric: ['eth1', 'net2'], ...base };
  t.equal(
    encodePlan(withSym, { namespace: 'default' }),
    before.slice(0, -1) + ',"symmetric":["eth1","net2"]}',
    'symmetric goes last whatever the key order',
  );
  t.not(planHash(withSym), planHash(base), 'symmetric is part of the hash');
  const signed = encodePlan(withSym, { key: KEY, namespace: 'default' });
  const d = decodePlan(signed, { namespace: 'default', keys: [KEY], requireSignature: true });
  t.same(d.ok && d.plan.symmetric, ['eth1', 'net2'], 'decodes, signature verified');
  // The signature covers the field: dropping or changing it breaks it.
  for (const tampered of [signed.replace(',"symmetric":["eth1","net2"]', ''), signed.replace('"net2"', '"net3"')]) {
    const r = decodePlan(tampered, { namespace: 'default', keys: [KEY], requireSignature: true });
    t.same(r.ok ? 'ok' : r.code, 'bad-signature', 'tampered symmetric refused');
  }
  const bad: [string, unknown, RegExp][] = [
    ['unsorted', ['net2', 'eth1'], /symmetric\[1\]: "eth1" is out of order/],
    ['duplicate', ['eth1', 'eth1'], /symmetric\[1\]: "eth1" is a duplicate/],
    ['empty', [], /symmetric/],
    ['not a name', ['eth/1'], /symmetric\/0/],
    ['dot', ['.'], /symmetric\[0\]: "\." is not an interface name/],
    ['not a list', 'eth1', /symmetric/],
  ];
  for (const [name, sym, re] of bad) {
    t.throws(() => encodePlan({ ...base, symmetric: sym as string[] }, { namespace: 'default' }), re, `encode refuses ${name}`);
    const r = decodePlan(JSON.stringify({ ...(JSON.parse(before) as object), symmetric: sym }), {
      namespace: 'default',
      keys: [],
      requireSignature: false,
    });
    t.match(r.ok ? 'ok' : r.error, re, `decode refuses ${name}`);
  }
});

t.test('plan -f: the plan the CLI prints carries symmetric', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ovrt-sym-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'bundle.yaml');
  writeFileSync(
    file,
    [
      'apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {name: answer-on-eth1}\nspec: {symmetric: [net2, eth1]}',
      'apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: default}\nspec: {containers: [{name: c, image: busybox}]}',
    ].join('\n---\n'),
  );
  const r = runCli(['plan', '-f', file, '--all']);
  t.equal(r.code, 0, r.stderr);
  t.same(JSON.parse(r.stdout), { 'default/web': { v: 1, routes: [], symmetric: ['eth1', 'net2'] } });
});
