import t from 'tap';
import { celTwins } from '../../core/cel-rules.js';
import { routeCRD } from '../../core/generated/route-crd.js';
import { validateRoute } from '../../core/schema.js';
import { celRules } from '../../core/generated/route-validator.js';
import { requireTwins } from '../../core/schema-runtime.js';
import { parse } from 'yaml';
import { readFileSync } from 'node:fs';
import { fixture, routeCases } from '../util/fixtures.js';

t.test('the demo Route of the design document is accepted unchanged', async (t) => {
  const demo = parse(readFileSync(fixture('demo-route.yaml'), 'utf8'));
  t.same(validateRoute(demo), []);
});

t.test('good Routes are accepted', async (t) => {
  for (const c of routeCases('good-routes.yaml')) t.same(validateRoute(c.route), [], c.name);
});

t.test('bad Routes are refused with the message the API server gives', async (t) => {
  for (const c of routeCases('bad-routes.yaml')) {
    const errs = validateRoute(c.route);
    t.ok(errs.length > 0, `${c.name} refused (${c.why})`);
    const text = errs.map((e) => `${e.path}: ${e.message}`).join('\n');
    t.match(text, c.expectMessage ?? '', `${c.name}: ${text.split('\n')[0]}`);
  }
});

t.test('every CEL rule in the CRD has a TypeScript twin, and every twin a rule', async (t) => {
  const rules = new Set<string>();
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) return n.forEach(walk);
    if (!n || typeof n !== 'object') return;
    for (const [k, v] of Object.entries(n)) {
      if (k === 'x-kubernetes-validations') for (const r of v as { rule: string }[]) rules.add(r.rule);
      walk(v);
    }
  };
  walk(routeCRD);
  t.same([...rules].sort(), Object.keys(celTwins).sort());
  // The validator is generated at build time (scripts/build.mjs, ajv standalone): it carries
  // every rule of the CRD, and refuses to load when one has no twin.
  t.same([...celRules].sort(), [...rules].sort(), 'the generated validator checks every CEL rule of the CRD');
  t.throws(
    () => requireTwins([...celRules, 'self.size() > 99']),
    /CEL rule has no TypeScript twin in core\/cel-rules.ts: self.size\(\) > 99/,
    'a rule without a twin stops the validator from loading',
  );
});

t.test('unknown fields are refused like the API server strict field validation', async (t) => {
  const errs = validateRoute({ apiVersion: 'k8s.ovn.org/v1', kind: 'Route', metadata: { name: 'x' }, spec: { rout: [] } });
  t.same(errs, [{ path: 'spec.rout', message: 'unknown field; did you mean "route"?' }]);
  // "Did you mean" among the fields the schema lists at that place; none when nothing is close.
  const cases: [Record<string, unknown>, string, string][] = [
    [{ route: [{ dst: '10.0.0.0/8', dve: 'eth0' }] }, 'spec.route[0].dve', 'unknown field; did you mean "dev"?'],
    [{ svc: [{ namespace: 'a', nmae: 'b', dev: 'eth0' }] }, 'spec.svc[0].nmae', 'unknown field; did you mean "name"?'],
    [{ incldue: [] }, 'spec.incldue', 'unknown field; did you mean "include"?'],
    [{ include: [{ podselector: {} }] }, 'spec.include[0].podselector', 'unknown field; did you mean "podSelector"?'],
    [
      { defaultRoute: { dev: 'eth0', gateway: '1.2.3.4' } },
      'spec.defaultRoute.gateway',
      'unknown field (known fields: dev, via, src, metric, mtu, advmss)',
    ],
  ];
  for (const [spec, path, message] of cases) {
    const e = validateRoute({ apiVersion: 'k8s.ovn.org/v1', kind: 'Route', metadata: { name: 'x' }, spec }).find((x) => x.path === path);
    t.equal(e?.message, message, path);
  }
  t.same(validateRoute({ apiVersion: 'k8s.ovn.org/v1', kind: 'Route', metadata: { name: 'x' } }), [
    { path: 'spec', message: 'Required value' },
  ]);
});
