import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parse, stringify } from 'yaml';
import { decodePlan, parsePlanKey } from '../../core/plan-codec.js';
import { runCli } from '../util/cli.js';
import { fixture, repoRoot } from '../util/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'ovnkube-route-cli-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
const example = (f: string) => join(repoRoot, 'examples', f);

const TABLE_ROWS = [
  { dst: '10.86.69.17/32', dev: 'eth0' },
  { dst: '10.86.205.109/32', dev: 'eth1' },
  { dst: '10.124.0.0/16', dev: 'eth1', via: '10.124.2.1' },
  { dst: '172.16.10.0/24', dev: 'eth1' },
  { dst: '192.168.2.0/24', dev: 'eth0' },
];
const SERVICES = [
  {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace: 'kube-system', name: 'nginx1' },
    spec: { clusterIP: '10.86.69.17', clusterIPs: ['10.86.69.17'] },
  },
  {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace: 'default', name: 'nginx' },
    spec: { clusterIP: '10.86.205.109', clusterIPs: ['10.86.205.109'] },
  },
  { apiVersion: 'v1', kind: 'Pod', metadata: { namespace: 'default', name: 'web' }, spec: {} },
];

t.test('--help is there for every command and the top level', async (t) => {
  const top = runCli(['--help']);
  t.equal(top.code, 0);
  t.match(top.stdout, /Commands:\n[\s\S]*convert[\s\S]*plan/);
  for (const cmd of ['convert', 'plan']) {
    const h = runCli([cmd, '--help']);
    t.equal(h.code, 0, `${cmd} --help`);
    t.match(h.stdout, new RegExp(`^Usage: ovnkube-route ${cmd} `), `${cmd} --help starts with usage`);
  }
  const none = runCli([]);
  t.equal(none.code, 2, 'no command is a usage error');
  const bad = runCli(['frobnicate']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /unknown command "frobnicate"/);
  const flag = runCli(['convert', '--nope']);
  t.equal(flag.code, 2);
  t.match(flag.stderr, /Unknown option '--nope'[\s\S]*--help/);
  t.equal(flag.stdout, '');
});

t.test('convert: the demo Route of the design document', async (t) => {
  const r = runCli(['convert', '-f', fixture('demo-route.yaml'), '-o', 'json']);
  t.equal(r.code, 0, r.stderr);
  const demo = parse(readFileSync(fixture('demo-route.yaml'), 'utf8'));
  delete demo.status;
  t.same(JSON.parse(r.stdout), demo, 'unchanged but for the server-owned status');
});

t.test('convert: cr-config in JSON and YAML reproduce the table rows', async (t) => {
  const fromJson = runCli(['convert', '-f', example('cr-config.json'), '--name', 'target']);
  const fromYaml = runCli(['convert', '-f', example('cr-config.yaml'), '--name', 'target']);
  t.equal(fromJson.code, 0, fromJson.stderr);
  t.equal(fromYaml.code, 0, fromYaml.stderr);
  t.equal(fromJson.stdout, fromYaml.stdout, 'both formats give the same Route');
  const route = parse(fromYaml.stdout);
  t.equal(route.spec.route[1].dst, '172.16.10.0/24', 'stray space trimmed');
  const bundle = join(tmp, 'bundle.yaml');
  writeFileSync(bundle, [route, ...SERVICES].map((o) => stringify(o)).join('---\n'));
  const plan = runCli(['plan', '-f', bundle, '--pod', 'default/web']);
  t.equal(plan.code, 0, plan.stderr);
  t.same(JSON.parse(plan.stdout), { v: 1, routes: TABLE_ROWS }, 'the Service and CIDR rows of the target table');
  const piped = runCli(['convert', '-f', '-', '-o', 'json'], { input: readFileSync(example('cr-config.json'), 'utf8') });
  t.equal(piped.code, 0);
  t.equal(JSON.parse(piped.stdout).metadata.name, 'stdin');
});

