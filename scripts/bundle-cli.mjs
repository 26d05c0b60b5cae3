// Bundles the CLI for scripts/build.mjs with esbuild: dist/bin/ovnkube-route.js and
// dist/bin/kubectl-ovnkube_route.js become ESM bundles of the TypeScript sources, split into
// chunks (dist/bin/cli-chunk-*.js) at each lazy `import()`, so a command still loads only what
// it uses, from a few files instead of ~50 modules (Node's ESM loader resolves, reads and links
// each one: most of what was left of the CLI's start-up). Every process of the add-on runs
// through these files: the image's entry point is `node dist/bin/ovnkube-route.js agent|webhook`.
//
// What is bundled: the project's own code, `yaml`, the rtnetlink part of `netlink` and ajv's one
// runtime helper. What stays a package import, loaded from node_modules at run time: every other
// package (the Kubernetes client, fastify, pino, prom-client... as the agent and webhook ran them
// before), netlink's raw.js (it finds its prebuilt native binding from its own __dirname) and
// the setns addon (found from the path its source file had in dist/).
//
// Paths taken from `import.meta.url` stay those of the module's own dist/ file: all outputs are
// in dist/bin/, so each source's `import.meta.url` is replaced by the URL of its tsc output
// (`new URL('../<dir>/<file>.js', import.meta.url)`), and files next to dist/ files (the addon,
// package.json, dist/cni/) are found as before. A top-level `const require =
// createRequire(import.meta.url)` is dropped so that the `require()` calls below it are bundled.
//
// The build records what each output was made from (dist/bin/cli-bundle.json: sha256 of every
// input), and test/cli/bundle.test.ts fails when a source changed after the bundle was made.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative } from 'node:path';

/** Packages bundled into the CLI (everything else is external). */
const BUNDLED = new Set(['yaml', 'netlink', 'node-gyp-build', 'ajv']);
/** The marker test/cli/bundle.test.ts looks for at the top of the entry files. */
export const BUNDLE_MARKER = '// ovnkube-route CLI bundle (scripts/bundle-cli.mjs)';
const toPosix = (p) => p.split('\\').join('/');
const DROP_REQUIRE = /^const require = createRequire\(import\.meta\.url\);$/m;

/**
 * The islands: the large libraries of the short commands, each bundled into a CommonJS file of
 * its own (dist/bin/island-<name>.cjs) that the bundle loads through bin/code-cache.ts
 * (loadIsland), so that their V8 code cache is made after a run and holds the functions the
 * run compiled (Node's compile cache of an ES module holds its top level only). `specs`: the
 * package paths and project sources the island stands for; the island's module.exports is the
 * array of their exports, in this order.
 */
const ISLANDS = [
  // The offline commands, each with all it imports (yaml, the validators, netlink... included):
  // one file to load, and every function the command calls in the cache. The agent, webhook
  // and explain stay ES module chunks (long-lived, or loading the Kubernetes client anyway).
  { name: 'convert', specs: ['bin/commands/convert.ts'] },
  { name: 'plan', specs: ['bin/commands/plan.ts'] },
  { name: 'inject', specs: ['bin/commands/inject.ts'] },
  { name: 'routes', specs: ['bin/commands/routes.ts'] },
  // The libraries, for the code outside the islands above (the agent: netlink; explain and a
  // live `plan`: the Route validator).
  { name: 'yaml', specs: ['yaml'] },
  { name: 'route-validator', specs: ['core/generated/route-validator.ts'] },
  { name: 'netlink', specs: ['netlink/dist/rt/rt.js', 'netlink/dist/rt/structs.js', 'netlink/dist/constants.js'] },
];
/**
 * Modules an island takes from the bundle that loads it instead of having its own copy:
 * bin/main.ts catches the commands' UsageError and InputError by class.
 */
const HOST_SHARED = ['bin/cli.ts'];
const hostName = (m) => '__host_' + m.replace(/\W/g, '_');
/** Each island spec -> [island name, index in its exports]. */
const ISLAND_OF = new Map(ISLANDS.flatMap((i) => i.specs.map((spec, n) => [spec, [i.name, n]])));

