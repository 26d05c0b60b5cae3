// The parsers behind `routes --remote` (bin/remote-routes.ts), against real output captured
// from one netns (test/fixtures/route-output/README.md), and the `route -n` form they are
// printed in, which is the node's own formatter (injector/routes/table.ts).
import { readFileSync } from 'node:fs';
import t from 'tap';
import { encodeInjectorStatus } from '../../core/injector-status.js';
import { encodePlan, planHash } from '../../core/plan-codec.js';
import { PLAN_ANNOTATION, STATUS_ANNOTATION, type Plan, type Pod } from '../../core/types.js';
import { inferOwners, parseIpRoute, parseProcIPv6Route, parseProcRoute, PROTO_UNKNOWN, reportedRoutes } from '../../bin/remote-routes.js';
import { formatRouteTable4, formatRouteTable6 } from '../../injector/routes/table.js';
import { fixture } from '../util/fixtures.js';

const out = (f: string) => readFileSync(fixture(`route-output/${f}`), 'utf8');
const brief = (rs: ReturnType<typeof parseIpRoute>) => rs.map((r) => [r.dst, r.via ?? '', r.dev ?? '', r.protocol, r.priority, r.type]);

t.test('iproute2 output: destinations, gateways, devices, protocols, metrics, types', async (t) => {
  t.same(brief(parseIpRoute(out('iproute2-4.txt'), 4)), [
    ['0.0.0.0/0', '10.124.2.1', 'd0', 3, 0, 'UNICAST'],
    ['10.96.0.10/32', '', 'd0', 111, 0, 'UNICAST'],
    ['10.124.2.0/24', '', 'd0', 2, 0, 'UNICAST'],
    ['172.16.0.0/16', '10.124.2.1', 'd0', 111, 5, 'UNICAST'],
    ['192.0.2.0/24', '', '', 3, 0, 'BLACKHOLE'],
  ]);
  t.same(brief(parseIpRoute(out('iproute2-6.txt'), 6)), [
    ['fd00::/64', '', 'd0', 2, 256, 'UNICAST'],
    ['fd10::/64', 'fd00::1', 'd0', 111, 1024, 'UNICAST'],
    ['fe80::/64', '', 'd0', 2, 256, 'UNICAST'],
  ]);
  t.same(parseIpRoute('10.0.0.0/8 dev eth0 proto ovnkube-route\n', 4)[0]!.protocol, 111, 'the rt_protos.d name reads back as 111');
  t.same(parseIpRoute('2001:db8::/32 dev eth0\n', 4), [], 'a line of the other family is skipped');
});

t.test('busybox output: no protocols (unknown), multicast left out', async (t) => {
  const b4 = parseIpRoute(out('busybox-4.txt'), 4, { busybox: true });
  t.same(
    b4.map((r) => [r.dst, r.via ?? '', r.priority]),
    [
      ['0.0.0.0/0', '10.124.2.1', 0],
      ['10.96.0.10/32', '', 0],
      ['10.124.2.0/24', '', 0],
      ['172.16.0.0/16', '10.124.2.1', 5],
      ['192.0.2.0/24', '', 0],
    ],
  );
  t.ok(
    b4.every((r) => r.protocol === PROTO_UNKNOWN),
    'protocol unknown',
  );
  t.same(
    parseIpRoute(out('busybox-6.txt'), 6, { busybox: true }).map((r) => r.dst),
    ['fd00::/64', 'fd10::/64', 'fe80::/64'],
  );
});

t.test('/proc/net/route and /proc/net/ipv6_route', async (t) => {
  t.same(
    parseProcRoute(out('proc-net-route.txt')).map((r) => [r.dst, r.via ?? '', r.dev ?? '', r.priority]),
    [
      ['0.0.0.0/0', '10.124.2.1', 'd0', 0],
      ['10.96.0.10/32', '', 'd0', 0],
      ['10.124.2.0/24', '', 'd0', 0],
      ['172.16.0.0/16', '10.124.2.1', 'd0', 5],
      ['192.0.2.0/24', '', '', 0],
    ],
  );
  t.same(
    parseProcIPv6Route(out('proc-net-ipv6_route.txt')).map((r) => [r.dst, r.via ?? '', r.dev ?? '', r.priority]),
    [
      ['fd00::/64', '', 'd0', 256],
      ['fd10::/64', 'fd00::1', 'd0', 1024],
      ['fe80::/64', '', 'd0', 256],
    ],
    'what ip -6 route show table main lists: local routes (RTF_LOCAL), multicast and routes not up left out',
  );
});

