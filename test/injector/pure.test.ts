// Pure parts of the injector, table-tested without the kernel: the diff engine, the CNI
// cache parser, the saved-default codec, the route -n table.
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { kernelRoute, LINKS } from '../util/kernel-routes.js';
import type { Plan } from '../../core/types.js';
import { findPodNetns, parseCniCacheFile, scanCniCacheDir } from '../../injector/discovery/cni-cache.js';
import type { KernelRoute } from '../../injector/kernel/netlink-codec.js';
import { diffRoutes } from '../../injector/routes/diff.js';
import { encodeSavedDefault, parseSavedDefault, SavedDefaultStore } from '../../injector/routes/saved.js';
import { formatRouteTable4, formatRouteTable6 } from '../../injector/routes/table.js';
import { repoRoot } from '../util/fixtures.js';

const OURS = 111;
const kr = kernelRoute;
const CNI_TABLE = [
  kr('0.0.0.0/0', 'eth0', { via: '169.254.1.1', scope: 0 }),
  kr('169.254.1.1/32', 'eth0'),
  kr('10.124.2.0/24', 'eth1', { protocol: 2 }),
];

t.test('diffRoutes', async (t) => {
  const cases: { name: string; plan: Plan; table: KernelRoute[]; reclaim?: string[]; want: Record<string, string[]> }[] = [
    {
      name: 'empty table: everything added; the CNI default is not in play',
      plan: {
        v: 1,
        routes: [
          { dst: '172.16.10.0/24', dev: 'eth1' },
          { dst: '10.0.0.0/8', dev: 'eth1', via: '10.124.2.1' },
        ],
      },
      table: CNI_TABLE,
      want: { add: ['172.16.10.0/24', '10.0.0.0/8'], defaults: [] },
    },
    {
      name: 'owned equal: unchanged; owned different: replaced; owned stale: removed',
      plan: {
        v: 1,
        routes: [
          { dst: '172.16.10.0/24', dev: 'eth1' },
          { dst: '172.16.11.0/24', dev: 'eth0' },
        ],
      },
      table: [
        ...CNI_TABLE,
        kr('172.16.10.0/24', 'eth1', { protocol: OURS }),
        kr('172.16.11.0/24', 'eth1', { protocol: OURS }),
        kr('172.16.12.0/24', 'eth1', { protocol: OURS }),
      ],
      want: { unchanged: ['172.16.10.0/24'], replace: ['172.16.11.0/24'], remove: ['172.16.12.0/24'] },
    },
    {
      name: 'an owned IPv4 link route with the wrong scope is replaced',
      plan: { v: 1, routes: [{ dst: '172.16.10.0/24', dev: 'eth1' }] },
      table: [kr('172.16.10.0/24', 'eth1', { protocol: OURS, scope: 0 })],
      want: { replace: ['172.16.10.0/24'] },
    },
    {
      name: 'foreign equal: unchanged; foreign different: collision unless reclaimed',
      plan: {
        v: 1,
        routes: [
          { dst: '10.124.2.0/24', dev: 'eth1' },
          { dst: '192.168.2.0/24', dev: 'eth0' },
          { dst: '192.168.3.0/24', dev: 'eth0' },
        ],
      },
      table: [...CNI_TABLE, kr('192.168.2.0/24', 'eth1', { protocol: 4 }), kr('192.168.3.0/24', 'eth1', { protocol: 3 })],
      reclaim: ['192.168.3.0/24'],
      want: { unchanged: ['10.124.2.0/24'], skipped: ['192.168.2.0/24 collision'], replace: ['192.168.3.0/24'] },
    },
    {
      name: 'missing dev: skipped, and an owned route of that dst elsewhere is stale',
      plan: { v: 1, routes: [{ dst: '172.16.10.0/24', dev: 'eth9' }] },
      table: [kr('172.16.10.0/24', 'eth0', { protocol: OURS })],
      want: { skipped: ['172.16.10.0/24 dev-missing'], remove: ['172.16.10.0/24'] },
    },
    {
      name: 'a non-unicast foreign route is a collision even on the same dev',
      plan: { v: 1, routes: [{ dst: '10.9.0.0/16', dev: 'eth0' }] },
      table: [kr('10.9.0.0/16', 'eth0', { type: 'BLACKHOLE', oif: undefined, dev: undefined })],
      want: { skipped: ['10.9.0.0/16 collision'] },
    },
    {
      name: 'default: take over the foreign one of lowest metric',
      plan: { v: 1, routes: [], default: { dev: 'eth1', via: '10.124.2.1' } },
      table: [...CNI_TABLE, kr('0.0.0.0/0', 'eth1', { via: '10.124.2.9', priority: 100 })],
      want: { defaults: ['take-over 0.0.0.0/0 replacing metric 0'] },
    },
    {
      name: 'default: equal foreign one is left alone; v6 default from its gateway',
      plan: { v: 1, routes: [], default: { dev: 'eth0', via: '169.254.1.1' } },
      table: CNI_TABLE,
      want: { defaults: ['unchanged 0.0.0.0/0'] },
    },
    {
      name: 'default: no longer planned; restore from saved, or report when nothing was saved',
      plan: { v: 1, routes: [] },
      table: [
        kr('0.0.0.0/0', 'eth1', { protocol: OURS, via: '10.124.2.1' }),
        kr('::/0', 'eth1', { protocol: OURS, via: 'fd00::1', priority: 1024 }),
      ],
      want: { defaults: ['restore 4', 'skip default-not-restorable'] },
    },
  ];
  for (const c of cases) {
    const saved = c.name.includes('restore from saved') ? [{ family: 4 as const, route: null }] : [];
    const d = diffRoutes({ plan: c.plan, table: c.table, links: LINKS, protocol: OURS, saved, reclaim: new Set(c.reclaim ?? []) });
    const got: Record<string, string[]> = {
      add: d.add.map((x) => x.dst),
      replace: d.replace.map((x) => x.want.dst),
      remove: d.remove.map((x) => x.dst),
      unchanged: d.unchanged.map((x) => x.dst),
      skipped: d.skipped.map((x) => `${x.dst} ${x.reason}`),
      defaults: d.defaults.map((a) =>
        a.kind === 'take-over'
          ? `take-over ${a.want.dst} replacing metric ${a.replacing?.priority}`
          : a.kind === 'unchanged'
            ? `unchanged ${a.want.dst}`
            : a.kind === 'restore'
              ? `restore ${a.family}`
              : a.kind === 'skip'
                ? `skip ${a.item.reason}`
                : a.kind,
      ),
    };
    const want = { add: [], replace: [], remove: [], unchanged: [], skipped: [], defaults: [], ...c.want };
    t.same(got, want, c.name);
  }
});

