// Generated keys stay out of git and out of the image build context: certs/gen.sh's output,
// written into the checkout by mistake, is ignored; no tracked file is a key; .dockerignore
// keeps the same files out of `docker build`.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { repoRoot } from '../util/fixtures.js';
import { tierGate } from '../util/tier.js';

const git = (args: string[]) => spawnSync('git', ['-C', repoRoot, ...args], { encoding: 'utf8' });
const isRepo = git(['rev-parse', '--is-inside-work-tree']).stdout.trim() === 'true';

if (tierGate(t, 'git checkout', isRepo ? null : `${repoRoot} is not a git work tree`)) {
  t.test('certs/gen.sh output inside the checkout is ignored by git', async (t) => {
    const out = join(repoRoot, 'out');
    t.teardown(() => rmSync(out, { recursive: true, force: true }));
    const gen = spawnSync('bash', [join(repoRoot, 'certs', 'gen.sh'), out], { encoding: 'utf8' });
    t.equal(gen.status, 0, 'certs/gen.sh ./out', { stderr: gen.stderr });
    const status = git(['status', '--porcelain', '--untracked-files=all', '--', 'out']);
    t.equal(status.stdout, '', 'git status shows none of ca.key, tls.key, plan.key, ...');
    for (const f of ['x/ca.key', 'x/tls.crt', 'x/webhook.pem', 'x/plan.key', 'x/ca-bundle.b64', 'certs/out/tls.key', 'x/image.oci.tar']) {
      t.equal(git(['check-ignore', '-q', f]).status, 0, `${f} is ignored`);
    }
    t.not(git(['check-ignore', '-q', 'certs/gen.sh']).status, 0, 'and certs/gen.sh is not (the check can fail)');
  });

  t.test('no tracked file is a key or certificate', async (t) => {
    const files = git(['ls-files'])
      .stdout.split('\n')
      .filter((f) => /\.(key|pem|crt|csr|p12|pfx)$|(^|\/)plan\.key$|ca-bundle\.b64$/.test(f));
    t.same(files, [], 'git ls-files');
  });
}

t.test('.dockerignore keeps keys out of the build context', async (t) => {
  const lines = readFileSync(join(repoRoot, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim());
  for (const p of ['certs/out', '**/*.key', '**/*.pem', '**/*.crt', '**/plan.key', '**/ca-bundle.b64', 'node_modules', '.git']) {
    t.ok(lines.includes(p), `.dockerignore has ${p}`);
  }
});
