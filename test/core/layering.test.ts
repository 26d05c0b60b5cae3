import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import t from 'tap';
import { repoRoot } from '../util/fixtures.js';

/** Every .ts source file under a top-level dir (generated code included). */
function sources(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (f === 'node_modules' || f === 'build') continue;
      if (statSync(p).isDirectory()) walk(p);
      else if (f.endsWith('.ts') && !f.endsWith('.d.ts')) out.push(p);
    }
  };
  walk(join(repoRoot, dir));
  return out;
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const re = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
  const out: string[] = [];
  for (let m = re.exec(text); m; m = re.exec(text)) out.push((m[1] ?? m[2])!);
  return out;
}

const topDir = (file: string, spec: string): string | null => {
  if (!spec.startsWith('.')) return null;
  return relative(repoRoot, join(file, '..', spec)).split('/')[0] ?? null;
};

// core/ is pure: no file system, network, processes or clients. node:crypto is computation.
const IO_MODULES =
  /^(node:)?(fs|fs\/promises|net|tls|http|https|http2|child_process|dgram|dns|worker_threads|cluster)$|^@kubernetes\/|^fastify|^netlink$/;

t.test('imports run one way: bin -> webhook, injector -> platform -> core; never the reverse or sideways', async (t) => {
  // platform/: Kubernetes client plumbing both processes share (deadlines, watchdogs,
  // connection reuse); it may do I/O, core/ may not.
  const rules: Record<string, string[]> = {
    core: ['core'],
    platform: ['core', 'platform'],
    webhook: ['core', 'platform', 'webhook'],
    injector: ['core', 'platform', 'injector'],
    bin: ['core', 'platform', 'webhook', 'injector', 'bin'],
  };
  let checked = 0;
  for (const [dir, allowed] of Object.entries(rules)) {
    for (const file of sources(dir)) {
      for (const spec of imports(file)) {
        const top = topDir(file, spec);
        if (top !== null)
          t.ok(allowed.includes(top), `${relative(repoRoot, file)} imports ${spec} (${top}/ is off limits for ${dir}/)`, {
            diagnostic: false,
          });
        if (dir === 'core') t.notMatch(spec, IO_MODULES, `${relative(repoRoot, file)} imports ${spec}: core/ does no I/O`);
        checked++;
      }
    }
  }
  t.ok(checked > 20, `checked ${checked} imports`);
});

// Inside each process, sub-folders are layers too (docs/development.md, Layout). `.` is a
// file directly in the process folder: shared within the process (its logger, pod helpers,
// metrics, entry points).
const INNER: Record<string, Record<string, string[]>> = {
  injector: {
    kernel: ['kernel'], // netns entry, netlink sockets and codecs: the kernel, nothing above
    routes: ['kernel', 'routes'], // the route engine, diffs, keepers, saved defaults
    discovery: ['kernel', 'discovery', '.'], // CNI cache and netns dir watching
    cni: ['cni', '.'], // the CNI-time socket and plugin install
    report: ['routes', 'report', '.'], // status annotation, Events, conditions
    '.': ['kernel', 'routes', '.'],
    agent: ['kernel', 'routes', 'discovery', 'cni', 'report', 'agent', '.'], // the loop that ties them
  },
  webhook: {
    caches: ['caches'], // informers and stores
    admission: ['admission', '.'], // decode -> decide -> patch, the HTTPS server
    controller: ['caches', 'controller', '.'], // reconcile, patch, status, leader election
    '.': ['caches', 'admission', 'controller', '.'], // plan resolution, errors, config, main
  },
};

t.test('inside injector/ and webhook/, sub-folders import one way; admission and controller never import each other', async (t) => {
  let checked = 0;
  for (const [proc, rules] of Object.entries(INNER)) {
    const areaOf = (p: string): string | null => {
      const rel = relative(join(repoRoot, proc), p);
      if (rel.startsWith('..')) return null;
      const parts = rel.split('/');
      return parts.length === 1 ? '.' : parts[0]!;
    };
    for (const file of sources(proc)) {
      const from = areaOf(file);
      if (from === null || from === 'native' || !(from in rules)) {
        if (from !== 'native') t.fail(`${relative(repoRoot, file)}: ${proc}/${from}/ has no layering rule`);
        continue;
      }
      for (const spec of imports(file)) {
        if (!spec.startsWith('.')) continue;
        const to = areaOf(join(file, '..', spec));
        if (to === null) continue;
        t.ok(rules[from]!.includes(to), `${relative(repoRoot, file)} imports ${spec} (${proc}/${to}/ is off limits for ${proc}/${from}/)`, {
          diagnostic: false,
        });
        checked++;
      }
    }
  }
  t.ok(checked > 50, `checked ${checked} imports`);
});

t.test('every platform/ file is one concept, named in the platform table of docs/development.md', async (t) => {
  const doc = readFileSync(join(repoRoot, 'docs', 'development.md'), 'utf8');
  const files = sources('platform').map((f) => relative(join(repoRoot, 'platform'), f));
  t.ok(files.length >= 8, `${files.length} platform files`);
  for (const f of files) t.match(doc, new RegExp(`^\\| \`${f.replace('.', '\\.')}\` \\|`, 'm'), `platform/${f} is in the table`);
});