t.test("CNI cache: the design document's example file", async (t) => {
  // Copied from shared/seeds/000_*.txt (the jq output there, without its two # comments).
  const name = 'cni-loopback-501bfc5a143cef8f0ed14c68112bbb321eae430e2ff3ec40357e226608c1a5cd-lo';
  const r = parseCniCacheFile(name, readFileSync(join(repoRoot, 'test', 'injector', 'fixtures', name), 'utf8'));
  t.same(r, {
    ok: true,
    entry: {
      file: name,
      podNamespace: 'kube-system',
      podName: 'calico-kube-controllers-7f7bf765bb-whl8g',
      sandbox: '/var/run/netns/cni-219052a8-dc07-14ad-2249-d380a989e501',
      mtimeMs: 0,
      podUid: '174eecc3-58fa-42d1-8501-7f9004a28b76',
      containerId: '501bfc5a143cef8f0ed14c68112bbb321eae430e2ff3ec40357e226608c1a5cd',
      networkName: 'cni-loopback',
      ifName: 'lo',
    },
  });
});

t.test('CNI cache: the files containerd 1.6 + Multus wrote on the real node', async (t) => {
  // Copied from /var/lib/cni/results of the node tier (test/node-e2e): compact JSON, cniArgs
  // in a different order in each file, no top-level netns key (libcni of containerd 1.6).
  const dir = join(repoRoot, 'test', 'injector', 'fixtures', 'containerd-1.6');
  const sandbox = '/var/run/netns/cni-4decf0cb-6543-1bf5-c088-d9ee13197244';
  const id = 'cf0381607f6f984bee1e388e57004f2af3679092d6f3218917fcf38639135125';
  for (const [name, net, ifName] of [
    [`cni-loopback-${id}-lo`, 'cni-loopback', 'lo'],
    [`multus-cni-network-${id}-eth0`, 'multus-cni-network', 'eth0'],
  ] as const) {
    const r = parseCniCacheFile(name, readFileSync(join(dir, name), 'utf8'));
    t.same(
      r,
      {
        ok: true,
        entry: {
          file: name,
          podNamespace: 'default',
          podName: 'p1',
          sandbox,
          mtimeMs: 0,
          podUid: '9f89fd31-6f16-4996-b584-3c5a5b4e3382',
          containerId: id,
          networkName: net,
          ifName,
        },
      },
      name,
    );
  }
});