/** Builds dist/bin/island-<name>.cjs for each island; returns the sha256 of each file and the esbuild metafiles. */
async function buildIslands(root, build, outdir) {
  const hashes = {};
  const metas = [];
  const exports = {};
  for (const f of readdirSync(outdir)) if (/^island-/.test(f)) rmSync(join(outdir, f));
  for (const { name, specs } of ISLANDS) {
    // The export names of each project module (TypeScript) the island stands for.
    for (const spec of specs.filter((x) => x.endsWith('.ts'))) {
      const r = await build({
        absWorkingDir: root,
        entryPoints: [spec],
        bundle: false,
        write: false,
        format: 'esm',
        metafile: true,
        logLevel: 'silent',
      });
      exports[spec] = Object.values(r.metafile.outputs)[0].exports;
    }
    const out = join(outdir, `island-${name}.cjs`);
    const entry = specs.map((s) => `require(${JSON.stringify(s.endsWith('.ts') ? './' + s : s)})`).join(', ');
    const r = await build({
      absWorkingDir: root,
      stdin: { contents: `module.exports = [${entry}];\n`, resolveDir: root, sourcefile: `island-${name}.cjs`, loader: 'js' },
      outfile: out,
      bundle: true,
      format: 'cjs',
      platform: 'node',
      target: 'node24',
      sourcemap: 'linked',
      sourcesContent: false,
      logLevel: 'warning',
      metafile: true,
      // loadIsland runs the file as Node's CommonJS loader would (exports, require, module,
      // __filename, __dirname); import.meta.url of a bundled source is that of this file.
      banner: { js: `${BUNDLE_MARKER}\nconst __ovrtIslandUrl = require('node:url').pathToFileURL(__filename).href;` },
      plugins: [plugin(root, true)],
    });
    hashes[name] = createHash('sha256').update(readFileSync(out)).digest('hex');
    metas.push(r.metafile);
  }
  return { hashes, metas, exports };
}

/**
 * The esbuild plugin of both builds: `island` false for the main (ESM) build, whose island
 * modules become stubs loading dist/bin/island-<name>.cjs (`islandHashes`: the sha256 of each),
 * true for the CommonJS builds of the islands themselves.
 */
