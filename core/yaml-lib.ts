/**
 * The `yaml` package, loaded from the one-file bundle scripts/build.mjs makes of it
 * (dist/vendor/yaml.cjs; the package's own 72 files are most of the CLI's convert/plan start-up),
 * or from the package itself when the bundle is absent. Types come from the package.
 */
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';

const require = createRequire(import.meta.url);

function load(): typeof Yaml {
  try {
    // dist/core/yaml-lib.js -> dist/vendor/yaml.cjs
    return require('../vendor/yaml.cjs') as typeof Yaml;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw e;
    return require('yaml') as typeof Yaml;
  }
}

let lib: typeof Yaml | undefined;

/** The package, loaded at the first call (parseDocs needs it only for what core/yaml-fast.ts declines). */
export function yamlLib(): typeof Yaml {
  return (lib ??= load());
}
