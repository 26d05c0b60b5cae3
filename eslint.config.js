// ESLint (flat config, type-aware through typescript-eslint's project service). `npm test`
// runs it before tap (scripts/test.mjs): an error fails the run, warnings are printed.
// Errors: promises that are dropped or misused, duplicate imports, type-only imports not
// marked `type`. Warnings: functions too dense to read at once.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'core/generated/**', 'injector/native/**', 'coverage/**', '.tap/**'] },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // tap awaits its subtests itself: a t.test() call is never a dropped promise.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', name: 'test', package: '@tapjs/test' },
            { from: 'package', name: 'test', package: '@tapjs/core' },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      'no-duplicate-imports': ['error', { includeExports: false }],
      '@typescript-eslint/consistent-type-imports': ['error', { prefer: 'type-imports', fixStyle: 'inline-type-imports' }],
      complexity: ['warn', 20],
      'max-params': ['warn', 5],
      'max-depth': ['warn', 4],
    },
  },
);
