// Every command, given bad input, says what is wrong in a line or two and exits 1 or 2, with
// nothing on stdout and never a stack trace (issue 15). The list of commands is checked
// against bin/main.ts, so a new command without cases here fails this test. Also: "did you
// mean" for flags and Route fields, tab-indented YAML, and the kubectl plugin executable.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { commands } from '../../bin/main.js';
import { pool, runCli, runCliAsync, runCliInProcess } from '../util/cli.js';
import { repoRoot } from '../util/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'ovnkube-route-errors-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
};

const badYaml = file('bad.yaml', 'garbage: [\n');
// An API server that refuses connections: port 1 on loopback.
const deadKc = file(
  'dead.kubeconfig',
  [
    'apiVersion: v1',
    'kind: Config',
    'clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]',
    'users: [{name: u, user: {token: x}}]',
    'contexts: [{name: c, context: {cluster: c, user: u, namespace: app}}]',
    'current-context: c',
    '',
  ].join('\n'),
);
const tabRoute = file(
  'tab.yaml',
  'apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata:\n  name: x\nspec:\n  route:\n\t- {dst: 172.16.0.0/16, dev: eth1}\n',
);
const typoRoute = file(
  'typo.yaml',
  'apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata:\n  name: x\nspec:\n  rotue:\n    - {dst: 172.16.0.0/16, dev: eth1}\n',
);
const typoRule = file(
  'typo-rule.yaml',
  'apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata:\n  name: x\nspec:\n  route:\n    - {dst: 172.16.0.0/16, dve: eth1}\n',
);
const typoEntry = file('cr-config.json', '[{"svc": "default/nginx1", "dev": "eth0"}, {"rotue": "172.16.0.0/16", "dev": "eth1"}]');
const typoBundle = file(
  'bundle.yaml',
  'apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {name: x}\nspec:\n  svc: [{namespace: a, name: b, dev: eth1}]\n  incldue: [{namespaces: [a]}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {namespace: a, name: p}\n',
);
const noHome = { HOME: tmp, KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '' };

// [command, args, expected exit code, stderr pattern]
const cases: [string, string[], number, RegExp][] = [
  ['agent', [], 2, /--node-name \(or \$NODE_NAME\) is required/],
  ['agent', ['--node-name', 'n1', '--plan-key', '/nope'], 1, /plan key \/nope: cannot read/],
  [
    'agent',
    ['--node-name', 'n1', '--plan-key', '/nope', '--rt-protos-dir', 'relative'],
    2,
    /--rt-protos-dir: expected an absolute path, got "relative"/,
  ],
  ['agent', ['--nod-name', 'n1'], 2, /did you mean '--node-name'/],
  ['convert', ['-f', '/nope.yaml'], 1, /\/nope\.yaml: cannot read: no such file/],
  ['convert', ['-f', badYaml], 1, /bad\.yaml: line 2, column 1: not valid YAML/],
  ['convert', ['-f', tabRoute], 1, /tab\.yaml: line 7: indented with a tab; YAML allows only spaces/],
  ['convert', ['-f', typoRoute], 1, /typo\.yaml: spec\.rotue .*unknown field; did you mean "route"\?/],
  ['convert', ['-f', typoRule], 1, /spec\.route\[0\]\.dve .*unknown field; did you mean "dev"\?/],
  ['convert', ['-f', typoEntry], 1, /entry 1 \(line 1\): field "rotue": unknown field; did you mean "route"\?/],
  ['convert', ['--fiel', 'x'], 2, /Unknown option '--fiel'; did you mean '--file'\?/],
  ['explain', [], 2, /--pod NAMESPACE\/NAME is required/],
  ['explain', ['--pod', 'a/b/c', '--kubeconfig', deadKc], 2, /--pod expects NAMESPACE\/NAME or NAME/],
  ['explain', ['--pod', 'a/b', '--kubeconfig', '/nope'], 1, /--kubeconfig \/nope: no such file/],
  ['explain', ['--pod', 'a/b', '--kubeconfig', badYaml], 1, /kubeconfig .*bad\.yaml: cannot load/],
  [
    'explain',
    ['--pod', 'a/b', '--kubeconfig', deadKc],
    1,
    /cannot reach the API server https:\/\/127\.0\.0\.1:1 \(context "c" of .*dead\.kubeconfig\): .*ECONNREFUSED/,
  ],
  ['explain', ['--pod', 'a/b', '--kubeconfig', deadKc, '--context', 'prod'], 1, /--context prod: no such context in .* \(contexts: c\)/],
  ['explain', ['--pod', 'a/b'], 1, /no kubeconfig: give --kubeconfig FILE, or set KUBECONFIG, or create ~\/\.kube\/config/],
  ['explain', ['--pod', 'a/b', '--kubconfig', deadKc], 2, /did you mean '--kubeconfig'\?/],
  ['inject', ['--netns', '/nope', '--plan', '/nope'], 1, /\/nope: cannot read: no such file/],
  ['inject', ['--netns', '/nope'], 2, /--plan/],
  ['plan', ['-f', '/nope.yaml', '--all'], 1, /cannot read: no such file/],
  ['plan', ['-f', typoBundle, '--all'], 1, /Route x: spec\.incldue: unknown field; did you mean "include"\?/],
  ['plan', ['-f', typoBundle, '--all', '--kubeconfig', deadKc], 2, /-f FILE reads objects from a file/],
  ['plan', ['--all', '--kubeconfig', deadKc], 1, /cannot reach the API server/],
  ['plan', ['--pod', 'web', '--kubeconfig', deadKc, '-o', 'yaml'], 2, /-o\/--output: expected json or table/],
  ['routes', ['--netns', '/nope'], 1, /netns \/nope does not exist/],
  ['routes', ['--pod', 'a/b', '--cni-cache-dir', join(tmp, 'none')], 1, /no CNI cache file in .* names it/],
  ['routes', ['--pod', 'a/b', '--remote', '--kubeconfig', deadKc], 1, /cannot reach the API server/],
  ['routes', ['--pod', 'a/b', '--kubeconfig', deadKc, '--from', 'magic'], 2, /--from: expected auto, exec or report/],
  ['routes', ['--remote', '--kubeconfig', deadKc], 2, /give exactly one of --netns PATH and --pod/],
  ['version', ['-o', 'xml'], 2, /expected text or json/],
  ['version', ['extra'], 2, /unexpected argument 'extra'/],
  ['webhook', [], 2, /--plan-key .* is required/],
  ['webhook', ['--tls-cert', '/nope', '--tls-key', '/nope', '--plan-key', '/nope'], 1, /cannot load the plan key: .*\/nope/],
  ['webhook', ['--tls-cert', '/nope', '--tls-key', '/nope', '--plan-key', '/nope', '--kubeconfig', '/nope'], 1, /\/nope/],
];

