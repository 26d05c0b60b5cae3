// CNI-time injection, below the real node: the plugin binary (cni/ovnkube-route-cni.c) run
// as a runtime runs it (env + stdin) against the agent's real socket server, the request
// parser, and installing the plugin into a CNI conf dir and taking it out again.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { silentLogger } from '../../platform/log.js';
import { CNI_PLUGIN_BINARY, installCni, uninstallCni } from '../../injector/cni/install.js';
import { CniServer, parseCniRequest, type CniAnswer, type CniRequest } from '../../injector/cni/server.js';

const tmp = (t: Test): string => {
  const d = mkdtempSync(join(tmpdir(), 'ovrt-cni-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
};

const PREV = {
  cniVersion: '0.3.1',
  interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/cni-x' }],
  ips: [{ address: '10.85.0.7/24', interface: 0 }],
  dns: {},
};

/** Run the plugin as a runtime does (async: the socket server answers from this process). */
function runPlugin(
  command: string,
  conf: object,
  env: Record<string, string> = {},
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(CNI_PLUGIN_BINARY, [], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: {
      CNI_COMMAND: command,
      CNI_CONTAINERID: 'abc123',
      CNI_NETNS: '/var/run/netns/cni-x',
      CNI_IFNAME: 'eth0',
      CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=apps;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=uid-1',
      CNI_PATH: '/opt/cni/bin',
      ...env,
    },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  child.stdin.on('error', () => {}); // VERSION exits without reading its input
  child.stdin.end(JSON.stringify(conf));
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr })));
}