t.test('convert: bad files exit non-zero, print nothing on stdout, explain on stderr', async (t) => {
  const write = (name: string, text: string) => {
    const p = join(tmp, name);
    writeFileSync(p, text);
    return p;
  };
  const cases: [string, string[], number, RegExp][] = [
    ['missing file', ['convert', '-f', join(tmp, 'nope.json')], 1, /nope\.json: cannot read: no such file/],
    ['no -f', ['convert'], 2, /-f FILE is required/],
    ['bad -o', ['convert', '-f', example('cr-config.json'), '-o', 'xml'], 2, /-o must be yaml or json/],
    ['bad --name', ['convert', '-f', example('cr-config.json'), '--name', 'Bad_Name'], 2, /not a valid Route name/],
    [
      'host bits',
      ['convert', '-f', write('hb.yaml', '- svc: default/a\n  dev: eth0\n- route: 10.0.0.5/24\n  dev: eth1\n')],
      1,
      /hb\.yaml: entry 1 \(line 3\): field "route": .*host bits set: did you mean 10\.0\.0\.0\/24\?/,
    ],
    [
      'bad dev',
      ['convert', '-f', write('dev.json', '[{"svc":"default/a","dev":"eth0"},\n{"route":"10.0.0.0/8","dev":"this-is-too-long0"}]')],
      1,
      /dev\.json: entry 1 \(line 2\): field "dev": must be a Linux interface name/,
    ],
    [
      'syntax',
      ['convert', '-f', write('syn.json', '[{"route": "10.0.0.0/8" "dev": "eth0"}]')],
      1,
      /syn\.json: line 1, column \d+: not valid JSON/,
    ],
    // Issue #16, defect 8: these crashed with a TypeError stack trace (normalised before validated).
    [
      'route as an object',
      [
        'convert',
        '-f',
        write('ro.yaml', 'apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {name: ro}\nspec:\n  route: {dst: 10.0.0.0/8, dev: eth1}\n'),
      ],
      1,
      /^ovnkube-route convert: \S*ro\.yaml: spec\.route \(line 5\): must be array \(Route "ro"\)\n$/,
    ],
    [
      'bare string rule',
      [
        'convert',
        '-f',
        write('bs.yaml', 'apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {name: bs}\nspec: {route: ["10.0.0.0/8"], svc: {name: x}}\n'),
      ],
      1,
      /^(?=[\s\S]*bs\.yaml: spec\.svc \(line 4\): must be array \(Route "bs"\))(?=[\s\S]*bs\.yaml: spec\.route\[0\] \(line 4\): must be object \(Route "bs"\))(?![\s\S]*dst must be)/,
    ],
    [
      'defaultRoute a string',
      ['convert', '-f', write('ds.yaml', 'apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {name: ds}\nspec: {defaultRoute: eth0}\n')],
      1,
      /ds\.yaml: spec\.defaultRoute \(line 4\): must be object \(Route "ds"\)/,
    ],
    [
      'metadata typo',
      [
        'convert',
        '-f',
        write('mt.yaml', 'apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata:\n  name: mt\n  label: {app: web}\nspec: {}\n'),
      ],
      1,
      /mt\.yaml: metadata\.label \(line 5\): unknown field \(Route "mt"\)/,
    ],
  ];
  for (const [name, args, code, want] of cases) {
    const r = runCli(args);
    t.equal(r.code, code, `${name}: exit ${code}`);
    t.equal(r.stdout, '', `${name}: nothing on stdout`);
    t.match(r.stderr, want, `${name}: ${r.stderr.trim()}`);
    t.notMatch(r.stderr, /TypeError|\n\s+at /, `${name}: no stack trace`);
  }
});

t.test('convert: nulls are dropped as the API server drops them', async (t) => {
  const p = join(tmp, 'nulls.yaml');
  writeFileSync(
    p,
    'apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {name: n}\nspec:\n  priority: null\n  svc: null\n  route: [{dst: 10.0.0.0/8, dev: eth1, via: null}]\n',
  );
  const r = runCli(['convert', '-f', p, '-o', 'json']);
  t.equal(r.code, 0, r.stderr);
  t.same(JSON.parse(r.stdout).spec, { route: [{ dst: '10.0.0.0/8', dev: 'eth1' }] });
});

