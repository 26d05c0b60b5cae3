// `via: gateway` (the per-node gateway of dev; issue 14) through core: the Route validator,
// convert, resolve and the plan codec keep the keyword as is, so one plan (signed,
// deterministic) serves every node; the agent resolves it. Table-driven.
import t from 'tap';
import { convertConfig } from '../../core/config.js';
import { decodePlan, encodePlan, planKeyFromSecret } from '../../core/plan-codec.js';
import { resolvePlan, type ResolveContext } from '../../core/resolve.js';
import { validateRoute } from '../../core/schema.js';
import type { Pod, Route, RouteSpec, Service } from '../../core/types.js';

const route = (name: string, spec: RouteSpec): Route => ({ apiVersion: 'k8s.ovn.org/v1', kind: 'Route', metadata: { name }, spec });
const POD: Pod = { kind: 'Pod', metadata: { namespace: 'default', name: 'web' }, spec: {} };
const SVC: Service = {
  kind: 'Service',
  metadata: { namespace: 'default', name: 'nginx' },
  spec: { clusterIP: '10.86.205.109', clusterIPs: ['10.86.205.109', 'fd00:86::9'] },
};
const ctx = (routes: Route[]): ResolveContext => ({
  routes,
  namespace: { metadata: { name: 'default' } },
  service: (ns, n) => (ns === 'default' && n === 'nginx' ? SVC : undefined),
  owners: [],
  mode: 'default',
});

t.test('the validator takes "gateway" and nothing else that is not an IP', async (t) => {
  const cases: [string, RouteSpec, boolean][] = [
    ['CIDR rule', { route: [{ dst: '10.124.0.0/16', dev: 'eth1', via: 'gateway' }] }, true],
    ['IPv6 CIDR rule', { route: [{ dst: 'fd00::/64', dev: 'eth1', via: 'gateway' }] }, true],
    ['Service rule', { svc: [{ namespace: 'default', name: 'nginx', dev: 'eth1', via: 'gateway' }] }, true],
    ['default route', { defaultRoute: { dev: 'eth1', via: 'gateway' } }, true],
    ['capitalised', { route: [{ dst: '10.124.0.0/16', dev: 'eth1', via: 'Gateway' }] }, false],
    ['with spaces', { route: [{ dst: '10.124.0.0/16', dev: 'eth1', via: ' gateway' }] }, false],
    ['another word', { defaultRoute: { dev: 'eth1', via: 'gw' } }, false],
  ];
  for (const [name, spec, ok] of cases) {
    const errs = validateRoute(route('r', spec));
    if (ok) t.same(errs, [], `${name}: accepted`);
    else t.match(errs.map((e) => e.message).join('\n'), /or "gateway"/, `${name}: refused, naming the keyword`);
  }
});

t.test('convert takes "gateway" in configuration entries', async (t) => {
  const r = convertConfig(
    '[{"route": "172.16.0.0/16", "dev": "eth1", "via": " gateway "}, {"route": "default", "dev": "eth1", "via": "gateway"}]',
    'cr.json',
  );
  t.same(r.spec, { route: [{ dst: '172.16.0.0/16', dev: 'eth1', via: 'gateway' }], defaultRoute: { dev: 'eth1', via: 'gateway' } });
  t.throws(
    () => convertConfig('[{"route": "172.16.0.0/16", "dev": "eth1", "via": "gw"}]', 'cr.json'),
    /field "via": expected a gateway IP address, or "gateway"/,
  );
});

t.test('resolve keeps the keyword; every family of a Service gets it', async (t) => {
  const r = resolvePlan(
    POD,
    ctx([
      route('a', {
        route: [{ dst: '172.16.30.0/24', dev: 'eth1', via: 'gateway', mtu: 1400 }],
        svc: [{ namespace: 'default', name: 'nginx', dev: 'eth1', via: 'gateway' }],
        defaultRoute: { dev: 'eth1', via: 'gateway' },
      }),
    ]),
  );
  t.equal(r.kind, 'plan');
  if (r.kind !== 'plan') return;
  t.same(r.plan.routes, [
    { dst: '10.86.205.109/32', dev: 'eth1', via: 'gateway' },
    { dst: '172.16.30.0/24', dev: 'eth1', via: 'gateway', mtu: 1400 },
    { dst: 'fd00:86::9/128', dev: 'eth1', via: 'gateway' },
  ]);
  t.same(r.plan.default, { dev: 'eth1', via: 'gateway' });
  t.same([r.invalid, r.unresolved], [[], []]);
  // Signed and verified like any plan; the same bytes for every pod of the namespace.
  const key = planKeyFromSecret(Buffer.alloc(32, 3));
  const enc = encodePlan(r.plan, { key, namespace: 'default' });
  t.match(enc, /"via":"gateway"/);
  const dec = decodePlan(enc, { namespace: 'default', keys: [key], requireSignature: true });
  t.ok(dec.ok, 'verifies');
  // A literal gateway wins a conflict deterministically against "gateway" (by Route name here).
  const both = resolvePlan(
    POD,
    ctx([
      route('a', { route: [{ dst: '172.16.30.0/24', dev: 'eth1', via: 'gateway' }] }),
      route('b', { route: [{ dst: '172.16.30.0/24', dev: 'eth1', via: '10.124.2.1' }] }),
    ]),
  );
  t.same(both.kind === 'plan' && both.plan.routes, [{ dst: '172.16.30.0/24', dev: 'eth1', via: 'gateway' }]);
  t.match(both.conflicts[0]?.message, /Route b .* wants eth1 via 10\.124\.2\.1, Route a .* wins with eth1 via gateway/);
  // The codec refuses other words.
  const bad = decodePlan('{"v":1,"routes":[{"dst":"10.0.0.0/8","dev":"eth1","via":"gw"}]}', {
    namespace: 'default',
    keys: [],
    requireSignature: false,
  });
  t.notOk(bad.ok, 'another word in via is refused by the codec');
});
