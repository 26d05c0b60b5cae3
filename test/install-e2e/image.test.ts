// The image assembled in code (test/cluster/addon-image.ts): the same inputs give the same
// bytes and digest, and what is inside runs: Node 24 with its shared libraries, the CLI, the
// setns addon and netlink's prebuilt addon, as the non-root user the image names.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ADDON_IMAGE_REF, buildAddonImage } from '../cluster/addon-image.js';
import { repoRoot } from '../util/fixtures.js';
import { rootUnavailable, tierGate } from '../util/tier.js';

const first = buildAddonImage(repoRoot);

t.test('the same inputs give the same image, byte for byte', async (t) => {
  const again = buildAddonImage(repoRoot);
  t.equal(again.digest, first.digest, `digest ${first.digest}`);
  t.ok(again.tarball.equals(first.tarball), 'the whole OCI layout tarball is identical');
  const mb = (n: number) => (n / 1e6).toFixed(1);
  t.comment(
    `${ADDON_IMAGE_REF}: ${first.layers.map((l) => `${l.name} ${mb(l.compressed)} MB gzip (${mb(l.uncompressed)} MB unpacked)`).join(', ')}; ` +
      `tarball ${mb(first.tarball.length)} MB`,
  );
  t.match(first.nodeVersion, /^v24\./, 'it carries Node 24');
});

t.test('the OCI layout: an index naming the image, a manifest, a config that runs as non-root', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ovrt-image-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'image.tar'), first.tarball);
  mkdirSync(join(dir, 'layout'));
  execFileSync('tar', ['xf', join(dir, 'image.tar'), '-C', join(dir, 'layout')]);
  const blob = (d: string) => readFileSync(join(dir, 'layout', 'blobs', 'sha256', d.replace(/^sha256:/, '')));
  const index = JSON.parse(readFileSync(join(dir, 'layout', 'index.json'), 'utf8'));
  t.equal(index.manifests[0].digest, first.digest);
  t.equal(index.manifests[0].annotations['io.containerd.image.name'], ADDON_IMAGE_REF);
  const manifest = JSON.parse(blob(first.digest).toString());
  const config = JSON.parse(blob(manifest.config.digest).toString());
  t.equal(config.config.User, '65532:65532', 'non-root by default');
  t.same(config.config.Entrypoint, ['/usr/local/bin/node', '/app/dist/bin/ovnkube-route.js']);
  t.equal(manifest.layers.length, 2, 'two layers: runtime and app');

  if (!tierGate(t, 'image run (chroot, needs root)', rootUnavailable())) return;
  const root = join(dir, 'root');
  mkdirSync(root);
  for (const l of manifest.layers) {
    writeFileSync(join(dir, 'layer.tgz'), blob(l.digest));
    execFileSync('tar', ['xzf', join(dir, 'layer.tgz'), '-C', root]);
  }
  // A clean environment (`env -i`): tap adds NODE_OPTIONS naming its loaders, not in the image, to every child.
  const run = (user: string, args: string[]) =>
    spawnSync('/usr/bin/env', ['-i', 'PATH=/usr/local/bin', '/usr/sbin/chroot', `--userspec=${user}`, root, ...args], {
      encoding: 'utf8',
      timeout: 60_000,
    });
  const v = run('65532:65532', ['/usr/local/bin/node', '/app/dist/bin/ovnkube-route.js', 'version']);
  t.equal(v.status, 0, 'the CLI runs in the image as 65532', { stderr: v.stderr });
  t.match(v.stdout, /^ovnkube-route 0\.1\.0 \(node v24\./, v.stdout.trim());
  const addons = run('0:0', [
    '/usr/local/bin/node',
    '-e',
    "const r=require('module').createRequire('/app/dist/injector/x.js');" +
      "console.log(typeof r('../../injector/native/build/Release/setns.node').setns);" +
      "import('/app/dist/injector/kernel/netlink-lite.js').then((m)=>console.log(typeof m.createRtNetlink))",
  ]);
  t.equal(addons.status, 0, 'the native addons load', { stderr: addons.stderr });
  t.equal(addons.stdout, 'function\nfunction\n', 'setns.node and netlink are there');
  const none = run('0:0', ['/bin/sh', '-c', 'true']);
  t.not(none.status, 0, 'there is no shell in the image');
});