t.test('CNI cache: the top-level netns key of current libcni', async (t) => {
  const args = [
    ['K8S_POD_NAMESPACE', 'ns'],
    ['K8S_POD_NAME', 'p'],
  ];
  const cases: [string, object, string | RegExp][] = [
    [
      'netns key and a matching sandbox',
      { netns: '/var/run/netns/a', result: { interfaces: [{ name: 'lo', sandbox: '/var/run/netns/a' }] } },
      '/var/run/netns/a',
    ],
    [
      'netns key only (a result with no interface in the netns)',
      { netns: '/var/run/netns/a', result: { interfaces: [{ name: 'cali1' }] } },
      '/var/run/netns/a',
    ],
    ['no netns key: interfaces[].sandbox', { result: { interfaces: [{ name: 'lo', sandbox: '/var/run/netns/b' }] } }, '/var/run/netns/b'],
    [
      'netns key and sandbox disagree',
      { netns: '/var/run/netns/a', result: { interfaces: [{ sandbox: '/var/run/netns/b' }] } },
      /netns \/var\/run\/netns\/a and result.interfaces\[\].sandbox \/var\/run\/netns\/b differ/,
    ],
    ['neither', { result: { interfaces: [] } }, /no netns key and result.interfaces\[\] has no sandbox/],
  ];
  for (const [name, doc, want] of cases) {
    const r = parseCniCacheFile('f', JSON.stringify({ cniArgs: args, ...doc }));
    if (typeof want === 'string') t.equal(r.ok && r.entry.sandbox, want, name);
    else t.match(!r.ok && r.error, want, name);
  }
});

t.test('CNI cache: bad files are errors naming file and field', async (t) => {
  const args = (extra: unknown[] = []) => [['K8S_POD_NAMESPACE', 'ns'], ['K8S_POD_NAME', 'p'], ...extra];
  const cases: [string, string, RegExp][] = [
    ['not json', '{', /f: not JSON/],
    ['array', '[]', /expected a JSON object/],
    [
      'no pod args',
      JSON.stringify({ cniArgs: [['IgnoreUnknown', '1']], result: { interfaces: [{ sandbox: '/x' }] } }),
      /no K8S_POD_NAMESPACE/,
    ],
    ['no sandbox', JSON.stringify({ cniArgs: args(), result: { interfaces: [{ name: 'cali1234' }] } }), /no sandbox/],
    [
      'two sandboxes',
      JSON.stringify({ cniArgs: args(), result: { interfaces: [{ sandbox: '/a' }, { sandbox: '/b' }] } }),
      /different sandboxes: \/a, \/b/,
    ],
  ];
  for (const [name, text, re] of cases) {
    const r = parseCniCacheFile('f', text);
    t.notOk(r.ok, name);
    if (!r.ok) t.match(r.error, re, name);
  }
  const host = parseCniCacheFile(
    'f',
    JSON.stringify({
      cniArgs: args(),
      result: {
        interfaces: [
          { name: 'cali1', mac: 'x' },
          { name: 'eth0', sandbox: '/s' },
        ],
      },
    }),
  );
  t.ok(host.ok && host.entry.sandbox === '/s', 'host-side interfaces without sandbox are ignored');
});

