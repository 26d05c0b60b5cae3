#!/usr/bin/env node
// Write the ovnkube-route image as an OCI image layout tarball, without Docker:
//   npm run image -- [OUT.oci.tar]     (default ovnkube-route-0.1.0.oci.tar)
// Then, for instance: `ctr -n k8s.io images import OUT.oci.tar` on a containerd node, or
// `skopeo copy oci-archive:OUT.oci.tar docker://REGISTRY/ovnkube-route:0.1.0`.
// The image is assembled by test/cluster/addon-image.ts (see there for what is in it) from
// the built project: run `npm run build` first (npm run image does).
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
if (args.includes('-h') || args.includes('--help')) {
  console.log('usage: npm run image -- [OUT.oci.tar]   (default ovnkube-route-0.1.0.oci.tar)');
  process.exit(0);
}
if (args.length > 1) {
  console.error(`image: expected at most one output file, got ${args.length}: ${args.join(' ')}`);
  process.exit(2);
}
const out = resolve(args[0] ?? 'ovnkube-route-0.1.0.oci.tar');
const { buildAddonImage, ADDON_IMAGE_REF } = await import(join(root, 'dist', 'test', 'cluster', 'addon-image.js'));
let image;
try {
  image = buildAddonImage(root);
} catch (e) {
  console.error(`image: ${e.message}`);
  process.exit(1);
}
writeFileSync(out, image.tarball);
const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;
console.log(`${out}: ${ADDON_IMAGE_REF} ${image.digest} (Node ${image.nodeVersion})`);
for (const l of image.layers) console.log(`  layer ${l.name}: ${mb(l.compressed)} gzip, ${mb(l.uncompressed)} unpacked, ${l.files} files`);
console.log(`  tarball ${mb(image.tarball.length)}`);
