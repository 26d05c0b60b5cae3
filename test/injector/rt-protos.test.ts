// The iproute2 name of proto 111: the agent writes it (injector/rt-protos.ts) into the dir the
// DaemonSet mounts from the host, as deploy/node-injector-daemonset.yaml passes it.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { parseAgentConfig } from '../../injector/agent/config.js';
import { installRtProtos, RT_PROTOS_FILE } from '../../injector/rt-protos.js';
import { RTPROT_OVNKUBE_ROUTE } from '../../injector/routes/engine.js';
import { repoRoot } from '../util/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'ovnkube-route-rtprotos-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

t.test('the file: written, left alone when right, rewritten when changed, dir created', async (t) => {
  const dir = join(tmp, 'etc', 'iproute2', 'rt_protos.d');
  const first = installRtProtos(dir);
  t.same(first, { file: join(dir, RT_PROTOS_FILE), written: true });
  const text = readFileSync(first.file, 'utf8');
  const lines = text.split('\n').filter((l) => l && !l.startsWith('#'));
  t.same(
    lines.map((l) => l.split(/\s+/)),
    [[String(RTPROT_OVNKUBE_ROUTE), 'ovnkube-route']],
    'one "111 ovnkube-route" line, as iproute2 reads rt_protos',
  );
  t.equal(statSync(first.file).mode & 0o777, 0o644, 'world-readable, like the rest of /etc/iproute2');
  t.same(installRtProtos(dir), { file: first.file, written: false }, 'the same content is not rewritten');
  writeFileSync(first.file, '111 something-else\n');
  t.equal(installRtProtos(dir).written, true);
  t.equal(readFileSync(first.file, 'utf8'), text, 'a changed file is put right');
  t.same(readdirSync(dir), [RT_PROTOS_FILE], 'no temp file left behind');
});

t.test('the DaemonSet passes --rt-protos-dir on a hostPath mount of /etc/iproute2/rt_protos.d', async (t) => {
  const docs = parseAllDocuments(readFileSync(join(repoRoot, 'deploy', 'node-injector-daemonset.yaml'), 'utf8')).map((d) => d.toJS());
  const ds = docs.find((d) => d?.kind === 'DaemonSet');
  const c = ds.spec.template.spec.containers[0];
  const cfg = parseAgentConfig(c.args.slice(1), { NODE_NAME: 'n1' });
  t.equal(cfg.rtProtosDir, '/host/etc/iproute2/rt_protos.d', 'the agent is told where');
  const mount = c.volumeMounts.find((m: { mountPath: string }) => m.mountPath === cfg.rtProtosDir);
  t.ok(mount, 'that path is a mount');
  t.notOk(mount.readOnly, 'writable');
  const vol = ds.spec.template.spec.volumes.find((v: { name: string }) => v.name === mount.name);
  t.same(vol.hostPath, { path: '/etc/iproute2/rt_protos.d', type: 'DirectoryOrCreate' }, "the host's rt_protos.d");
  t.equal(parseAgentConfig(['--node-name', 'n1', '--plan-key', '/k'], {}).rtProtosDir, undefined, 'off unless asked');
});
