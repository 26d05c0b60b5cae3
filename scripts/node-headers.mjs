// Where the headers (include/node) of the running Node are, for node-gyp's --nodedir.
// Shared by scripts/build.mjs (the setns addon) and the image assembly (which copies the same
// Node into the image).
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/**
 * The folder of the Node package that `process.execPath` belongs to: for the `node` npm
 * package, its platform package node_modules/node/node_modules/node-<os>-<arch> (where bin/node
 * is a hard link of node_modules/node/bin/node); otherwise the install prefix of the binary.
 * @param {string} root the project root
 * @returns {{dir: string} | {dir: null, reason: string}}
 */
export function nodeHeadersDir(root) {
  const want = process.version.replace(/^v/, '');
  const platformPkg = join(root, 'node_modules', 'node', 'node_modules', `node-${process.platform}-${process.arch}`);
  const candidates = [platformPkg, resolve(dirname(realpathSync(process.execPath)), '..')];
  for (const dir of candidates) {
    if (!existsSync(join(dir, 'include', 'node', 'node_api.h'))) continue;
    // The headers must be this Node's: node_version.h names the version.
    const h = readFileSync(join(dir, 'include', 'node', 'node_version.h'), 'utf8');
    const v = ['MAJOR', 'MINOR', 'PATCH'].map((k) => new RegExp(`#define NODE_${k}_VERSION (\\d+)`).exec(h)?.[1]).join('.');
    if (v === want) return { dir };
  }
  return {
    dir: null,
    reason:
      `no include/node of Node ${want} in ${candidates.join(' or ')}. With the project's \`node\` devDependency, ` +
      'its platform package is removed by a later `npm install`; `npm rebuild node` puts it back',
  };
}
