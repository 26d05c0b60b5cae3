// A minimal CommonJS bundler for scripts/build.mjs: one file holding every module of a package
// reachable from its entry by relative require() (other requires go to Node as usual). Node
// then reads and compiles one file instead of dozens: the `yaml` package's 72 files cost the
// CLI's convert and plan more start-up than everything else they load. Deterministic output
// (modules in first-require order of a fixed source), so builds stay reproducible.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
/** Bundle the package whose CommonJS entry file is `entry` into `out`; returns the module count. */
export function bundleCjs(entry, out) {
  const root = dirname(entry);
  const mods = new Map();
  const visit = (file) => {
    if (mods.has(file)) return;
    const src = readFileSync(file, 'utf8');
    mods.set(file, src);
    for (const m of src.matchAll(/require\((['"])(\.{1,2}\/[^'"]+)\1\)/g)) visit(resolve(dirname(file), m[2]));
  };
  visit(entry);
  const id = (f) => JSON.stringify(relative(root, f));
  let code = '"use strict";\nconst __defs = {\n';
  for (const [f, src] of mods) {
    code += `${id(f)}: function (module, exports, require) {\n${src}\n},\n`;
  }
  code += `};
const __cache = {};
const __path = require('node:path');
function __req(from, spec) {
  if (!spec.startsWith('.')) return require(spec);
  const key = __path.posix.normalize(__path.posix.join(__path.posix.dirname(from), spec));
  if (__cache[key]) return __cache[key].exports;
  const module = { exports: {} };
  __cache[key] = module;
  __defs[key](module, module.exports, (s) => __req(key, s));
  return module.exports;
}
module.exports = __req('', './' + ${id(entry)});
`;
  if (!existsSync(out) || readFileSync(out, 'utf8') !== code) writeFileSync(out, code);
  return mods.size;
}