t.test('CNI cache: directory scan and the newest sandbox of a pod', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ovr-cni-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, ns: string, pod: string, sandbox: string, mtime: number): void => {
    writeFileSync(
      join(dir, name),
      JSON.stringify({
        kind: 'cniCacheV1',
        cniArgs: [
          ['K8S_POD_NAMESPACE', ns],
          ['K8S_POD_NAME', pod],
          ['K8S_POD_UID', `uid-${pod}`],
        ],
        result: { interfaces: [{ name: 'lo', sandbox }] },
      }),
    );
    utimesSync(join(dir, name), mtime, mtime);
  };
  file('cni-loopback-old-lo', 'default', 'web', '/var/run/netns/cni-old', 1000);
  file('cni-loopback-new-lo', 'default', 'web', '/var/run/netns/cni-new', 2000);
  file('k8s-pod-network-new-eth0', 'default', 'web', '/var/run/netns/cni-new', 2001);
  file('cni-loopback-other-lo', 'default', 'db', '/var/run/netns/cni-db', 1500);
  writeFileSync(join(dir, 'garbage'), 'not json');
  const scan = await scanCniCacheDir(dir);
  t.equal(scan.entries.length, 4);
  t.same(scan.errors.length, 1);
  t.match(scan.errors[0], /garbage: not JSON/);
  const web = findPodNetns(scan.entries, 'default', 'web');
  t.equal(web?.sandbox, '/var/run/netns/cni-new', 'the newest sandbox wins');
  t.same(web?.entries.map((e) => e.file).sort(), ['cni-loopback-new-lo', 'k8s-pod-network-new-eth0']);
  t.equal(findPodNetns(scan.entries, 'default', 'web', 'uid-other'), null, 'a UID pin excludes other pods of that name');
  t.equal(findPodNetns(scan.entries, 'other', 'web'), null);
  t.same(await scanCniCacheDir(join(dir, 'missing')), { entries: [], errors: [] }, 'a missing dir is empty');
});

t.test('saved default routes: codec and store', async (t) => {
  const s = { family: 4 as const, route: { dev: 'eth0', via: '169.254.1.1', protocol: 3, scope: 0, priority: 0 } };
  t.same(parseSavedDefault(encodeSavedDefault(s), 'f'), s, 'round trip');
  t.same(parseSavedDefault(encodeSavedDefault({ family: 6, route: null }), 'f'), { family: 6, route: null });
  t.throws(() => parseSavedDefault('{"v":1,"family":5,"route":null}', 'x.json'), /x\.json: family must be 4 or 6/);
  t.throws(
    () => parseSavedDefault('{"v":1,"family":4,"route":{"dev":"eth0","protocol":-1,"scope":0,"priority":0}}', 'x'),
    /route\.protocol must be/,
  );
  t.throws(() => new SavedDefaultStore('/tmp', '../escape'), /must match/);
  const dir = mkdtempSync(join(tmpdir(), 'ovr-saved-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const store = new SavedDefaultStore(join(dir, 'sub'), 'k');
  t.same(store.load(), []);
  store.save(s);
  store.save({ family: 6, route: null });
  t.same(new SavedDefaultStore(join(dir, 'sub'), 'k').load(), [s, { family: 6, route: null }]);
  store.forget(4);
  t.same(store.load(), [{ family: 6, route: null }]);
});

t.test('route -n table', async (t) => {
  const routes = [
    ...CNI_TABLE,
    kr('10.86.69.17/32', 'eth0', { protocol: OURS }),
    kr('10.124.0.0/16', 'eth1', { protocol: OURS, via: '10.124.2.1', scope: 0 }),
    kr('10.9.0.0/16', 'eth0', { type: 'BLACKHOLE', protocol: 4 }),
    kr('fd00:86::/64', 'eth1', { protocol: OURS, priority: 1024 }),
  ];
  t.equal(
    formatRouteTable4(routes, OURS),
    [
      'Kernel IP routing table',
      'Destination     Gateway         Genmask         Flags Metric Iface  Proto  Owner',
      '0.0.0.0         169.254.1.1     0.0.0.0         UG    0      eth0   boot',
      '10.9.0.0        0.0.0.0         255.255.0.0     !     0      eth0   static',
      '10.86.69.17     0.0.0.0         255.255.255.255 UH    0      eth0   111    ovnkube-route',
      '10.124.0.0      10.124.2.1      255.255.0.0     UG    0      eth1   111    ovnkube-route',
      '10.124.2.0      0.0.0.0         255.255.255.0   U     0      eth1   kernel',
      '169.254.1.1     0.0.0.0         255.255.255.255 UH    0      eth0   boot',
      '',
    ].join('\n'),
  );
  t.match(formatRouteTable6(routes, OURS), /fd00:86::\/64 +:: +U +1024 +eth1 +111 +ovnkube-route/);
});
