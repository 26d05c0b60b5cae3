// The tests run on the project's Node (24 LTS, the `node` devDependency that npm scripts put
// first on PATH), not on whatever older Node the machine has: `npm test` starts tap, and tap
// each test file, with that binary. The package's engines range says the same.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { repoRoot } from '../util/fixtures.js';

const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
  engines: { node: string };
  devDependencies: Record<string, string>;
};

t.test('this test process runs on Node 24 or newer', async (t) => {
  const [major] = process.versions.node.split('.').map(Number);
  t.ok(major! >= 24, `Node ${process.version} (${process.execPath})`);
});

t.test('engines and the node devDependency agree with the Node the tests run on', async (t) => {
  const min = /^>=(\d+)\.(\d+)/.exec(pkg.engines.node);
  t.ok(min, `engines.node ${pkg.engines.node} is a lower bound`);
  const [maj, min2] = process.versions.node.split('.').map(Number);
  t.ok(maj! > Number(min![1]) || (maj === Number(min![1]) && min2! >= Number(min![2])), `${process.version} satisfies ${pkg.engines.node}`);
  const pinned = pkg.devDependencies.node;
  t.match(pinned, /^\d+\.\d+\.\d+$/, 'the node devDependency is an exact version');
  if (process.execPath.includes(join('node_modules', 'node', 'bin'))) {
    t.equal(process.version, `v${pinned}`, 'run through npm: the Node is the pinned devDependency');
  } else {
    t.comment(`not run through npm scripts (${process.execPath}): the pinned version is not checked against it`);
  }
});
