import t from 'tap';
import { stringify } from 'yaml';
import { convertConfig, nameFromFile } from '../../core/config.js';
import { InputFileError } from '../../core/yaml-docs.js';
import { routeCases } from '../util/fixtures.js';

const ok = (text: string, file = 'cr-config.json') => convertConfig(text, file);

t.test('entries become a Route, trimmed and canonical', async (t) => {
  const r = ok(
    JSON.stringify([
      { svc: ' default/nginx1 ', dev: 'eth0' },
      { route: '172.16.0.0/16 ', dev: 'eth1', via: ' 10.124.2.1' },
      { route: 'FD00::/8', dev: 'eth1' },
      { route: 'default', dev: 'eth0', via: '169.254.1.1' },
    ]),
  );
  t.same(r, {
    apiVersion: 'k8s.ovn.org/v1',
    kind: 'Route',
    metadata: { name: 'cr-config' },
    spec: {
      svc: [{ namespace: 'default', name: 'nginx1', dev: 'eth0' }],
      route: [
        { dst: '172.16.0.0/16', dev: 'eth1', via: '10.124.2.1' },
        { dst: 'fd00::/8', dev: 'eth1' },
      ],
      defaultRoute: { dev: 'eth0', via: '169.254.1.1' },
    },
  });
  t.equal(convertConfig('[]', 'x.yaml', { name: 'mine' }).metadata?.name, 'mine');
  t.equal(nameFromFile('/a/b/My_Routes.YAML'), 'my-routes');
});