t.test("printed in the node's route -n form", async (t) => {
  t.equal(
    formatRouteTable4(parseIpRoute(out('iproute2-4.txt'), 4), 111),
    [
      'Kernel IP routing table',
      'Destination     Gateway         Genmask         Flags Metric Iface  Proto  Owner',
      '0.0.0.0         10.124.2.1      0.0.0.0         UG    0      d0     boot',
      '10.96.0.10      0.0.0.0         255.255.255.255 UH    0      d0     111    ovnkube-route',
      '10.124.2.0      0.0.0.0         255.255.255.0   U     0      d0     kernel',
      '172.16.0.0      10.124.2.1      255.255.0.0     UG    5      d0     111    ovnkube-route',
      '192.0.2.0       0.0.0.0         255.255.255.0   !     0      *      boot',
    ].join('\n') + '\n',
  );
  t.match(
    formatRouteTable4(parseProcRoute(out('proc-net-route.txt')), 111),
    /10\.96\.0\.10 +0\.0\.0\.0 +255\.255\.255\.255 UH +0 +d0 +\?\n/,
    'unknown protocol shown as ?',
  );
  t.match(formatRouteTable6(parseIpRoute(out('iproute2-6.txt'), 6), 111), /fd10::\/64 +fd00::1 +UG +1024 +d0 +111 +ovnkube-route/);
});

t.test('the agent report: the plan in force less what it skipped; owners inferred only for exact matches', async (t) => {
  const plan: Plan = {
    v: 1,
    routes: [
      { dst: '10.96.0.10/32', dev: 'd0' },
      { dst: '172.16.0.0/16', dev: 'd0', via: '10.124.2.1' },
      { dst: '172.17.0.0/16', dev: 'eth1' },
    ],
  };
  const podWith = (status: string | undefined, p: Plan = plan): Pod => ({
    metadata: {
      namespace: 'app',
      name: 'web',
      annotations: { [PLAN_ANNOTATION]: encodePlan(p, { namespace: 'app' }), ...(status ? { [STATUS_ANNOTATION]: status } : {}) },
    },
  });
  const st = encodeInjectorStatus({
    plan: planHash(plan),
    applied: 2,
    skipped: [{ dst: '172.17.0.0/16', dev: 'eth1', reason: 'missing-dev' }],
    node: 'n1',
    time: '2026-01-01T00:00:00.000Z',
  });
  const rep = reportedRoutes(podWith(st));
  t.same(
    rep.routes.map((r) => [r.dst, r.dev, r.via ?? '', r.protocol]),
    [
      ['10.96.0.10/32', 'd0', '', 111],
      ['172.16.0.0/16', 'd0', '10.124.2.1', 111],
    ],
  );
  t.match(rep.note, /node n1 reported at 2026-01-01T00:00:00.000Z: 2 applied, 1 skipped/);
  t.same(reportedRoutes(podWith(undefined)).routes, []);
  t.match(reportedRoutes(podWith(undefined)).note, /no agent report/);
  const other = reportedRoutes(podWith(st, { v: 1, routes: [{ dst: '10.0.0.0/8', dev: 'd0' }] }));
  t.same(other.routes, [], 'a report of another plan lists nothing');
  t.match(other.note, /not the pod's current annotation/);

  // Key rotation in the wrong order: the same plan re-signed with a key the agent lacks. The
  // agent refuses the annotation and keeps the plan in force: its routes are still ours.
  const rejected = encodeInjectorStatus({
    plan: planHash(plan),
    applied: 2,
    skipped: [
      {
        dst: '*',
        reason: 'plan-rejected',
        detail: 'unknown-key: plan is signed with key a4514ead4aaf, which is not one of the accepted keys',
      },
      { dst: '172.17.0.0/16', dev: 'eth1', reason: 'missing-dev' },
    ],
    node: 'n1',
    time: '2026-01-01T00:00:00.000Z',
  });
  const rep2 = reportedRoutes(podWith(rejected));
  t.same(
    rep2.routes.map((r) => r.dst),
    ['10.96.0.10/32', '172.16.0.0/16'],
    'a refused re-signature leaves the plan in force listed',
  );
  t.match(rep2.note, /2 applied, 1 skipped; the annotation's signature was refused \(unknown-key: .*\), the same plan stays in force/);
  const broken = encodeInjectorStatus({
    plan: '',
    applied: 0,
    skipped: [{ dst: '*', reason: 'netns-refused', detail: 'x' }],
    node: 'n1',
    time: 't',
  });
  t.same(reportedRoutes(podWith(broken)).routes, [], 'no plan in force (netns refused): nothing listed');

  const routes = parseIpRoute(out('busybox-4.txt'), 4, { busybox: true });
  t.equal(inferOwners(routes, podWith(rejected)), 2, 'owners are inferred while a re-signature is refused');
  t.equal(inferOwners(parseIpRoute(out('busybox-4.txt'), 4, { busybox: true }), podWith(st)), 2);
  t.same(
    routes.filter((r) => r.protocol === 111).map((r) => r.dst),
    ['10.96.0.10/32', '172.16.0.0/16'],
  );
});