function plugin(root, island, islandHashes = {}, islandExports = {}) {
  return {
    name: 'ovnkube-route',
    setup(b) {
      // `import ... from 'node:util'` would have Node build an ES module facade of the
      // builtin, which reads every export: util's, fs's and process's lazy properties then
      // load some 30 internal modules each (readline, worker_threads, streams...). In the
      // bundle a builtin is a CommonJS module of getters over process.getBuiltinModule(),
      // which is called on the first property read: a builtin is loaded when code uses it
      // (node:crypto, some 40 internal modules, only when a hash is computed), and only
      // the properties used are read. The property names are those of the builtin in the
      // Node that builds. Each importing file gets its own copy of the shim (the path
      // names the importer), which esbuild then puts in the importer's chunk: one shared
      // shim per builtin would be a chunk of its own for each set of commands using it.
      const shim = (name, importer) => ({ path: `${name}#${toPosix(relative(root, importer))}`, namespace: 'builtin' });
      b.onResolve({ filter: /^node:/ }, (a) => shim(a.path, a.importer));
      b.onLoad({ filter: /.*/, namespace: 'builtin' }, (a) => {
        const name = a.path.slice(0, a.path.indexOf('#'));
        const keys = Object.getOwnPropertyNames(process.getBuiltinModule(name)).filter((k) => k !== '__esModule');
        return {
          contents:
            `let m;\nconst get = () => (m ??= process.getBuiltinModule(${JSON.stringify(name)}));\n` +
            'const o = {};\n' +
            `for (const k of ${JSON.stringify(keys)}) Object.defineProperty(o, k, { get: () => get()[k], enumerable: true });\n` +
            'module.exports = o;\n',
          loader: 'js',
        };
      });
      // The same for the bundled CommonJS packages' require('util') and the like.
      b.onResolve({ filter: /^[a-z_]+(\/[a-z_]+)?$/ }, (a) =>
        builtinModules.includes(a.path) ? shim(`node:${a.path}`, a.importer) : undefined,
      );
      // In an island, the modules it shares with the bundle come from the bundle (HOST_SHARED).
      if (island) {
        b.onResolve({ filter: /^\.\.?\/.*\.js$/ }, (a) => {
          const file = toPosix(relative(root, join(a.resolveDir, a.path))).replace(/\.js$/, '.ts');
          return HOST_SHARED.includes(file) ? { path: file, namespace: 'host' } : undefined;
        });
        b.onLoad({ filter: /.*/, namespace: 'host' }, (a) => ({
          contents: `module.exports = __ovrtHost.modules[${JSON.stringify(a.path)}];\n`,
          loader: 'js',
        }));
      }
      // In the main build an island's modules are stubs that load the island (see ISLANDS).
      if (!island) {
        b.onResolve({ filter: /^[^./]/ }, (a) => (ISLAND_OF.has(a.path) ? { path: a.path, namespace: 'island' } : undefined));
        b.onResolve({ filter: /^\.\.?\/.*\.js$/ }, (a) => {
          const file = toPosix(relative(root, join(a.resolveDir, a.path))).replace(/\.js$/, '.ts');
          return ISLAND_OF.has(file) ? { path: file, namespace: 'island' } : undefined;
        });
        // Each stub has its own copy of bin/code-cache.ts: shared, it would be a chunk of its
        // own, one more file for every command to load (an island is loaded by one stub only).
        b.onResolve({ filter: /^ovrt-code-cache:/ }, (a) => ({ path: a.path.slice('ovrt-code-cache:'.length), namespace: 'code-cache' }));
        b.onLoad({ filter: /.*/, namespace: 'code-cache' }, () => ({
          contents: readFileSync(join(root, 'bin', 'code-cache.ts'), 'utf8').replaceAll(
            'import.meta.url',
            `new URL(${JSON.stringify('../bin/code-cache.js')}, import.meta.url).href`,
          ),
          loader: 'ts',
          resolveDir: join(root, 'bin'),
        }));
        b.onLoad({ filter: /.*/, namespace: 'island' }, (a) => {
          const [name, index] = ISLAND_OF.get(a.path);
          const load =
            `loadIsland(${JSON.stringify(name)}, ${JSON.stringify(islandHashes[name])}, {\n` +
            HOST_SHARED.map((m) => `  ${JSON.stringify(m)}: ${hostName(m)},\n`).join('') +
            `})[${index}]`;
          const head =
            `import { loadIsland } from ${JSON.stringify(`ovrt-code-cache:${name}`)};\n` +
            HOST_SHARED.map((m) => `import * as ${hostName(m)} from ${JSON.stringify(join(root, m))};\n`).join('');
          // A project module: an ES module with its export names (a chunk of its own must
          // have them: import() of a CommonJS stub would only have a default). A package: its
          // importers take it as CommonJS, as before.
          const names = islandExports[a.path];
          const contents = names
            ? head +
              `const m = ${load};\n` +
              names.map((n) => (n === 'default' ? 'export default m.default;\n' : `export const ${n} = m.${n};\n`)).join('')
            : `const { loadIsland } = require(${JSON.stringify(`ovrt-code-cache:${name}`)});\n` +
              `module.exports = loadIsland(${JSON.stringify(name)}, ${JSON.stringify(islandHashes[name])})[${index}];\n`;
          return { contents, loader: 'js', resolveDir: root };
        });
      }
      b.onResolve({ filter: /^[^./]/ }, (a) => {
        const pkg = a.path.startsWith('@') ? a.path.split('/').slice(0, 2).join('/') : a.path.split('/')[0];
        // ajv: only its runtime helpers (the build-time validators call one); the compiler,
        // should anything load it, stays a package the lazy test can see.
        if (!BUNDLED.has(pkg) || (pkg === 'ajv' && !a.path.startsWith('ajv/dist/runtime/'))) return { path: a.path, external: true };
        return undefined;
      });
      // netlink's raw.js finds its native binding (node-gyp-build) from its own folder. In an
      // island it is bundled, with node-gyp-build, and given the package's folder as the build
      // found it from dist/bin (the image keeps dist/ and node_modules/ side by side), else as
      // Node resolves it: requiring the installed raw.js cost ~3 ms of CommonJS loading per run.
      // Elsewhere (no netlink outside the islands today) it stays a file of the package.
      b.onResolve({ filter: /^\.\/raw$/ }, (a) =>
        !island && /[\\/]node_modules[\\/]netlink[\\/]dist$/.test(a.resolveDir)
          ? { path: 'netlink/dist/raw.js', external: true }
          : undefined,
      );
      b.onResolve({ filter: /^netlink\/package\.json$/ }, (a) =>
        a.kind === 'require-resolve' ? { path: a.path, external: true } : undefined,
      );
      const NGB = "require('node-gyp-build')(__dirname + '/..')";
      b.onLoad({ filter: /[\\/]node_modules[\\/]netlink[\\/]dist[\\/]raw\.js$/ }, (a) => {
        const src = readFileSync(a.path, 'utf8');
        if (!src.includes(NGB)) throw new Error(`bundle-cli: ${a.path}: no "${NGB}" (netlink changed?)`);
        const rel = toPosix(relative(join(root, 'dist', 'bin'), dirname(dirname(a.path))));
        const dir =
          "(() => { const path = require('node:path'); const fs = require('node:fs'); " +
          `const d = path.join(__dirname, ${JSON.stringify(rel)}); ` +
          "return fs.existsSync(path.join(d, 'package.json')) ? d : path.dirname(require.resolve('netlink/package.json')); })()";
        return { contents: src.replace(NGB, `require('node-gyp-build')(${dir})`), loader: 'js' };
      });
      // yaml's parser and composer read process.env.LOG_TOKENS / LOG_STREAM (its debug
      // switches) for every token: ~1 µs each through Node's environment interceptor, 2-3 ms
      // of parsing the 90 lines of examples/demo-bundle.yaml. The bundle reads each once, as
      // the module loads (a process that sets them after that no longer gets yaml's token log).
      b.onLoad({ filter: /[\\/]node_modules[\\/]yaml[\\/]dist[\\/](parse[\\/]parser|compose[\\/]composer)\.js$/ }, (a) => {
        const src = readFileSync(a.path, 'utf8');
        const m = /node_process\.env\.(LOG_TOKENS|LOG_STREAM)\b/.exec(src);
        const decl = "var node_process = require('process');\n";
        if (!m || !src.includes(decl)) throw new Error(`bundle-cli: ${a.path}: no ${decl.trim()} / node_process.env.LOG_* (yaml changed?)`);
        return {
          contents: src
            .replace(decl, `${decl}const __ovrt${m[1]} = node_process.env.${m[1]};\n`)
            .replaceAll(`node_process.env.${m[1]}`, `__ovrt${m[1]}`)
            .replace(`const __ovrt${m[1]} = __ovrt${m[1]};`, `const __ovrt${m[1]} = node_process.env.${m[1]};`),
          loader: 'js',
        };
      });
      // netlink's rt/structs.js loads ifla.js (150 KB: the attributes of every kind of
      // link) only for two functions that parse and format link attributes; the bundle
      // loads it on their first use.
      const IFLA = 'const ifla = __importStar(require("./ifla"));';
      b.onLoad({ filter: /[\\/]node_modules[\\/]netlink[\\/]dist[\\/]rt[\\/]structs\.js$/ }, (a) => {
        const src = readFileSync(a.path, 'utf8');
        if (!src.includes(IFLA)) return { contents: src, loader: 'js', warnings: [{ text: `${a.path}: no "${IFLA}" to make lazy` }] };
        return {
          contents: src.replace(
            IFLA,
            'let iflaMod;\nconst ifla = new Proxy({}, { get: (_, k) => (iflaMod ??= __importStar(require("./ifla")))[k] });',
          ),
          loader: 'js',
        };
      });
      b.onLoad({ filter: /\.ts$/ }, (a) => {
        let src = readFileSync(a.path, 'utf8');
        const rel = toPosix(relative(root, a.path)).replace(/\.ts$/, '.js');
        if (rel === 'core/yaml-lib.js') {
          // dist/vendor/yaml.cjs is for the unbundled modules: the bundle has yaml itself,
          // evaluated at the first call (require() of a bundled CommonJS module is lazy), and
          // not at all when core/yaml-fast.ts reads the input.
          src = "let lib;\nexport function yamlLib() {\n  return (lib ??= require('yaml'));\n}\n";
        }
        // An island is a script, not a module: its import() of a package goes through the
        // bundle's (loadIsland's host.import); its import() of a project file is bundled.
        if (island) src = src.replace(/\bawait import\((['"])([^.'"][^'"]*)\1\)/g, 'await __ovrtHost.import($1$2$1)');
        if (src.includes('import.meta.url')) {
          src = src.replace(DROP_REQUIRE, '');
          src = src.replaceAll(
            'import.meta.url',
            `new URL(${JSON.stringify('../' + rel)}, ${island ? '__ovrtIslandUrl' : 'import.meta.url'}).href`,
          );
        }
        return { contents: src, loader: 'ts' };
      });
    },
  };
}