t.test('bad entries: file, entry, line, field and what was expected', async (t) => {
  const cases: [string, string, string, RegExp][] = [
    [
      'host bits',
      'c.json',
      '[\n {"svc":"default/a","dev":"eth0"},\n {"route":"10.0.0.5/24","dev":"eth1"}\n]',
      /^c\.json: entry 1 \(line 3\): field "route": expected a CIDR .*did you mean 10\.0\.0\.0\/24\?/,
    ],
    [
      'missing dev',
      'c.yaml',
      '- svc: default/a\n  dev: eth0\n- route: 10.0.0.0/8\n',
      /^c\.yaml: entry 1 \(line 3\): field "dev": required/,
    ],
    [
      'bad via',
      'c.yaml',
      '- route: 10.0.0.0/8\n  dev: eth1\n  via: 10.0.0.256\n',
      /entry 0 \(line 1\): field "via": expected a gateway IP address/,
    ],
    [
      'family mismatch',
      'c.yaml',
      '- route: 10.0.0.0/8\n  dev: eth1\n  via: fd00::1\n',
      /entry 0 \(line 1\): field "via": via must be of the same address family as dst/,
    ],
    ['bad dev', 'c.json', '[{"route":"10.0.0.0/8","dev":"eth 1"}]', /entry 0 \(line 1\): field "dev": must be a Linux interface name/],
    ['svc without namespace', 'c.json', '[{"svc":"nginx1","dev":"eth0"}]', /field "svc": expected "<namespace>\/<name>"/],
    ['svc bad name', 'c.json', '[{"svc":"default/Nginx","dev":"eth0"}]', /name "Nginx" is not a valid Service name/],
    ['both svc and route', 'c.json', '[{"svc":"default/a","route":"10.0.0.0/8","dev":"eth0"}]', /exactly one of "svc" and "route"/],
    ['neither', 'c.json', '[{"dev":"eth0"}]', /exactly one of "svc" and "route"/],
    ['unknown field', 'c.json', '[{"route":"10.0.0.0/8","dev":"eth0","gw":"1.2.3.4"}]', /field "gw": unknown field/],
    ['number instead of string', 'c.json', '[{"route":10,"dev":"eth0"}]', /field "route": expected a CIDR .* as a string, got 10/],
    ['two defaults', 'c.json', '[{"route":"default","dev":"eth0"},{"route":"default","dev":"eth1"}]', /entry 1 .*only one default route/],
    ['slash zero', 'c.json', '[{"route":"0.0.0.0/0","dev":"eth0"}]', /write \{"route": "default"/],
    ['entry not an object', 'c.json', '["10.0.0.0/8"]', /entry 0 \(line 1\): expected an object/],
    ['JSON syntax', 'c.json', '[\n{"route": "10.0.0.0/8",, "dev":"eth0"}]', /^c\.json: line 2, column \d+: not valid JSON/],
    ['YAML syntax', 'c.yaml', '- route: [10.0.0.0/8\n', /^c\.yaml: line \d+, column \d+: not valid YAML/],
    ['not a list', 'c.yaml', 'route: 10.0.0.0/8\n', /expected a list of entries/],
    [
      'too many routes',
      'c.json',
      JSON.stringify(Array.from({ length: 257 }, (_, i) => ({ route: `10.${i >> 8}.${i & 255}.0/24`, dev: 'eth1' }))),
      /c\.json: spec\.route: must NOT have more than 256 items/,
    ],
    [
      'Route with bad field',
      'r.yaml',
      'apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {name: r}\nspec:\n  route:\n    - {dst: "10.0.0.5/24", dev: eth1}\n',
      /^r\.yaml: spec\.route\[0\] \(line 6\): dst has host bits set/,
    ],
    ['Route with wrong apiVersion', 'r.yaml', 'apiVersion: v1\nkind: Route\nspec: {}\n', /apiVersion: expected "k8s\.ovn\.org\/v1"/],
  ];
  for (const [name, file, text, want] of cases) {
    t.throws(() => convertConfig(text, file), want, name);
  }
});

t.test('a full Route is normalised', async (t) => {
  const r = convertConfig(
    [
      'apiVersion: k8s.ovn.org/v1',
      'kind: Route',
      'metadata: {name: r, uid: 123, resourceVersion: "9", creationTimestamp: "2026-01-01T00:00:00Z"}',
      'spec:',
      '  route: [{dst: "FD00:10::0/64 ", dev: " eth1", via: "FD00:10::1"}]',
      'status: {status: Active}',
    ].join('\n'),
    'r.yaml',
  );
  t.same(r, {
    apiVersion: 'k8s.ovn.org/v1',
    kind: 'Route',
    metadata: { name: 'r' },
    spec: { route: [{ dst: 'fd00:10::/64', dev: 'eth1', via: 'fd00:10::1' }] },
  });
});

// Issue #16, defect 8: `convert` must refuse offline exactly what the API server refuses
// (the same shared cases test/e2e/crd.test.ts sends to a real kube-apiserver), with an
// error naming the file, the Route and the field, never a TypeError; and accept what it
// accepts, nulls included (dropped, as the server drops them).
t.test('convert refuses every shared bad Route with the file, the Route and the field', async (t) => {
  const cases = routeCases('bad-routes.yaml');
  t.ok(cases.length >= 60, `${cases.length} bad cases`);
  for (const c of cases) {
    const file = `${c.name}.yaml`;
    let err: unknown;
    try {
      convertConfig(stringify(c.route), file);
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof InputFileError, `${c.name} (${c.why}): refused with an input error, not ${String(err)}`);
    const msg = (err as Error)?.message ?? '';
    t.ok(msg.startsWith(`${file}: `), `${c.name}: names the file: ${msg.split('\n')[0]}`);
    t.match(msg, `(Route "${c.name}")`, `${c.name}: names the Route`);
    t.match(msg, c.expectMessage ?? '', `${c.name}: says "${c.expectMessage}"`);
  }
});

t.test('convert accepts every shared good Route, nulls dropped as the API server drops them', async (t) => {
  for (const c of routeCases('good-routes.yaml')) {
    const r = convertConfig(stringify(c.route), `${c.name}.yaml`);
    t.same({ priority: 0, ...r.spec }, c.stored ?? { priority: 0, ...c.route.spec }, `${c.name}: the spec the server would store`);
    t.equal(r.metadata?.name, c.name);
  }
});

t.test('null in a config-file entry is an absent field', async (t) => {
  const r = convertConfig(
    '[{"route": "10.0.0.0/8", "dev": "eth1", "via": null}, {"svc": "default/a", "dev": "eth0", "via": null}]',
    'c.json',
  );
  t.same(r.spec, { route: [{ dst: '10.0.0.0/8', dev: 'eth1' }], svc: [{ namespace: 'default', name: 'a', dev: 'eth0' }] });
});