t.test('parseCniRequest', async (t) => {
  const good = {
    v: 1,
    command: 'ADD',
    containerId: 'abc123',
    netns: '/var/run/netns/cni-x',
    ifName: 'eth0',
    namespace: 'apps',
    name: 'web',
    uid: 'u',
  };
  t.same(parseCniRequest(JSON.stringify(good)), {
    containerId: 'abc123',
    netns: '/var/run/netns/cni-x',
    ifName: 'eth0',
    namespace: 'apps',
    name: 'web',
    uid: 'u',
  });
  const cases: Array<[string, string, RegExp]> = [
    ['not JSON', '{', /not JSON/],
    ['an array', '[]', /expected a JSON object/],
    ['another version', JSON.stringify({ ...good, v: 2 }), /unsupported protocol version 2/],
    ['DEL', JSON.stringify({ ...good, command: 'DEL' }), /unsupported command "DEL"/],
    ['a path as container ID', JSON.stringify({ ...good, containerId: '../x' }), /containerId: expected the sandbox ID/],
    ['a relative netns', JSON.stringify({ ...good, netns: 'cni-x' }), /netns: expected an absolute netns path/],
    ['no pod name', JSON.stringify({ ...good, name: '' }), /namespace and name/],
    ['no UID', JSON.stringify({ ...good, uid: undefined }), /uid: expected the pod's UID/],
  ];
  for (const [name, line, want] of cases) t.match(parseCniRequest(line), want, name);
});

t.test("the plugin against the agent's socket", async (t) => {
  t.ok(existsSync(CNI_PLUGIN_BINARY), `built by scripts/build.mjs: ${CNI_PLUGIN_BINARY}`);
  const dir = tmp(t);
  const socket = join(dir, 'run', 'cni.sock');
  const missedDir = join(dir, 'missed');
  const seen: CniRequest[] = [];
  let reply: (req: CniRequest) => Promise<CniAnswer> = async () => ({ ok: true, plan: 'h', applied: 5, skipped: 0 });
  const server = new CniServer({
    path: socket,
    log: silentLogger,
    handle: (req) => {
      seen.push(req);
      return reply(req);
    },
  });
  await server.start();
  t.teardown(() => server.close());
  t.equal(readdirSync(join(dir, 'run')).length, 1, 'the socket is there');
  const conf = {
    cniVersion: '0.3.1',
    name: 'multus-cni-network',
    type: 'ovnkube-route-cni',
    socket,
    missedDir,
    timeoutMs: 30_000,
    prevResult: PREV,
  };

  t.test('VERSION', async (t) => {
    const r = await runPlugin('VERSION', {});
    t.equal(r.status, 0);
    t.match(JSON.parse(r.stdout), { supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });

  t.test('ADD: the agent is asked, and the previous result is passed on unchanged', async (t) => {
    const r = await runPlugin('ADD', conf);
    t.equal(r.status, 0, 'success', { stderr: r.stderr });
    t.same(JSON.parse(r.stdout), PREV, 'prevResult passed on');
    t.same(
      seen.pop(),
      { containerId: 'abc123', netns: '/var/run/netns/cni-x', ifName: 'eth0', namespace: 'apps', name: 'web', uid: 'uid-1' },
      'the request names the sandbox and the pod',
    );
    t.notOk(existsSync(join(missedDir, 'abc123')), 'no fail-open marker');
    t.equal(r.stderr, '', 'nothing to say', { stderr: r.stderr });
  });

  t.test('ADD: an answer that the routes could not be written is logged, and the pod starts', async (t) => {
    reply = async () => ({ ok: false, reason: 'the pod has no plan' });
    const r = await runPlugin('ADD', conf);
    t.equal(r.status, 0);
    t.same(JSON.parse(r.stdout), PREV);
    t.match(r.stderr, /pod apps\/web: routes not applied at CNI time \(the pod has no plan\)/);
    t.notOk(existsSync(join(missedDir, 'abc123')), 'the agent knows: no marker');
  });

  t.test('ADD: no answer within the deadline fails open, with a marker', async (t) => {
    let release!: () => void;
    reply = () =>
      new Promise((r) => {
        release = () => r({ ok: true, plan: 'h', applied: 1, skipped: 0 });
      });
    const r = await runPlugin('ADD', { ...conf, timeoutMs: 300 });
    release();
    t.equal(r.status, 0, 'the pod starts');
    t.same(JSON.parse(r.stdout), PREV);
    t.match(readFileSync(join(missedDir, 'abc123'), 'utf8'), /no answer from the agent within 300 ms/);
    t.match(r.stderr, /routes not applied at CNI time/);
    const del = await runPlugin('DEL', conf);
    t.equal(del.status, 0);
    t.notOk(existsSync(join(missedDir, 'abc123')), 'DEL removes the marker');
  });

  t.test('ADD: the agent down fails open at once, with a marker', async (t) => {
    const r = await runPlugin('ADD', { ...conf, socket: join(dir, 'nobody.sock') });
    t.equal(r.status, 0);
    t.same(JSON.parse(r.stdout), PREV);
    t.match(readFileSync(join(missedDir, 'abc123'), 'utf8'), /agent unreachable at .*nobody\.sock/);
  });

  t.test('ADD without a prevResult, and a runtime that is not Kubernetes', async (t) => {
    reply = async () => ({ ok: true, plan: 'h', applied: 1, skipped: 0 });
    const before = seen.length;
    const r = await runPlugin(
      'ADD',
      { cniVersion: '1.0.0', name: 'n', type: 'ovnkube-route-cni', socket },
      { CNI_ARGS: 'IgnoreUnknown=1' },
    );
    t.equal(r.status, 0);
    t.same(JSON.parse(r.stdout), { cniVersion: '1.0.0' });
    t.equal(seen.length, before, 'no pod: the agent is not asked');
  });

  t.test('a bad request is answered, not dropped', async (t) => {
    const { createConnection } = await import('node:net');
    const answer = await new Promise<string>((resolve) => {
      const c = createConnection(socket, () => c.write('{"v":1,"command":"ADD"}\n'));
      let b = '';
      c.on('data', (d) => {
        b += d.toString();
      });
      c.on('end', () => resolve(b));
    });
    t.match(JSON.parse(answer), { ok: false, reason: /bad request: containerId/ });
  });
});

t.test('installing the plugin into a CNI conf dir, and taking it out', async (t) => {
  const dir = tmp(t);
  const binDir = join(dir, 'bin');
  const confDir = join(dir, 'net.d');
  mkdirSync(binDir);
  mkdirSync(confDir);
  const o = { binDir, confDir, socket: '/run/ovnkube-route/cni.sock', missedDir: '/run/ovnkube-route/cni-missed', timeoutMs: 3000 };
  t.throws(() => installCni(o), /no CNI network config in .*net\.d/, 'nothing to chain into');
  const multus = {
    cniVersion: '0.3.1',
    name: 'multus-cni-network',
    type: 'multus',
    kubeconfig: '/etc/cni/net.d/multus.d/multus.kubeconfig',
  };
  writeFileSync(join(confDir, '00-multus.conf'), JSON.stringify(multus));
  writeFileSync(join(confDir, '10-other.conflist'), JSON.stringify({ cniVersion: '0.3.1', name: 'other', plugins: [{ type: 'bridge' }] }));
  const r = installCni(o);
  t.same(r, { confFile: join(confDir, '00-multus.conflist'), replaced: join(confDir, '00-multus.conf') });
  t.same(readdirSync(confDir).sort(), ['00-multus.conflist', '10-other.conflist'], 'the .conf became a .conflist of the same name');
  const list = JSON.parse(readFileSync(join(confDir, '00-multus.conflist'), 'utf8'));
  t.same(
    list,
    {
      cniVersion: '0.3.1',
      name: 'multus-cni-network',
      plugins: [
        { type: 'multus', kubeconfig: multus.kubeconfig },
        { type: 'ovnkube-route-cni', socket: o.socket, missedDir: o.missedDir, timeoutMs: 3000, convertedFromConf: true },
      ],
    },
    'the original plugin first, ours chained after it',
  );
  t.ok(existsSync(join(binDir, 'ovnkube-route-cni')), 'the binary is installed');
  installCni({ ...o, timeoutMs: 5000 });
  const again = JSON.parse(readFileSync(join(confDir, '00-multus.conflist'), 'utf8'));
  t.equal(again.plugins.length, 2, 'installing again updates our entry');
  t.equal(again.plugins[1].timeoutMs, 5000);
  uninstallCni(o);
  t.same(readdirSync(confDir).sort(), ['00-multus.conf', '10-other.conflist'], 'the node has its .conf back');
  t.same(JSON.parse(readFileSync(join(confDir, '00-multus.conf'), 'utf8')), multus, 'exactly as it was');
  t.notOk(existsSync(join(binDir, 'ovnkube-route-cni')), 'the binary is gone');

  // A conflist keeps being a conflist.
  rmSync(join(confDir, '00-multus.conf'));
  installCni(o);
  t.same(
    JSON.parse(readFileSync(join(confDir, '10-other.conflist'), 'utf8')).plugins.map((p: { type: string }) => p.type),
    ['bridge', 'ovnkube-route-cni'],
  );
  uninstallCni(o);
  t.same(JSON.parse(readFileSync(join(confDir, '10-other.conflist'), 'utf8')), {
    cniVersion: '0.3.1',
    name: 'other',
    plugins: [{ type: 'bridge' }],
  });
  writeFileSync(join(confDir, '05-broken.conf'), '{');
  t.throws(() => installCni(o), /05-broken\.conf: not JSON/, 'a broken conf is named');
});
