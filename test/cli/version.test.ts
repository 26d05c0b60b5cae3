// `ovnkube-route version`, and "did you mean" for a misspelled command, through the real binary.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { didYouMean } from '../../bin/main.js';
import { runCli } from '../util/cli.js';
import { repoRoot } from '../util/fixtures.js';

const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };

t.test('version: text and JSON, with the package version and the runtime', async (t) => {
  const text = runCli(['version']);
  t.equal(text.code, 0, text.stderr);
  t.equal(
    text.stdout,
    `ovnkube-route ${pkg.version} (node ${process.version}, ${process.platform}/${process.arch}; Route API k8s.ovn.org/v1, plan annotation v1)\n`,
  );
  const json = runCli(['version', '-o', 'json']);
  t.same(JSON.parse(json.stdout), {
    version: pkg.version,
    node: process.version,
    platform: `${process.platform}/${process.arch}`,
    routeAPI: 'k8s.ovn.org/v1',
    planAnnotation: 'v1',
  });
  const bad = runCli(['version', '-o', 'yaml']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /-o\/--output: expected text or json, got "yaml"/);
  t.match(runCli(['--help']).stdout, /version +print the version of ovnkube-route/, 'listed in the top-level help');
});

t.test('a misspelled command gets a suggestion; a foreign word does not', async (t) => {
  const cases: Array<[string, string | undefined]> = [
    ['rotues', 'routes'],
    ['plna', 'plan'],
    ['injcet', 'inject'],
    ['webook', 'webhook'],
    ['Agent', 'agent'],
    ['verison', 'version'],
    ['apply', undefined],
    ['get', undefined],
    ['x', undefined],
  ];
  for (const [typed, want] of cases) t.equal(didYouMean(typed), want, `${typed} -> ${want ?? 'no suggestion'}`);
  const r = runCli(['rotues']);
  t.equal(r.code, 2);
  t.match(r.stderr, /unknown command "rotues"; did you mean "routes"\?/);
});