/** Bundle the CLI of the project at `root` into root/dist/bin; returns the output file count. */
export async function bundleCli(root) {
  const { build } = await import('esbuild');
  const outdir = join(root, 'dist', 'bin');
  for (const f of readdirSync(outdir)) if (/^cli-chunk-/.test(f)) rmSync(join(outdir, f));
  const { hashes: islandHashes, metas, exports: islandExports } = await buildIslands(root, build, outdir);
  const result = await build({
    absWorkingDir: root,
    entryPoints: ['bin/ovnkube-route.ts', 'bin/kubectl-ovnkube_route.ts'],
    outdir,
    entryNames: '[name]',
    chunkNames: 'cli-chunk-[hash]',
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node24',
    sourcemap: 'linked',
    sourcesContent: false,
    metafile: true,
    logLevel: 'warning',
    // A require() for bundled CommonJS code (esbuild's __require). Taken from
    // process.getBuiltinModule: `import ... from 'node:module'` in each file had Node build the
    // ES module facade of node:module, which reads all its exports (and loads its source map
    // support).
    banner: {
      js: `${BUNDLE_MARKER}\n` + "const require = process.getBuiltinModule('node:module').createRequire(import.meta.url);",
    },
    plugins: [plugin(root, false, islandHashes, islandExports)],
  });
  // What the bundle was made from, for the staleness test.
  const inputs = {};
  const allInputs = new Set([result.metafile, ...metas].flatMap((m) => Object.keys(m.inputs)));
  for (const file of [...allInputs].sort()) {
    if (file.includes('node_modules/') || file.includes(':') || file.startsWith('island-')) continue;
    inputs[file] = createHash('sha256')
      .update(readFileSync(join(root, file)))
      .digest('hex');
  }
  // The islands' stubs hold copies of bin/code-cache.ts (see the plugin), and this script
  // shapes the output too.
  inputs['bin/code-cache.ts'] = createHash('sha256')
    .update(readFileSync(join(root, 'bin', 'code-cache.ts')))
    .digest('hex');
  inputs['scripts/bundle-cli.mjs'] = createHash('sha256')
    .update(readFileSync(join(root, 'scripts', 'bundle-cli.mjs')))
    .digest('hex');
  // Each output file (relative to dist/bin) with the project sources it holds.
  const outputs = {};
  for (const [f, o] of [result.metafile, ...metas].flatMap((m) => Object.entries(m.outputs))) {
    if (!f.endsWith('.js') && !f.endsWith('.cjs')) continue;
    outputs[toPosix(relative(outdir, join(root, f)))] = Object.keys(o.inputs)
      .filter((i) => !i.includes(':'))
      .sort();
  }
  writeFileSync(join(outdir, 'cli-bundle.json'), JSON.stringify({ inputs, outputs }, null, 2) + '\n');
  return Object.keys(outputs).length;
}
