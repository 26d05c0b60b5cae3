// The Route CRD against a real kube-apiserver: it installs, the design document's demo Route
// is accepted unchanged, the shared good cases are accepted and the shared bad cases are
// refused with the message the offline validator also gives (test/fixtures/*-routes.yaml).
import t from 'tap';
import { withControlPlane } from '../cluster/tap.js';
import { applyManifests, kubeRequest, loadYamlDocuments, waitForCRDEstablished } from '../cluster/k8s.js';
import { fixture, repoRoot, routeCases } from '../util/fixtures.js';
import { join } from 'node:path';

const ROUTES = '/apis/k8s.ovn.org/v1/routes';
// Strict: a field the schema does not know is an error, not silently pruned, so a
// fixture typo cannot make a "good" case pass for the wrong reason.
const STRICT = { fieldValidation: 'Strict' };

const cp = await withControlPlane(t);
if (cp) {
  const { kc } = cp;

  await t.test('crds/route.yaml installs and becomes Established', async (t) => {
    const crds = loadYamlDocuments(join(repoRoot, 'crds', 'route.yaml'));
    t.equal(crds.length, 1, 'one CRD in crds/route.yaml');
    const results = await applyManifests(kc, crds);
    for (const r of results) t.ok(r.ok, `${r.object} applied`, { status: r.status, message: r.message });
    await waitForCRDEstablished(kc, 'routes.k8s.ovn.org');
    const res = await kubeRequest(kc, 'GET', ROUTES);
    t.equal(res.status, 200, 'routes are served', { body: res.body });
  });

  await t.test('the demo Route of the design document is accepted unchanged', async (t) => {
    const [demo] = loadYamlDocuments(fixture('demo-route.yaml'));
    if (!demo) throw new Error('test/fixtures/demo-route.yaml holds no object');
    const created = await kubeRequest(kc, 'POST', ROUTES, { body: demo, query: STRICT });
    t.equal(created.status, 201, 'created', { message: created.body?.message });
    t.same(created.body?.metadata?.name, 'demo');
    // The only change the server makes is the schema default priority: 0.
    t.same(created.body?.spec, { ...(demo.spec as object), priority: 0 }, 'spec stored as given (plus the default priority)');
    t.same(created.body?.spec?.feature_gate, {}, 'the empty feature_gate map is kept, not pruned');
    // status is a subresource: set it the way the controller will, and read it back.
    const withStatus = { ...created.body, status: demo.status };
    const st = await kubeRequest(kc, 'PUT', `${ROUTES}/demo/status`, { body: withStatus, query: STRICT });
    t.equal(st.status, 200, 'status subresource accepts the demo status', { message: st.body?.message });
    t.same(st.body?.status, { status: '' });
    const got = await kubeRequest(kc, 'GET', `${ROUTES}/demo`);
    t.same(got.body?.spec, created.body?.spec, 'read back unchanged');
  });

  await t.test('good Routes are accepted', async (t) => {
    const cases = routeCases('good-routes.yaml');
    t.ok(cases.length >= 4, 'the shared good cases are there');
    for (const c of cases) {
      const res = await kubeRequest(kc, 'POST', ROUTES, { body: c.route, query: STRICT });
      t.equal(res.status, 201, `${c.name}: accepted`, { message: res.body?.message });
      // Nothing the client sent may be pruned or rewritten (only the default priority added),
      // except the nulls the server drops (`stored` says what is kept then).
      t.same(res.body?.spec, c.stored ?? { priority: 0, ...c.route.spec }, `${c.name}: stored as sent`);
    }
  });

  await t.test('bad Routes are refused with a useful message', async (t) => {
    const cases = routeCases('bad-routes.yaml');
    t.ok(cases.length >= 10, 'the shared bad cases are there');
    for (const c of cases) {
      const res = await kubeRequest(kc, 'POST', ROUTES, { body: c.route, query: STRICT });
      const message = String(res.body?.message ?? res.body);
      const status = c.expectStatus ?? 422;
      t.equal(res.status, status, `${c.name} (${c.why}): refused as ${status === 422 ? 'Invalid' : 'BadRequest'}`, { message });
      if (res.status !== (c.expectStatus ?? 422)) t.comment(`${c.name}: ${res.status} ${message}`);
      t.match(message, c.expectMessage ?? '', `${c.name}: the message says "${c.expectMessage}"`, { message });
      // 422 names the object; a strict decoding error (400) names only the field.
      if (status === 422) t.match(message, `"${c.name}" is invalid`, `${c.name}: the message names the object`);
    }
    // None of them was stored.
    const list = await kubeRequest(kc, 'GET', ROUTES);
    const names = new Set((list.body?.items ?? []).map((r: { metadata: { name: string } }) => r.metadata.name));
    for (const c of cases) t.notOk(names.has(c.name), `${c.name} was not stored`);
  });
}
