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
import { join, relative } from 'node:path';

/** Packages bundled into the CLI (everything else is external). */
const BUNDLED = new Set(['yaml', 'netlink', 'ajv']);
/** The marker test/cli/bundle.test.ts looks for at the top of the entry files. */
export const BUNDLE_MARKER = '// ovnkube-route CLI bundle (scripts/bundle-cli.mjs)';
const DROP_REQUIRE = /^const require = createRequire\(import\.meta\.url\);$/m;

/** Bundle the CLI of the project at `root` into root/dist/bin; returns the output file count. */
export async function bundleCli(root) {
  const { build } = await import('esbuild');
  const outdir = join(root, 'dist', 'bin');
  for (const f of readdirSync(outdir)) if (/^cli-chunk-/.test(f)) rmSync(join(outdir, f));
  const toPosix = (p) => p.split('\\').join('/');
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
    // Bundled CommonJS (netlink) calls require() for Node's own modules and netlink's raw.js.
    banner: {
      // The first line is a slot for V8's compile hint (see below): same line count either way.
      js:
        '//\n' +
        `${BUNDLE_MARKER}\n` +
        "import { createRequire as __ovrtCreateRequire } from 'node:module';\n" +
        'const require = __ovrtCreateRequire(import.meta.url);',
    },
    plugins: [
      {
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
          b.onResolve({ filter: /^[^./]/ }, (a) => {
            const pkg = a.path.startsWith('@') ? a.path.split('/').slice(0, 2).join('/') : a.path.split('/')[0];
            // ajv: only its runtime helpers (the build-time validators call one); the compiler,
            // should anything load it, stays a package the lazy test can see.
            if (!BUNDLED.has(pkg) || (pkg === 'ajv' && !a.path.startsWith('ajv/dist/runtime/'))) return { path: a.path, external: true };
            return undefined;
          });
          // netlink's raw.js loads the native binding relative to its own folder: keep it a
          // file of the installed package.
          b.onResolve({ filter: /^\.\/raw$/ }, (a) =>
            /[\\/]node_modules[\\/]netlink[\\/]dist$/.test(a.resolveDir) ? { path: 'netlink/dist/raw.js', external: true } : undefined,
          );
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
              // dist/vendor/yaml.cjs is for the unbundled modules: the bundle has yaml itself.
              src = "import * as Yaml from 'yaml';\nexport const yaml = Yaml;\n";
            } else if (src.includes('import.meta.url')) {
              src = src.replace(DROP_REQUIRE, '');
              src = src.replaceAll('import.meta.url', `new URL(${JSON.stringify('../' + rel)}, import.meta.url).href`);
            }
            return { contents: src, loader: 'ts' };
          });
        },
      },
    ],
  });
  // V8's explicit compile hint for the files the offline commands load (`eager: true` in
  // bin/main.ts): `//# allFunctionsCalledOnLoad` at the top of a file makes V8 compile all of
  // its functions as it loads, so Node's compile cache holds them and a later run compiles
  // none (yaml's parser, the Route validator). Only those files: the agent and the webhook keep
  // V8's lazy compilation. It replaces the banner's empty first line (the maps stay right).
  const mainSrc = readFileSync(join(root, 'bin', 'main.ts'), 'utf8');
  const eager = [...mainSrc.matchAll(/eager: true,\s*load: async \(\) => \(await import\('\.\/commands\/([a-z-]+)\.js'\)\)/g)].map(
    (m) => `bin/commands/${m[1]}.ts`,
  );
  if (!eager.length) throw new Error('bundle-cli: no `eager: true` command found in bin/main.ts (its shape changed?)');
  const outs = result.metafile.outputs;
  const byEntry = new Map(Object.entries(outs).flatMap(([f, o]) => (o.entryPoint ? [[o.entryPoint, f]] : [])));
  const hinted = new Set();
  const visit = (f) => {
    if (hinted.has(f)) return;
    hinted.add(f);
    for (const i of outs[f].imports) if (i.kind === 'import-statement' && outs[i.path]) visit(i.path);
  };
  for (const e of eager) {
    if (!byEntry.has(e)) throw new Error(`bundle-cli: no chunk for the eager command ${e}`);
    visit(byEntry.get(e));
  }
  for (const f of hinted) {
    const file = join(root, f);
    const src = readFileSync(file, 'utf8');
    if (!src.startsWith(`//\n${BUNDLE_MARKER}\n`)) throw new Error(`bundle-cli: ${f} does not start with the banner`);
    writeFileSync(file, '//# allFunctionsCalledOnLoad' + src.slice(2));
  }

  // What the bundle was made from, for the staleness test.
  const inputs = {};
  for (const file of Object.keys(result.metafile.inputs).sort()) {
    if (file.includes('node_modules/') || file.includes(':')) continue;
    inputs[file] = createHash('sha256')
      .update(readFileSync(join(root, file)))
      .digest('hex');
  }
  // This script shapes the output too.
  inputs['scripts/bundle-cli.mjs'] = createHash('sha256')
    .update(readFileSync(join(root, 'scripts', 'bundle-cli.mjs')))
    .digest('hex');
  // Each output file (relative to dist/bin) with the project sources it holds.
  const outputs = {};
  for (const [f, o] of Object.entries(result.metafile.outputs)) {
    if (!f.endsWith('.js')) continue;
    outputs[toPosix(relative(outdir, join(root, f)))] = Object.keys(o.inputs)
      .filter((i) => !i.includes(':'))
      .sort();
  }
  writeFileSync(join(outdir, 'cli-bundle.json'), JSON.stringify({ inputs, outputs }, null, 2) + '\n');
  return Object.keys(outputs).length;
}