t.test('plan: the example bundle, --all, signing and skips', async (t) => {
  const all = runCli(['plan', '-f', example('demo-bundle.yaml'), '--all']);
  t.equal(all.code, 0, all.stderr);
  const out = JSON.parse(all.stdout);
  t.same(Object.keys(out), [
    'batch/nightly-report-2890-x7k2p',
    'default/web-7d4f9-abcde',
    'kube-system/node-exporter-q8w2z',
    'legacy/old-app',
  ]);
  t.same(out['default/web-7d4f9-abcde'], { v: 1, routes: TABLE_ROWS });
  t.same(
    out['batch/nightly-report-2890-x7k2p'],
    { v: 1, routes: [], default: { dev: 'eth1', via: 'gateway' } },
    'CronJob owner through Job; via gateway kept for the agent',
  );
  // Safe defaults: both Routes of the bundle are worth a warning, each printed once.
  t.match(
    all.stderr,
    /warning: Route batch-default-ovn: DefaultRouteMovesServices: spec\.defaultRoute moves the pod's default route to eth1/,
  );
  t.match(all.stderr, /warning: Route target: GatewayNotPerNode: spec\.route\[0\]\.via 10\.124\.2\.1 is one gateway address/);
  t.equal(all.stderr.match(/GatewayNotPerNode/g)?.length, 1, 'once per Route, not per pod');
  t.match(out['kube-system/node-exporter-q8w2z'].skipped, /host network/);
  t.match(out['legacy/old-app'].skipped, /inject=disabled/);

  const keyFile = join(tmp, 'plan.key');
  writeFileSync(keyFile, randomBytes(32).toString('base64') + '\n');
  const signed = runCli(['plan', '-f', example('demo-bundle.yaml'), '--pod', 'default/web-7d4f9-abcde', '--key', keyFile]);
  t.equal(signed.code, 0, signed.stderr);
  const key = parsePlanKey(readFileSync(keyFile, 'utf8'));
  const value = signed.stdout.trim();
  t.same(
    decodePlan(value, { namespace: 'default', keys: [key], requireSignature: true }),
    { ok: true, plan: { v: 1, routes: TABLE_ROWS }, signed: true, keyId: key.id },
    'the printed line is the annotation value, signed',
  );
  t.equal(decodePlan(value, { namespace: 'batch', keys: [key], requireSignature: true }).ok, false, 'bound to the namespace');

  const optIn = runCli(['plan', '-f', example('demo-bundle.yaml'), '--pod', 'default/web-7d4f9-abcde', '--mode', 'opt-in']);
  t.match(JSON.parse(optIn.stdout).skipped, /opt-in mode/);
});

t.test('plan: bad input', async (t) => {
  const badRoute = join(tmp, 'bad-route.yaml');
  writeFileSync(
    badRoute,
    'apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {name: r}\nspec: {route: [{dst: 10.0.0.0/8, dev: eth1, via: "fd00::1"}]}\n',
  );
  const cases: [string, string[], number, RegExp][] = [
    ['neither --pod nor --all', ['plan', '-f', example('demo-bundle.yaml')], 2, /exactly one of --pod/],
    ['both', ['plan', '-f', example('demo-bundle.yaml'), '--all', '--pod', 'a/b'], 2, /exactly one of --pod/],
    ['bad --pod', ['plan', '-f', example('demo-bundle.yaml'), '--pod', 'web'], 2, /NAMESPACE\/NAME/],
    [
      'unknown pod',
      ['plan', '-f', example('demo-bundle.yaml'), '--pod', 'default/nope'],
      1,
      /no Pod default\/nope in the file \(4 pods found\)/,
    ],
    ['invalid Route in bundle', ['plan', '-f', badRoute, '--all'], 1, /Route r: spec\.route\[0\]: via must be of the same address family/],
    ['bad key', ['plan', '-f', example('demo-bundle.yaml'), '--all', '--key', example('cr-config.json')], 1, /not base64/],
    ['bad mode', ['plan', '-f', example('demo-bundle.yaml'), '--all', '--mode', 'sometimes'], 2, /--mode must be default or opt-in/],
  ];
  for (const [name, args, code, want] of cases) {
    const r = runCli(args);
    t.equal(r.code, code, `${name}: exit ${code}`);
    t.equal(r.stdout, '', `${name}: nothing on stdout`);
    t.match(r.stderr, want, name);
  }
});
