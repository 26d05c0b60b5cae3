/**
 * A container image for the local node, made here with no registry and no Docker: an OCI
 * image layout (a tar of oci-layout, index.json and blobs) whose one layer holds Debian's
 * static busybox and a link per applet the tests use. The same image serves as the pod
 * sandbox ("pause") image, since its default command only sleeps. Every byte is derived from
 * the busybox binary, so the same busybox gives the same digest (mtime 0, uid 0, sorted).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** The name the image is imported under (no registry is ever asked for it). */
export const NODE_IMAGE = 'localhost/ovnkube-route/busybox:1';
export const BUSYBOX = '/bin/busybox';

// The applets pods of the tests and the demo run; each becomes /bin/<name> -> busybox.
const APPLETS = ['cat', 'echo', 'ip', 'ls', 'nc', 'ping', 'route', 'sh', 'sleep', 'true', 'wget'];

/** One tar entry (owned by root, mtime 0). */
export interface Entry {
  path: string;
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  data?: Buffer;
  link?: string;
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/**
 * One ustar header + data, padded to 512 bytes. A name or link target longer than ustar's
 * 100 bytes goes in a PAX extended header ('x') before it (POSIX.1-2001), read by containerd.
 */
function tarEntry(e: Entry): Buffer {
  const name = e.type === 'dir' ? `${e.path}/` : e.path;
  const pax: string[] = [];
  if (Buffer.byteLength(name) > 100) pax.push(paxRecord('path', name));
  if (e.link && Buffer.byteLength(e.link) > 100) pax.push(paxRecord('linkpath', e.link));
  const prefix = pax.length
    ? tarEntry({
        path: `PaxHeaders/${createHash('sha256').update(name).digest('hex').slice(0, 32)}`,
        type: 'file',
        mode: 0o644,
        data: Buffer.from(pax.join('')),
      })
    : Buffer.alloc(0);
  if (pax.length) prefix.write('x', 156);
  if (pax.length) fixChecksum(prefix);
  const h = Buffer.alloc(512);
  h.write(Buffer.byteLength(name) > 100 ? name.slice(0, 99) : name, 0, 'utf8');
  h.write(octal(e.mode, 8), 100);
  h.write(octal(0, 8), 108);
  h.write(octal(0, 8), 116);
  const size = e.type === 'file' ? e.data!.length : 0;
  h.write(octal(size, 12), 124);
  h.write(octal(0, 12), 136);
  h.write('        ', 148);
  h.write(e.type === 'file' ? '0' : e.type === 'dir' ? '5' : '2', 156);
  if (e.link) h.write(Buffer.byteLength(e.link) > 100 ? e.link.slice(0, 99) : e.link, 157);
  h.write('ustar\0', 257);
  h.write('00', 263);
  fixChecksum(h);
  const parts: Buffer[] = [prefix, h];
  if (size) {
    parts.push(e.data!);
    if (size % 512) parts.push(Buffer.alloc(512 - (size % 512)));
  }
  return Buffer.concat(parts);
}

/** A PAX record: "<length> <key>=<value>\n", the length counting itself. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

/** (Re)compute the checksum of the 512-byte header at the start of `b`. */
function fixChecksum(b: Buffer): void {
  b.write('        ', 148);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += b[i]!;
  b.write(octal(sum, 7) + ' ', 148);
}

/** A tar archive of `entries`, in the order given, ending with the two zero blocks. */
export function tar(entries: Entry[]): Buffer {
  return Buffer.concat([...entries.map(tarEntry), Buffer.alloc(1024)]);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The OCI layout tarball of the node image, built from `busybox` (Debian's busybox-static). */
export function buildNodeImage(busybox = BUSYBOX): { tarball: Buffer; digest: string } {
  let bin: Buffer;
  try {
    bin = readFileSync(busybox);
  } catch (e) {
    throw new Error(`the node image needs a static busybox at ${busybox} (apt-get install busybox-static): ${(e as Error).message}`, {
      cause: e,
    });
  }
  const layerEntries: Entry[] = [
    { path: 'bin', type: 'dir', mode: 0o755 },
    { path: 'bin/busybox', type: 'file', mode: 0o755, data: bin },
    ...APPLETS.map((a): Entry => ({ path: `bin/${a}`, type: 'symlink', mode: 0o777, link: 'busybox' })),
    ...['dev', 'etc', 'proc', 'sys', 'tmp'].map((d): Entry => ({ path: d, type: 'dir', mode: d === 'tmp' ? 0o1777 : 0o755 })),
  ];
  const layer = tar(layerEntries);
  const layerDigest = `sha256:${sha(layer)}`;
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/bin'], Cmd: ['sleep', '2147483647'], WorkingDir: '/' },
      rootfs: { type: 'layers', diff_ids: [layerDigest] },
    }),
  );
  const configDigest = `sha256:${sha(config)}`;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigest, size: layer.length }],
    }),
  );
  const manifestDigest = `sha256:${sha(manifest)}`;
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: manifestDigest,
          size: manifest.length,
          platform: { architecture: 'amd64', os: 'linux' },
          annotations: { 'io.containerd.image.name': NODE_IMAGE, 'org.opencontainers.image.ref.name': NODE_IMAGE.split(':')[1] },
        },
      ],
    }),
  );
  const blob = (digest: string, data: Buffer): Entry => ({ path: `blobs/sha256/${digest.slice(7)}`, type: 'file', mode: 0o644, data });
  const tarball = tar([
    { path: 'blobs', type: 'dir', mode: 0o755 },
    { path: 'blobs/sha256', type: 'dir', mode: 0o755 },
    ...[blob(configDigest, config), blob(layerDigest, layer), blob(manifestDigest, manifest)].sort((a, b) => a.path.localeCompare(b.path)),
    { path: 'index.json', type: 'file', mode: 0o644, data: index },
    { path: 'oci-layout', type: 'file', mode: 0o644, data: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
  ]);
  return { tarball, digest: manifestDigest };
}