const STACK = /\n\s+at .+(:\d+:\d+\)?|\(native\))|^\s+at /m;

t.test('bad input: a clear message, the right exit code, nothing on stdout, no stack trace', async (t) => {
  const covered = new Set(cases.map((c) => c[0]));
  t.same([...covered].sort(), commands.map((c) => c.name).sort(), 'every command has cases here');
  // The first case of each command runs as a real process (a few at a time): a crash outside
  // main()'s error handling would show there. The rest call main() in this process: the same
  // handling, without a process start each (slow on a loaded machine).
  const firsts = new Set(commands.map((c) => cases.findIndex((x) => x[0] === c.name)));
  const spawned = await pool(
    cases.filter((_, i) => firsts.has(i)),
    4,
    ([cmd, args]) => runCliAsync([cmd, ...args], { env: noHome }),
  );
  const results: Awaited<ReturnType<typeof runCliAsync>>[] = [];
  let k = 0;
  for (const [i, [cmd, args]] of cases.entries())
    results.push(firsts.has(i) ? spawned[k++]! : await runCliInProcess([cmd, ...args], { env: noHome }));
  t.equal(k, commands.length, 'one real process per command');
  for (const [i, [cmd, args, code, msg]] of cases.entries()) {
    const r = results[i]!;
    const what = `${cmd} ${args.join(' ')}`;
    t.equal(r.code, code, `${what}: exit ${code}`, { stderr: r.stderr });
    t.match(r.stderr, msg, `${what}: says why`);
    t.notMatch(r.stderr, STACK, `${what}: no stack trace`);
    t.equal(r.stdout, '', `${what}: nothing on stdout`);
  }
});

t.test('an unexpected error is one line, with its stack only on request', async (t) => {
  // A file where a directory is expected: EISDIR is no InputError of ours.
  const r = runCli(['convert', '-f', tmp]);
  t.equal(r.code, 1);
  t.notMatch(r.stderr, STACK);
  t.match(r.stderr, /EISDIR|directory/);
});

t.test('the kubectl plugin: named and installed as kubectl expects, dispatching to the CLI', async (t) => {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  t.equal(
    pkg.bin['kubectl-ovnkube_route'],
    'dist/bin/kubectl-ovnkube_route.js',
    'package.json bin installs it (kubectl ovnkube-route -> kubectl-ovnkube_route)',
  );
  const exe = join(repoRoot, pkg.bin['kubectl-ovnkube_route']!);
  accessSync(exe, constants.X_OK);
  t.match(readFileSync(exe, 'utf8'), /^#!\/usr\/bin\/env node\n/, 'a node shebang');
  // As npm installs it: a link named kubectl-ovnkube_route on PATH.
  const binDir = join(tmp, 'bin');
  rmSync(binDir, { recursive: true, force: true });
  spawnSync('mkdir', ['-p', binDir]);
  symlinkSync(exe, join(binDir, 'kubectl-ovnkube_route'));
  const run = (cmd: string, args: string[]) =>
    spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, PATH: `${binDir}:${process.env.PATH ?? ''}` }, timeout: 60_000 });
  const v = run('kubectl-ovnkube_route', ['version', '-o', 'json']);
  t.equal(v.status, 0, v.stderr);
  t.equal(JSON.parse(v.stdout).routeAPI, 'k8s.ovn.org/v1');
  const h = run('kubectl-ovnkube_route', ['--help']);
  t.match(h.stdout, /Usage: kubectl ovnkube-route <command> \[flags\]/, 'help names the plugin form');
  const bad = run('kubectl-ovnkube_route', ['explian']);
  t.equal(bad.status, 2);
  t.match(bad.stderr, /kubectl ovnkube-route: unknown command "explian"; did you mean "explain"\?/);
  // Through kubectl itself, when it is installed here.
  const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
  if (kubectl.status !== 0) {
    t.comment('kubectl not installed: the plugin was run directly only');
    return;
  }
  const list = run('kubectl', ['plugin', 'list']);
  t.match(list.stdout, /kubectl-ovnkube_route/, 'kubectl plugin list finds it');
  const via = run('kubectl', ['ovnkube-route', 'version', '-o', 'json']);
  t.equal(via.status, 0, via.stderr);
  t.equal(JSON.parse(via.stdout).planAnnotation, 'v1', 'kubectl ovnkube-route version runs the CLI');
});
